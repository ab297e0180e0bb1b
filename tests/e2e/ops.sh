#!/usr/bin/env bash
#
# tests/e2e/ops.sh: rehearses what deploy/README.md tells an operator to do.
#   1. A zero-downtime upgrade under load: finance-migrate with a new
#      migration, then SIGHUP to the master; no request may fail.
#   2. A backup with pg_dump and a restore into a new database; the API
#      serves the restored data without restarting a worker.
#   3. SIGTERM under load: requests that started before it get their 200,
#      the master exits 0, nginx answers 502/503 after the workers left.
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

echo "1..$n"
[ "$failed" -eq 0 ]
