#!/usr/bin/env bash
#
# tests/e2e/ops.sh: rehearses what deploy/README.md tells an operator to do.
#   1. A zero-downtime upgrade under load: finance-migrate with a new
#      migration, then SIGHUP to the master; no request may fail.
#   2. A backup with pg_dump and a restore into a new database; the API
#      serves the restored data without restarting a worker.
#   3. SIGTERM under load: requests that started before it get their 200,
#      the master exits 0, nginx answers 502/503 after the workers left.
#   4. Reloads that change the env file, on a master of the test's own:
#      an invalid file is refused (old workers keep serving), a valid one
#      reaches every worker and the master's own SHUTDOWN_TIMEOUT, a
#      second SIGHUP during a reload is not lost, a SIGTERM during a
#      reload stops at once, and a worker respawned between reloads runs
#      with the config the master accepted, whatever the file says now.
#   5. A streamed export caught by a signal while the worker is blocked
#      writing it: SIGTERM lets it finish whole; a write that fails anyway
#      cuts the client's connection rather than ending a short file.
# One "ok N - ..." or "not ok N - ..." line per check; exits 1 if any
# failed, 99 if a tool is missing or the stack did not start.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/ops.sh
FIN_PROG=ops
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need curl python3 psql

# Rate limits are not under test here; fast password hashing.
export RATE_LIMIT_IP_PER_MIN=1000000 RATE_LIMIT_USER_PER_MIN=1000000
export RATE_LIMIT_SIGNUP_PER_HOUR=1000 PWHASH_OPSLIMIT=1 PWHASH_MEMLIMIT=8192

e2e_tempdir ops

if ! bash "$stack" start "$dir" >/dev/null; then
	echo "ops: the stack did not start" >&2
	exit 99
fi
# shellcheck disable=SC1091
. "$dir/env"
B=$FIN_BASE_URL/api/v1
pgbin=$(fin_pg_bindir)

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
email=ops-$$@example.com
curl -sf -X POST "$B/auth/signup" -H 'Content-Type: application/json' \
	-d "{\"email\":\"$email\",\"name\":\"Ops\",\"password\":\"Password123!\"}" >/dev/null
token=$(curl -sf -X POST "$B/auth/login" -H 'Content-Type: application/json' \
	-d "{\"email\":\"$email\",\"password\":\"Password123!\"}" | json '["access_token"]')
auth="Authorization: Bearer $token"
for amount in -100 -250 5000; do
	curl -sf -X POST "$B/transactions" -H "$auth" -H 'Content-Type: application/json' \
		-d "{\"amount\":$amount,\"currency\":\"EUR\",\"description\":\"before backup\"}" >/dev/null
done

# ------------------------------------------------ 1. upgrade under load

# A bounded load: 4 clients, 150 requests each, every status recorded.
load() {
	local i
	for i in $(seq 1 150); do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 \
			"$B/transactions?limit=5&q=$1-$i" -H "$auth"
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "$B/health"
	done >"$dir/load-$1.txt"
}
old_workers=$(bash "$stack" workers "$dir" | sort | tr '\n' ' ')
for c in 1 2 3 4; do
	load "$c" &
	bg+=($!)
done

# The new release's migration: additive, so the old workers keep working.
mig=$dir/migrations
mkdir -p "$mig"
cp "$top_srcdir"/db/migrations/*.sql "$mig/"
cat >"$mig/9999_rehearsal.sql" <<'SQL'
-- An upgrade rehearsal: a nullable column, safe while the old code serves.
ALTER TABLE transactions ADD COLUMN rehearsal_note text;
SQL
sleep 0.5
migrate_out=$(env -u FINANCE_ENV_FILE DATABASE_URL="$DATABASE_URL" \
	"$top_builddir/src/finance-migrate" --dir "$mig" 2>&1) || true
verify "finance-migrate applies the new migration while serving" \
	grep -q "applied 9999_rehearsal" <<<"$migrate_out"
kill -HUP "$FIN_MASTER_PID"
wait "${bg[@]}"
bg=()
sleep 1
new_workers=$(bash "$stack" workers "$dir" | sort | tr '\n' ' ')
common=$(comm -12 <(tr ' ' '\n' <<<"$old_workers" | sort) \
	<(tr ' ' '\n' <<<"$new_workers" | sort) | { grep -c . || true; })
verify "SIGHUP replaced every worker ($old_workers-> $new_workers)" \
	test -n "$new_workers" -a "$common" = 0
total=$(cat "$dir"/load-*.txt | wc -l)
bad=$(cat "$dir"/load-*.txt | { grep -vc '^200$' || true; })
verify "no failed request during migrate + reload ($total requests, $bad not 200)" \
	test "$total" = 1200 -a "$bad" = 0
verify "the master is still the same process" kill -0 "$FIN_MASTER_PID"

# ------------------------------------------------ 2. backup and restore

backup=$dir/finance.dump
verify "pg_dump makes a backup" \
	"$pgbin/pg_dump" -Fc -d "$DATABASE_URL" -f "$backup"
curl -sf -X POST "$B/transactions" -H "$auth" -H 'Content-Type: application/json' \
	-d '{"amount":-1,"currency":"EUR","description":"after backup"}' >/dev/null

# Restore as an operator would after losing the database: a new database
# from the dump, swapped in under the old name.
admin_url=${DATABASE_URL%/*}/postgres
psql -qAt -d "$admin_url" -c "CREATE DATABASE finance_restored" >/dev/null
verify "pg_restore restores the backup" \
	"$pgbin/pg_restore" --no-owner -d "${DATABASE_URL%/*}/finance_restored" "$backup"
psql -qAt -d "$admin_url" >/dev/null <<'SQL'
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = 'finance' AND pid <> pg_backend_pid();
ALTER DATABASE finance RENAME TO finance_lost;
ALTER DATABASE finance_restored RENAME TO finance;
SQL
# The workers reconnect by themselves; the first request may race the
# swap, so give it a few bounded tries.
listing=
for _ in 1 2 3 4 5; do
	listing=$(curl -s "$B/transactions?limit=50" -H "$auth") && \
		grep -q '"data"' <<<"$listing" && break
	sleep 0.5
done
rows=$(json '["data"]' <<<"$listing" | python3 -c 'import ast,sys; d=ast.literal_eval(sys.stdin.read()); print(len(d))' 2>/dev/null || echo 0)
verify "the API serves the restored data (3 rows, got $rows)" test "$rows" = 3
# shellcheck disable=SC2016  # $1 is bash -c's own argument
verify "the write after the backup is gone with the restore" \
	bash -c '! grep -q "after backup" <<<"$1"' _ "$listing"
verify "the restored audit trail is there" \
	test "$(psql -qAt -d "$DATABASE_URL" -c "SELECT count(*) FROM audit_events WHERE action = 'transaction_created'")" -ge 3
verify "no worker restarted for the restore" \
	test "$(bash "$stack" workers "$dir" | sort | tr '\n' ' ')" = "$new_workers"

# ------------------------------------------------ 3. SIGTERM under load

# Each request records when it started (ms) and how it ended.
timed_load() {
	local i t
	for i in $(seq 1 200); do
		t=$(date +%s%3N)
		printf '%s %s\n' "$t" "$(curl -s -o "$dir/body-$1" -w '%{http_code}' \
			--max-time 10 "$B/transactions?limit=5&q=t$1-$i" -H "$auth")"
	done >"$dir/term-$1.txt"
}
for c in 1 2 3 4; do
	timed_load "$c" &
	bg+=($!)
done
sleep 1
term_at=$(date +%s%3N)
kill -TERM "$FIN_MASTER_PID"
wait_for 10 test -s "$FIN_MASTER_STATUS" || true
wait "${bg[@]}" || true
bg=()
verify "the master exits 0 after SIGTERM under load (status $(cat "$FIN_MASTER_STATUS" 2>/dev/null))" \
	test "$(cat "$FIN_MASTER_STATUS" 2>/dev/null)" = 0
# A start time is taken before curl runs: allow curl's own start-up (100
# ms) before the request can have reached nginx.
early_bad=$(cat "$dir"/term-*.txt | awk -v t="$term_at" '$1 < t - 100 && $2 != 200' | wc -l)
verify "every request that started before SIGTERM got its 200 ($early_bad did not)" test "$early_bad" = 0
late=$(cat "$dir"/term-*.txt | awk '$2 != 200' | awk '{print $2}' | sort | uniq -c | tr '\n' ' ')
odd=$(cat "$dir"/term-*.txt | awk '$2 != 200 && $2 != 502 && $2 != 503' | wc -l)
verify "after the workers left nginx answered only 502/503 ($late)" test "$odd" = 0

# ------------------------------------------ 4. reloads that change the config

# A master of our own on the stack's socket (nginx still points at it),
# with its settings in an env file.  The settings under test stay out of
# its environment, which would win over the file.
envfile=$dir/finance.env
# write_env RATE_LIMIT LOG_LEVEL SHUTDOWN_TIMEOUT [JWT_SECRET]
write_env() {
	{
		echo "# written by tests/e2e/ops.sh"
		echo "JWT_SECRET=${4:-$JWT_SECRET}"
		echo "REFRESH_TOKEN_SECRET=$REFRESH_TOKEN_SECRET"
		echo "RATE_LIMIT_IP_PER_MIN=$1"
		echo "LOG_LEVEL=$2"
		echo "SHUTDOWN_TIMEOUT=$3"
	} >"$envfile.tmp"
	mv "$envfile.tmp" "$envfile"
}
master=
start_master() {
	(
		unset JWT_SECRET REFRESH_TOKEN_SECRET RATE_LIMIT_IP_PER_MIN \
		    LOG_LEVEL SHUTDOWN_TIMEOUT
		export FINANCE_ENV_FILE=$envfile
		fin_workers_up "$dir" "$1" "$dir"
	) || return 1
	master=$(cut -d' ' -f1 "$dir/run/master.pid")
	# fin_workers_up returns once the workers are forked.  A worker that
	# has not read the file yet would read the next one a check writes
	# (an invalid one, say): wait until each has said it is ready (the
	# files start_master is used with say LOG_LEVEL=info).
	wait_for 30 ready_on_all
}
workers() { fin_children "$master" | paste -sd' '; }
# replaced BEFORE N: N workers, none of them in BEFORE.
replaced() {
	local now p
	now=$(workers)
	[ "$(wc -w <<<"$now")" = "$2" ] || return 1
	for p in $1; do
		[[ " $now " != *" $p "* ]] || return 1
	done
}
# limits N: the RateLimit-Limit of N requests in flight together, so one
# on each of N workers (a worker takes one request at a time).
limits() {
	local i args=()
	for ((i = 0; i < $1; i++)); do
		args+=(-o /dev/null "$B/debug/sleep?ms=300&w=$i")
	done
	{ curl -s -Z --parallel-immediate --max-time 10 \
	    -w '%{http_code} %header{ratelimit-limit}\n' "${args[@]}" 2>/dev/null ||
	    true; } | sort | uniq -c |
	    awk '{ printf "%s%s x%s", sep, $2 " " $3, $1; sep = ", " }'
}
# ready_on_all: every worker logged worker_ready, which LOG_LEVEL=warn hides.
ready_on_all() {
	local p
	for p in $(workers); do
		# shellcheck disable=SC2153  # FIN_LOG comes from the stack's env file
		grep '"event":"worker_ready"' "$FIN_LOG" | grep -q "\"pid\":$p," || return 1
	done
}
master_gone() { [ -s "$dir/run/master.status" ]; }

write_env 500001 info 30
if ! start_master 2; then
	echo "ops: could not start a master with an env file" >&2
	exit 99
fi

# 4a. An invalid env file: the master refuses the reload, nothing changes.
before=$(workers)
write_env 500009 info 30 short
# 100 requests, or fewer when they hang: at most 15 s in all.
(
	end=$(($(date +%s) + 15))
	for i in $(seq 1 100); do
		[ "$(date +%s)" -lt "$end" ] || break
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 2 "$B/health" || true
		sleep 0.02
	done >"$dir/bad-reload.txt"
) &
bg+=($!)
sleep 0.3
kill -HUP "$master"
wait "${bg[@]}" || true
bg=()
sleep 0.5
got=$(wc -l <"$dir/bad-reload.txt")
bad=$({ grep -vc '^200$' "$dir/bad-reload.txt" || true; })
# How many fit in the 15 s depends on the machine; what counts is that
# every one of them, during the refused reload and after it, is a 200.
verify "SIGHUP with an invalid env file: /health 200 throughout ($got requests made, $bad not 200)" \
    test "$got" -ge 10 -a "$bad" = 0
verify "... the same workers keep serving ($before -> $(workers))" \
    test "$(workers)" = "$before"
verify "... the master logs why it refused the reload" \
    grep -q '"event":"reload_refused".*JWT_SECRET is too short' "$FIN_LOG"

# The file fixed: the next SIGHUP reloads every worker with it.
write_env 500002 info 30
kill -HUP "$master"
if wait_for 15 replaced "$before" 2; then
	ok "SIGHUP with the env file fixed replaced every worker ($before -> $(workers))"
else
	not_ok "SIGHUP with the env file fixed replaced every worker" \
	    "before: $before" "now: $(workers)"
fi
seen=$(limits 2)
verify "... and both workers answer with its rate limit ($seen)" \
    test "$seen" = "200 500002 x2"

# 4c. Two SIGHUPs, the file changed in between, while the first reload
# waits for a busy worker: the second must be run after the first.
before=$(workers)
curl -s -o /dev/null -w '%{http_code}' --max-time 15 \
    "$B/debug/sleep?ms=3000" >"$dir/busy.code" &
bg+=($!)
sleep 0.3
write_env 500003 warn 30
kill -HUP "$master"
sleep 0.7
write_env 500004 info 30
kill -HUP "$master"
settled() { replaced "$before" 2 && ready_on_all; }
if wait_for 20 settled; then
	ok "two SIGHUPs during one reload: every worker replaced and started with the last file"
else
	not_ok "two SIGHUPs during one reload: every worker started with the last file" \
	    "before: $before" "now: $(workers) (those without a worker_ready line read LOG_LEVEL=warn)"
fi
seen=$(limits 2)
verify "... and both workers answer with its rate limit ($seen)" \
    test "$seen" = "200 500004 x2"
wait "${bg[@]}" || true
bg=()
verify "the request in flight during both reloads got its 200" \
    test "$(cat "$dir/busy.code")" = 200

# 4e. A worker that dies between reloads comes back with the config the
# master accepted, not with the file as edited since without a SIGHUP:
# neither a new setting (one worker of two on it) nor an invalid file.
# respawned PID: two workers, PID not one of them, each one ready.
respawned() {
	local now
	now=$(workers)
	[ "$(wc -w <<<"$now")" = 2 ] && [[ " $now " != *" $1 "* ]] && ready_on_all
}
# killed_comes_back WHAT: kills a worker; its replacement must serve with
# the accepted config (RateLimit-Limit 500004), whatever the file says.
killed_comes_back() {
	local victim seen
	victim=$(workers | cut -d' ' -f1)
	kill -KILL "$victim"
	if wait_for 15 respawned "$victim"; then
		seen=$(limits 2)
		verify "$1 ($seen)" test "$seen" = "200 500004 x2"
	else
		not_ok "$1" "killed: $victim" "now: $(workers)" \
		    "$(grep '"event":"config_invalid"' "$FIN_LOG" | tail -n 1)"
	fi
}
write_env 500007 info 30
killed_comes_back "a worker killed after an unapplied edit of the env file comes back with the accepted config"
write_env 500008 info 30 short
killed_comes_back "... and after an invalid edit, comes back and serves with it too"

# 4b. The master takes SHUTDOWN_TIMEOUT from a reload too: with 1 s, a
# SIGTERM does not wait for an 8 s request.
before=$(workers)
write_env 500005 info 1
kill -HUP "$master"
wait_for 15 replaced "$before" 2 || true
curl -s -o /dev/null --max-time 15 "$B/debug/sleep?ms=8000" &
bg+=($!)
sleep 0.5
t0=$(date +%s%3N)
kill -TERM "$master"
wait_for 15 master_gone || true
took=$(($(date +%s%3N) - t0))
verify "SHUTDOWN_TIMEOUT=1 from a reload: SIGTERM ends the master in ${took} ms (< 4000)" \
    test "$took" -lt 4000 -a "$(cat "$dir/run/master.status" 2>/dev/null)" = 0
verify "... having killed the busy worker after 1 s" \
    grep -q '"event":"worker_killed".*did not stop in 1s' "$FIN_LOG"
wait "${bg[@]}" || true
bg=()

# 4d. A SIGTERM during a reload stops at once: not after the reload has
# waited SHUTDOWN_TIMEOUT for each of the 3 busy workers in turn.
write_env 500006 info 2
if start_master 3; then
	for c in 1 2 3; do
		curl -s -o /dev/null --max-time 15 "$B/debug/sleep?ms=10000&c=$c" &
		bg+=($!)
	done
	sleep 0.5
	kill -HUP "$master"
	sleep 0.3
	t0=$(date +%s%3N)
	kill -TERM "$master"
	wait_for 15 master_gone || true
	took=$(($(date +%s%3N) - t0))
	verify "SIGTERM during a reload (3 busy workers, SHUTDOWN_TIMEOUT=2) ends the master in ${took} ms (< 4000)" \
	    test "$took" -lt 4000 -a "$(cat "$dir/run/master.status" 2>/dev/null)" = 0
	wait "${bg[@]}" || true
	bg=()
else
	not_ok "a master with 3 workers starts again"
fi

# ------------------------------------------------ 5. signals during an export

# 60,000 rows: a CSV of some 6.7 MB, far more than a socket buffer holds.
psql "$DATABASE_URL" -XqAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO transactions (user_id, amount, currency, description, category, occurred_on)
SELECT u.id, (g % 2001) - 1000, 'EUR', 'Row ' || g || repeat(' and more', g % 4),
       'bulk', date '2025-01-01' + (g % 365)
FROM users u, generate_series(1, 60000) g WHERE u.email = '$email';
SQL
sql() { psql "$DATABASE_URL" -XqAt -c "$1"; }
export_locked() {
	[ "$(sql "SELECT count(*) FROM pg_locks WHERE granted AND relation = 'transactions'::regclass")" -gt 0 ]
}
export_waits() {
	[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")" -gt 0 ]
}

# export_caught COMMAND...: the export, with COMMAND run while the worker
# is blocked writing it to nginx.  A lock holds the export's first
# read until nginx is stopped (SIGSTOP), so that the worker then fills the
# socket and waits in write(); nginx resumes after the signal.  Sets
# caught to curl's exit code and the bytes it got; the body is in
# $dir/caught.csv.
export_caught() {
	local lock client ngx rc=0
	sql "BEGIN; LOCK TABLE transactions; SELECT pg_sleep(2); COMMIT" >/dev/null &
	lock=$!
	wait_for 5 export_locked || true
	: >"$dir/caught.csv"	# curl makes none when nothing comes
	curl -s -o "$dir/caught.csv" -w '%{size_download}' --max-time 20 \
	    "$B/export/transactions.csv" -H "$auth" >"$dir/caught.size" &
	client=$!
	wait_for 5 export_waits || true
	ngx=$(fin_children "$(cut -d' ' -f1 "$dir/run/nginx.pid")")
	# shellcheck disable=SC2086  # one pid a word
	kill -STOP $ngx
	wait "$lock" || true
	sleep 0.5
	"$@" || true
	sleep 0.5
	# shellcheck disable=SC2086
	kill -CONT $ngx
	wait "$client" || rc=$?
	caught="$rc $(cat "$dir/caught.size" 2>/dev/null)"
}

full=0
if fin_workers_up "$dir" 1 "$dir"; then
	got=$(curl -s -o "$dir/full.csv" -w '%{http_code} %{size_download}' \
	    --max-time 20 "$B/export/transactions.csv" -H "$auth")
	verify "the 60,000-row export answers in one piece ($got)" \
	    test "${got% *}" = 200 -a "${got#* }" -gt 5000000
	full=${got#* }
	# A write to nginx that fails half way: SIGUSR1 is libfcgi's own
	# signal, whose handler (unlike SIGTERM's) interrupts the write.
	export_caught kill -USR1 "$(fin_children "$FIN_MASTER_PID")"
	# shellcheck disable=SC2016  # $1 and $2 are bash -c's own arguments
	verify "a response that cannot be written whole is cut: a transfer error, not a short file that looks whole (curl exit, bytes: $caught of $full)" \
	    bash -c '[ "${1% *}" != 0 ] && [ "${1#* }" -lt "$2" ]' _ "$caught" "$full"
	verify "... and what the client got is the start of the export, nothing else" \
	    cmp -s "$dir/caught.csv" <(head -c "$(stat -c %s "$dir/caught.csv")" "$dir/full.csv")
	fin_workers_down "$dir" 20 || true
else
	not_ok "the workers start again for the export checks"
fi
if fin_workers_up "$dir" 1 "$dir"; then
	export_caught kill -TERM "$FIN_MASTER_PID"
	verify "SIGTERM while an export is being written: it finishes whole (curl exit, bytes: $caught of $full)" \
	    test "$caught" = "0 $full"
	verify "... byte for byte" cmp -s "$dir/caught.csv" "$dir/full.csv"
	wait_for 15 test -s "$dir/run/master.status" || true
	verify "... and then the master exits 0 (status $(cat "$dir/run/master.status" 2>/dev/null))" \
	    test "$(cat "$dir/run/master.status" 2>/dev/null)" = 0
else
	not_ok "the workers start again for the export checks"
fi
# PostgreSQL lost half way through: the export cannot be finished, and the
# client must see a failed transfer, not a short file that looks whole.
if fin_workers_up "$dir" 1 "$dir"; then
	# The worker's session sits idle in the export's transaction while it
	# waits on nginx.
	export_caught sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	    WHERE datname = current_database() AND pid <> pg_backend_pid()
	    AND state = 'idle in transaction'"
	# shellcheck disable=SC2016  # $1 and $2 are bash -c's own arguments
	verify "PostgreSQL lost while an export is being written: the transfer fails, no clean short file (curl exit, bytes: $caught of $full)" \
	    bash -c '[ "${1% *}" != 0 ] && [ "${1#* }" -lt "$2" ]' _ "$caught" "$full"
	verify "... and what the client got is the start of the export, nothing else" \
	    cmp -s "$dir/caught.csv" <(head -c "$(stat -c %s "$dir/caught.csv")" "$dir/full.csv")
	got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$B/health")
	verify "... and the worker answers the next request ($got)" test "$got" = 200
	fin_workers_down "$dir" 20 || true
else
	not_ok "the workers start again for the export checks"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
