#!/usr/bin/env bash
#
# tests/e2e/faults.sh: the stack under faults.  Starts PostgreSQL, Redis,
# the workers and nginx with tests/harness/stack, then kills and restarts
# pieces of it and checks with curl, through nginx, that clients see what
# they should: a killed worker is replaced, a reload (SIGHUP) and a stop
# (SIGTERM) lose no request, /ready follows PostgreSQL and Redis going
# away and coming back without a worker restart, a frozen PostgreSQL costs
# a request a bounded wait and a 503 (a frozen Redis only its timeout),
# clients that never read
# a large export hold no worker, and nginx's own 405 and 413 answer like
# the workers.  One "ok N - ..." or
# "not ok N - ..." line per check; exits 1 if any failed.  Every loop is
# bounded in count and time; every address is 127.0.0.1.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/faults.sh
FIN_PROG=faults
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need python3 psql redis-cli

# Rate limits are not under test here: the loops must not trip them.
export RATE_LIMIT_IP_PER_MIN=1000000
export RATE_LIMIT_SIGNUP_PER_HOUR=1000000
export FIN_WORKERS=2
export SHUTDOWN_TIMEOUT=10

e2e_tempdir faults
# A stack that does not stop cleanly (a worker stuck, say) fails the test.
e2e_stop_must_succeed=1

# ------------------------------------------------------------ reporting

# check DESCRIPTION COMMAND...: ok when COMMAND succeeds; on failure the
# last response is shown.
check() {
	local desc=$1
	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc" "status: $code" "body: $(head -c 300 "$dir/body" 2>/dev/null)"
	fi
}

# ----------------------------------------------------------------- http

code=000
# req PATH [CURL-ARG...]: one request through nginx; sets code, leaves the
# body in $dir/body and the headers in $dir/headers.
req() {
	local path=$1
	shift
	: >"$dir/body"
	: >"$dir/headers"
	code=$(curl -s -o "$dir/body" -D "$dir/headers" -w '%{http_code}' \
	    --max-time 10 "$@" "$FIN_BASE_URL$path" 2>/dev/null) || code=000
}

# header NAME: the value of the last response's header NAME.
header() {
	grep -i -m 1 "^$1:" "$dir/headers" | cut -d: -f2- |
	    sed -e 's/^ *//' -e 's/\r$//'
}

header_count() {
	grep -ci "^$1:" "$dir/headers" || true
}

body_has() {
	grep -q -- "$1" "$dir/body"
}

# The "error" sentence of the last (JSON error) response.
error_text() {
	grep -o -m 1 '"error" *: *"[^"]*"' "$dir/body" || true
}

status_is() {
	req "$2"
	[ "$code" = "$1" ]
}

# A worker holds an accepted connection: a request is in its hands.
in_flight() {
	ss -Hxp state established src "$FIN_SOCKET" 2>/dev/null | grep -q finance-fcgi
}

workers() {
	bash "$stack" workers "$dir" | tr '\n' ' ' | sed 's/ $//'
}

# n_requests COUNT PATH: COUNT sequential GETs; prints the statuses that
# were not 200, one per line (nothing when all succeeded).
n_requests() {
	local i c
	for ((i = 0; i < $1; i++)); do
		c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
		    "$FIN_BASE_URL$2" 2>/dev/null) || c=000
		[ "$c" = 200 ] || echo "request $i: $c"
	done
}

# ---------------------------------------------------------------- start

bash "$stack" start "$dir" >/dev/null || { echo "not ok 1 - the stack starts"; exit 1; }
# shellcheck disable=SC1091
. "$dir/env"
ok "the stack starts (nginx on $FIN_BASE_URL, $FIN_WORKERS workers)"

# ------------------------------------------------------------ the basics

req /api/v1/health
check "GET /health answers 200" [ "$code" = 200 ]
check "GET /health is JSON {\"status\":\"ok\"}" \
    eval 'header Content-Type | grep -q "^application/json" && body_has "\"status\" *: *\"ok\""'
check "GET /health has one X-Request-Id and API-Version: 1" \
    eval '[ "$(header_count X-Request-Id)" = 1 ] && [ -n "$(header X-Request-Id)" ] && [ "$(header API-Version)" = 1 ]'
req /api/v1/health -H 'X-Request-Id: faults-check.1'
check "the caller's X-Request-Id comes back" [ "$(header X-Request-Id)" = faults-check.1 ]

req /api/v1/ready
check "GET /ready answers 200" [ "$code" = 200 ]

req /no/such/page -H 'X-Request-Id: faults-404'
check "nginx answers a non-API path with a JSON 404" \
    eval '[ "$code" = 404 ] && body_has "\"code\": \"NOT_FOUND\"" && body_has "\"request_id\": \"faults-404\"" && [ "$(header X-Request-Id)" = faults-404 ]'
head -c 1100000 /dev/zero | tr '\0' 'a' >"$dir/big.json"
req /api/v1/health -X POST -H 'Content-Type: application/json' --data-binary @"$dir/big.json"
# shellcheck disable=SC2034 # used inside eval
uuid4='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
check "a body over 1 MiB gets a JSON 413 and a UUID v4 request id" \
    eval '[ "$code" = 413 ] && body_has "\"code\": *\"PAYLOAD_TOO_LARGE\"" && header Content-Type | grep -q "^application/json" && header X-Request-Id | grep -Eq "$uuid4"'
rm -f "$dir/big.json"

# A body under 1 MiB of tiny values ("{}," 350,000 times) is refused
# before json-c builds them: each was an object of its own, 280 MB in
# every worker that took one, and glibc kept them after the request.
# rss_max: the largest VmRSS of the workers, in kB.
rss_max() {
	local p kb max=0
	for p in $(workers); do
		kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
		[ "${kb:-0}" -gt "$max" ] && max=$kb
	done
	echo "$max"
}
python3 -c 'import sys; n = (1 << 20) // 3 - 10; sys.stdout.write("{\"email\": [" + ",".join(["{}"] * n) + "]}")' >"$dir/tiny.json"
rss_before=$(rss_max)
u=$FIN_BASE_URL/api/v1/auth/login
tiny_codes=$(for i in 1 2; do curl -s --no-progress-meter --max-time 20 -Z \
    --parallel-immediate -w '%{http_code}\n' -X POST \
    -H 'Content-Type: application/json' --data-binary @"$dir/tiny.json" \
    -o /dev/null "$u" -o /dev/null "$u"; done | sort | uniq -c | tr -s ' \n' ' ')
rss_after=$(rss_max)
check "a body of 350,000 empty objects gets 400 ($tiny_codes)" \
    [ "$tiny_codes" = " 4 400 " ]
check "... and no worker grows by 64 MB for it (largest RSS ${rss_before} kB -> ${rss_after} kB)" \
    [ $((rss_after - rss_before)) -lt 65536 ]
rm -f "$dir/tiny.json"

req /metrics
check "GET /metrics from loopback reaches the workers (200)" [ "$code" = 200 ]

# nginx refuses TRACE (and CONNECT) itself; deploy/nginx.conf answers
# with the Allow the workers give for that path ($fin_allow, a copy of
# src/routes.c).  For every route pattern of src/routes.c: TRACE
# (nginx's answer) and FOO (the workers' answer to an unknown method)
# get the same status, Allow and code.
# answer_of METHOD PATH: "status | Allow | code" of that request.
answer_of() {
	req "$2" -X "$1"
	echo "$code | $(header Allow) | $(grep -o '"code": *"[^"]*"' "$dir/body" | sed 's/.*"\([^"]*\)"$/\1/')"
}
allow_mismatch=
n_routes=0
while read -r pattern prefix; do
	path=$prefix$(sed 's/{[^}]*}/x1/g' <<<"$pattern")	# {id} -> x1
	n_routes=$((n_routes + 1))
	trace=$(answer_of TRACE "$path")
	foo=$(answer_of FOO "$path")
	[ "$trace" = "$foo" ] ||
	    allow_mismatch+="$path: nginx (TRACE) $trace, workers (FOO) $foo;"
done < <(awk -F'"' '/^[ \t]*\{ *M_[A-Z]+ *,/ {
	print $2, (/R_ROOT/ ? "" : "/api/v1") }' "$top_srcdir/src/routes.c" | sort -u)
if [ "$n_routes" -gt 20 ] && [ -z "$allow_mismatch" ]; then
	ok "TRACE answers as the workers answer a wrong method, on all $n_routes route patterns"
else
	not_ok "TRACE answers as the workers answer a wrong method, on every route pattern" \
	    "routes read from src/routes.c: $n_routes" \
	    "${allow_mismatch:0:600}"
fi

# ---------------------------- clients that never read a large export

# Exports are streamed; a client that never reads its response must hold
# nginx's buffers (memory, then a temp file), never a worker.  With
# FIN_WORKERS=2, two clients that do not read /export/me of 50,000
# transactions (12 MB, far more than nginx's buffers and the sockets'),
# plus two on the CSV, would block both workers until send_timeout.
export_rows=50000
export_email=faults-export-$$@example.com
req /api/v1/auth/signup -X POST -H 'Content-Type: application/json' \
    --data "{\"email\": \"$export_email\", \"name\": \"Export\", \"password\": \"correct horse battery staple\"}"
export_uid=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["user"]["id"])' \
    "$dir/body" 2>/dev/null) || export_uid=
req /api/v1/auth/login -X POST -H 'Content-Type: application/json' \
    --data "{\"email\": \"$export_email\", \"password\": \"correct horse battery staple\"}"
export_token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' \
    "$dir/body" 2>/dev/null) || export_token=
# shellcheck disable=SC2034 # used inside eval
seeded=$(psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 -c "
    INSERT INTO transactions (user_id, amount, currency, description, category, occurred_on)
    SELECT '$export_uid', -(100 + g % 5000), 'EUR', 'Export row #' || g, 'food',
        date '2026-01-01' - (g % 1500)
    FROM generate_series(1, $export_rows) AS g" \
    -c "SELECT count(*) FROM transactions WHERE user_id = '$export_uid'" 2>&1) || true
check "a user with $export_rows transactions (signup, login, psql)" \
    eval '[ -n "$export_token" ] && [ "$seeded" = "$export_rows" ]'

# count_rows FILE: the transactions in an /export/me body ("-" if not JSON).
count_rows() {
	python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["transactions"]))' \
	    "$1" 2>/dev/null || echo -
}
timing=$(curl -s -o "$dir/export.json" -w '%{http_code} %{time_starttransfer} %{time_total}' \
    --max-time 20 -H "Authorization: Bearer $export_token" \
    "$FIN_BASE_URL/api/v1/export/me" 2>/dev/null) || timing="000 - -"
read -r code ttfb ttotal <<<"$timing"
export_bytes=$(wc -c <"$dir/export.json")
check "GET /export/me answers all $export_rows rows ($export_bytes bytes; first byte ${ttfb}s, last ${ttotal}s)" \
    eval '[ "$code" = 200 ] && [ "$(count_rows "$dir/export.json")" = "$export_rows" ]'
# shellcheck disable=SC2034 # used inside eval
csv_code=$(curl -s -o "$dir/export.csv" -w '%{http_code}' --max-time 20 \
    -H "Authorization: Bearer $export_token" \
    "$FIN_BASE_URL/api/v1/export/transactions.csv" 2>/dev/null) || csv_code=000
check "GET /export/transactions.csv answers the header and all $export_rows rows" \
    eval '[ "$csv_code" = 200 ] && [ "$(wc -l <"$dir/export.csv")" = $((export_rows + 1)) ]'

before=$(workers)
log_from=$(($(wc -c <"$FIN_LOG") + 1))
# Four clients (two /export/me, two CSV) send their request and never
# read (a 4 KiB receive buffer); the script holds them 30 s at most.
python3 - "$NGINX_PORT" "$export_token" "$dir/noread.open" <<-'PY' &
	import socket, sys, time
	port, token, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
	held = []
	for k, path in enumerate(["/api/v1/export/me", "/api/v1/export/me",
	                          "/api/v1/export/transactions.csv",
	                          "/api/v1/export/transactions.csv"]):
	    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
	    s.settimeout(5)
	    s.connect(("127.0.0.1", port))
	    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	              f"Authorization: Bearer {token}\r\n"
	              f"X-Request-Id: faults-noread-{k}\r\n\r\n".encode())
	    held.append(s)
	open(flag, "w").close()
	time.sleep(30)
	PY
bg+=($!)
noread=$!
# And one that reads, slowly (4 MB/s, about 3 s): it gets the whole export.
curl -s -o "$dir/slow.json" -w '%{http_code}' --max-time 25 --limit-rate 4M \
    -H "Authorization: Bearer $export_token" \
    "$FIN_BASE_URL/api/v1/export/me" >"$dir/slow.code" 2>/dev/null &
bg+=($!)
slow=$!
wait_for 5 test -e "$dir/noread.open" || not_ok "the clients that never read connect within 5 s"
# noread_answered: the workers logged all four requests (nginx holds the
# bytes they wrote).  Without temp files the workers would still be
# writing, until send_timeout (30 s).
noread_answered() {
	[ "$(tail -c "+$log_from" "$FIN_LOG" | grep '"event":"request"' |
	    grep -c '"request_id":"faults-noread-[0-3]"')" = 4 ]
}
if wait_for 10 noread_answered; then
	ok "the workers finish the 4 exports that nobody reads within 10 s"
else
	not_ok "the workers finish the 4 exports that nobody reads within 10 s" \
	    "logged: $(tail -c "+$log_from" "$FIN_LOG" | grep -o '"request_id":"faults-noread-[0-3]"' | tr '\n' ' ')"
fi
# health_fast: /health answers 200 within 1 s, five times in a row.
health_fast() {
	local i t
	for ((i = 0; i < 5; i++)); do
		t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 5 \
		    "$FIN_BASE_URL/api/v1/health" 2>/dev/null) || t="000 5"
		health_seen+="$t; "
		[ "${t% *}" = 200 ] && awk -v t="${t#* }" 'BEGIN { exit !(t < 1) }' || return 1
	done
}
health_seen=
if fin_alive "$noread" && health_fast; then
	ok "with them open, GET /health answers within 1 s (5 of 5)"
else
	not_ok "with them open, GET /health answers within 1 s (5 of 5)" \
	    "seen: $health_seen" "the non-reading clients alive: $(fin_alive "$noread" && echo yes || echo no)"
fi
if fin_wait_gone "$slow" 25; then
	check "a client reading at 4 MB/s gets the whole export meanwhile" \
	    eval '[ "$(cat "$dir/slow.code")" = 200 ] && [ "$(count_rows "$dir/slow.json")" = "$export_rows" ]'
else
	not_ok "a client reading at 4 MB/s gets the whole export within 25 s"
fi
check "no export was cut short" \
    eval '! tail -c "+$log_from" "$FIN_LOG" | grep -q export_cut_short'
check "... and no worker restarted (same pids: $before)" [ "$(workers)" = "$before" ]
fin_stop_tree "$noread" 5 >/dev/null 2>&1 || true
bg=()
rm -f "$dir/export.json" "$dir/export.csv" "$dir/slow.json"

# ------------------------------------------------- a worker killed -9

before=$(workers)
victim=${before%% *}
kill -KILL "$victim"
replaced() {
	local now
	now=$(workers)
	[ "$(wc -w <<<"$now")" = "$FIN_WORKERS" ] && [[ " $now " != *" $victim "* ]]
}
if wait_for 10 replaced; then
	ok "a worker killed with SIGKILL is replaced ($before -> $(workers))"
else
	not_ok "a worker killed with SIGKILL is replaced" "before: $before" "now: $(workers)"
fi
bad=$(n_requests 20 /api/v1/health)
check "the next 20 requests all answer 200" [ -z "$bad" ]
[ -z "$bad" ] || echo "$bad" | head -n 5 | sed 's/^/#   /'

# ----------------------------------------------- SIGHUP: rolling reload

before=$(workers)
n_requests 200 /api/v1/health >"$dir/reload.bad" &
bg+=($!)
loop=$!
curl -s -o "$dir/sleep.body" -w '%{http_code}' --max-time 15 \
    "$FIN_BASE_URL/api/v1/debug/sleep?ms=1000" >"$dir/sleep.code" 2>/dev/null &
bg+=($!)
sleeper=$!
sleep 0.3
kill -HUP "$FIN_MASTER_PID"
# n_requests is bounded: 200 requests of at most 10 s each; give it 60 s.
if fin_wait_gone "$loop" 60; then
	check "200 requests during a SIGHUP reload all answer 200" [ ! -s "$dir/reload.bad" ]
	[ ! -s "$dir/reload.bad" ] || head -n 5 "$dir/reload.bad" | sed 's/^/#   /'
else
	not_ok "200 requests during a SIGHUP reload finish within 60 s"
fi
wait "$sleeper" || true
check "a request in flight during the reload completes with 200" \
    [ "$(cat "$dir/sleep.code")" = 200 ]
reloaded() {
	local now p
	now=$(workers)
	[ "$(wc -w <<<"$now")" = "$FIN_WORKERS" ] || return 1
	for p in $before; do
		[[ " $now " != *" $p "* ]] || return 1
	done
}
if wait_for 20 reloaded; then
	ok "SIGHUP replaced every worker ($before -> $(workers))"
else
	not_ok "SIGHUP replaced every worker" "before: $before" "now: $(workers)"
fi
bg=()

# ------------------------------------------------- PostgreSQL goes away

before=$(workers)
bash "$stack" pg-stop "$dir"
req /api/v1/ready
check "PostgreSQL stopped: /ready answers 503 naming postgres" \
    eval '[ "$code" = 503 ] && [[ $(error_text) == *postgres* ]]'
req /api/v1/health
check "PostgreSQL stopped: /health still answers 200" [ "$code" = 200 ]

bash "$stack" pg-start "$dir"
if wait_for 30 status_is 200 /api/v1/ready; then
	ok "PostgreSQL started again: /ready answers 200 within 30 s"
else
	not_ok "PostgreSQL started again: /ready answers 200 within 30 s" "status: $code" \
	    "body: $(head -c 300 "$dir/body")"
fi
check "... without any worker restart (same pids: $before)" [ "$(workers)" = "$before" ]
# /ready runs a query on the worker's own connection.  Idle workers take
# requests last in, first out, so they go two at a time: both workers
# answer, and so each has reconnected.
pg_ok() {
	local i out u=$FIN_BASE_URL/api/v1/ready
	for ((i = 0; i < 5; i++)); do
		out=$(curl -s --max-time 10 -Z --parallel-immediate \
		    -w '\n%{http_code}\n' "$u" "$u") || return 1
		[ "$(grep -c '^200$' <<<"$out")" = 2 ] &&
		    [ "$(grep -o '"postgres" *: *"ok"' <<<"$out" | wc -l)" = 2 ] || return 1
	done
}
check "requests that query PostgreSQL succeed on every worker" pg_ok
req /api/v1/auth/signup -X POST -H 'Content-Type: application/json' \
    --data "{\"email\": \"faults-$$@example.com\", \"name\": \"Faults\", \"password\": \"correct horse battery staple\"}"
check "a write to PostgreSQL (POST /auth/signup) answers 201" [ "$code" = 201 ]

# ------------------------------------- PostgreSQL stops answering (frozen)

# A server that answers nothing and closes nothing (frozen storage, a
# partition that drops packets): each worker gives up a statement after
# DB_STATEMENT_TIMEOUT (5 s) and 2 s more and answers 503, /ready after
# DB_CONNECT_TIMEOUT (3 s).  On the old workers both requests hung for as
# long as the freeze.
frozen_post() {
	curl -s -o "$dir/frozen.body" -D "$dir/frozen.headers" \
	    -w '%{http_code} %{time_total}\n' --max-time 20 -X POST \
	    -H "Authorization: Bearer $export_token" \
	    -H 'Content-Type: application/json' \
	    -H "Idempotency-Key: faults-frozen-$$" \
	    --data '{"amount": -420, "currency": "EUR", "description": "frozen write", "category": "food", "occurred_on": "2026-11-25"}' \
	    "$FIN_BASE_URL/api/v1/transactions" 2>/dev/null
}
before=$(workers)
bash "$stack" pg-freeze "$dir"
frozen_post >"$dir/frozen.out" &
bg=($!)
sleep 0.5
health_s=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 \
    "$FIN_BASE_URL/api/v1/health" 2>/dev/null) || health_s="000 -"
check "PostgreSQL frozen: /health answers 200 within 1 s (the other worker: $health_s)" \
    eval '[ "${health_s% *}" = 200 ] && awk "BEGIN { exit !(${health_s#* } < 1) }"'
ready_s=$(curl -s -o "$dir/body" -w '%{http_code} %{time_total}' --max-time 20 \
    "$FIN_BASE_URL/api/v1/ready" 2>/dev/null) || ready_s="000 -"
check "PostgreSQL frozen: /ready answers 503 naming postgres within 5 s ($ready_s)" \
    eval '[ "${ready_s% *}" = 503 ] && [[ $(error_text) == *postgres* ]] &&
	awk "BEGIN { exit !(${ready_s#* } < 5) }"'
wait_bg 25
read -r frozen_code frozen_s <"$dir/frozen.out" || frozen_code=000
check "PostgreSQL frozen: a POST answers 503 with Retry-After within 5 + 2 + 3 s ($frozen_code in ${frozen_s:-?} s)" \
    eval '[ "$frozen_code" = 503 ] && grep -qi "^Retry-After: 1" "$dir/frozen.headers" &&
	awk "BEGIN { exit !($frozen_s < 10) }"'
bash "$stack" pg-thaw "$dir"
if wait_for 10 status_is 200 /api/v1/ready; then
	ok "PostgreSQL thawed: /ready answers 200 within 10 s"
else
	not_ok "PostgreSQL thawed: /ready answers 200 within 10 s" "status: $code" \
	    "body: $(head -c 300 "$dir/body")"
fi
check "... without any worker restart (same pids: $before)" [ "$(workers)" = "$before" ]
check "... and both workers query PostgreSQL again" pg_ok
# The frozen write may have run after all when the server woke: sent
# again with its Idempotency-Key, it exists once.
code=$(frozen_post | cut -d' ' -f1)
# shellcheck disable=SC2034 # used inside eval
frozen_rows=$(psql "$DATABASE_URL" -qAt -c "SELECT count(*) FROM transactions
    WHERE user_id = '$export_uid' AND description = 'frozen write'" 2>&1)
check "... the write sent again with its Idempotency-Key answers 201 and exists once ($code, $frozen_rows)" \
    eval '[ "$code" = 201 ] && [ "$frozen_rows" = 1 ]'

# ------------------------------------------------------ Redis goes away

bash "$stack" redis-stop "$dir"
req /api/v1/ready
check "Redis stopped: /ready answers 503 naming redis" \
    eval '[ "$code" = 503 ] && [[ $(error_text) == *redis* ]]'
bash "$stack" redis-start "$dir"
if wait_for 30 status_is 200 /api/v1/ready; then
	ok "Redis started again: /ready answers 200 within 30 s"
else
	not_ok "Redis started again: /ready answers 200 within 30 s" "status: $code" \
	    "body: $(head -c 300 "$dir/body")"
fi
check "... without any worker restart" [ "$(workers)" = "$before" ]

# ----------------------------------------- Redis stops answering (frozen)

# Redis holds only what may be lost: frozen, it costs a request at most
# REDIS_TIMEOUT_MS (200 ms) a command and then its backoff, never a hang
# or an error.
timed() {
	curl -s -o "$dir/body" -w '%{http_code} %{time_total}' --max-time 20 "$@" \
	    2>/dev/null || echo "000 -"
}
# under STATUS SECONDS "CODE TIME": CODE is STATUS and TIME under SECONDS.
under() {
	[ "${3% *}" = "$1" ] && awk "BEGIN { exit !(${3#* } < $2) }"
}
bash "$stack" redis-freeze "$dir"
redis_health=$(timed "$FIN_BASE_URL/api/v1/health")
redis_list=$(timed -H "Authorization: Bearer $export_token" \
    "$FIN_BASE_URL/api/v1/transactions?limit=50")
redis_post=$(timed -X POST -H "Authorization: Bearer $export_token" \
    -H 'Content-Type: application/json' \
    --data '{"amount": -100, "currency": "EUR", "description": "redis frozen", "occurred_on": "2026-11-25"}' \
    "$FIN_BASE_URL/api/v1/transactions")
redis_ready=$(timed "$FIN_BASE_URL/api/v1/ready")
redis_ready_text=$(error_text)
bash "$stack" redis-thaw "$dir"
check "Redis frozen: /health 200 within 1 s ($redis_health)" under 200 1 "$redis_health"
check "Redis frozen: an authenticated list 200 within 2 s ($redis_list)" under 200 2 "$redis_list"
check "Redis frozen: a POST 201 within 2 s ($redis_post)" under 201 2 "$redis_post"
check "Redis frozen: /ready 503 naming redis within 2 s ($redis_ready)" \
    eval 'under 503 2 "$redis_ready" && [[ $redis_ready_text == *redis* ]]'
if wait_for 10 status_is 200 /api/v1/ready; then
	ok "Redis thawed: /ready answers 200 within 10 s"
else
	not_ok "Redis thawed: /ready answers 200 within 10 s" "status: $code" \
	    "body: $(head -c 300 "$dir/body")"
fi

# ------------------------------ Redis refusing writes, still serving reads

# A write whose cache bump Redis refuses (maxmemory reached, noeviction)
# must not leave the old first page to the next read, on any worker:
# PostgreSQL announces it, and no worker reads that user's pages until
# they have expired.  Six reads, so both workers answer.
cache_email=faults-cache-$$@example.com
req /api/v1/auth/signup -X POST -H 'Content-Type: application/json' \
    --data "{\"email\": \"$cache_email\", \"name\": \"Cache\", \"password\": \"correct horse battery staple\"}"
req /api/v1/auth/login -X POST -H 'Content-Type: application/json' \
    --data "{\"email\": \"$cache_email\", \"password\": \"correct horse battery staple\"}"
cache_token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' \
    "$dir/body" 2>/dev/null) || cache_token=
cache_auth=(-H "Authorization: Bearer $cache_token")
cache_post() {
	req /api/v1/transactions -X POST "${cache_auth[@]}" \
	    -H 'Content-Type: application/json' \
	    --data "{\"amount\": -100, \"currency\": \"EUR\", \"description\": \"$1\", \"occurred_on\": \"2026-01-02\"}"
}
cache_post before-oom
cache_hits=
for i in 1 2 3 4; do
	req "/api/v1/transactions?limit=50" "${cache_auth[@]}"
	cache_hits+="$(header X-Cache) "
done
check "a first page read four times is cached ($cache_hits)" \
    eval '[[ "$cache_hits" == *HIT* ]]'
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set maxmemory 1 >/dev/null
cache_post after-oom
post_code=$code
cache_seen=
for i in 1 2 3 4 5 6; do
	req "/api/v1/transactions?limit=50" "${cache_auth[@]}"
	if body_has after-oom; then
		cache_seen+="$code:$(header X-Cache) "
	else
		cache_seen+="$code:$(header X-Cache):STALE "
	fi
done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set maxmemory 0 >/dev/null
check "Redis refusing writes: a POST still answers 201 ($post_code)" \
    [ "$post_code" = 201 ]
check "... and every read after it shows it, on both workers ($cache_seen)" \
    eval '[[ "$cache_seen" != *STALE* && "$cache_seen" != *HIT* ]] && [ "$(grep -o " 200:" <<<" $cache_seen" | wc -l)" = 6 ]'
check "... the worker logs that it announced the stale cache" \
    grep -q '"event":"cache_invalidate_failed".*from PostgreSQL' "$FIN_LOG"

# ---------------------------------------- SIGTERM: graceful stop (last)

before=$(workers)
curl -s -o "$dir/sleep.body" -w '%{http_code}' --max-time 15 \
    "$FIN_BASE_URL/api/v1/debug/sleep?ms=1500" >"$dir/sleep.code" 2>/dev/null &
bg+=($!)
sleeper=$!
if command -v ss >/dev/null 2>&1; then
	wait_for 5 in_flight || not_ok "the /debug/sleep request reaches a worker within 5 s"
else
	sleep 1
fi
kill -TERM "$FIN_MASTER_PID"
wait "$sleeper" || true
check "SIGTERM: the request in flight completes with 200" \
    eval '[ "$(cat "$dir/sleep.code")" = 200 ] && grep -q slept_ms "$dir/sleep.body"'
bg=()
if fin_wait_gone "$FIN_MASTER_PID" $((SHUTDOWN_TIMEOUT + 5)) &&
    wait_for 5 test -s "$FIN_MASTER_STATUS"; then
	check "SIGTERM: the master exits 0" [ "$(cat "$FIN_MASTER_STATUS")" = 0 ]
else
	not_ok "SIGTERM: the master exits within $((SHUTDOWN_TIMEOUT + 5)) s"
fi
left=
for p in $before; do
	! fin_alive "$p" || left+=" $p"
done
check "SIGTERM: no worker is left" [ -z "$left" ]
req /api/v1/health -H 'X-Request-Id: faults-502'
check "with no workers nginx answers a JSON 502" \
    eval '[ "$code" = 502 ] && body_has "\"code\": \"BAD_GATEWAY\"" && [ "$(header X-Request-Id)" = faults-502 ]'
# The workers answer the 413 for a body over 1 MiB (with their CORS
# headers); with none to ask, nginx answers it itself.
head -c 1100000 /dev/zero | tr '\0' 'a' >"$dir/big.json"
req /api/v1/health -X POST -H 'Content-Type: application/json' \
    -H 'X-Request-Id: faults-413' --data-binary @"$dir/big.json"
check "with no workers a body over 1 MiB still gets a JSON 413" \
    eval '[ "$code" = 413 ] && body_has "\"code\": *\"PAYLOAD_TOO_LARGE\"" && [ "$(header X-Request-Id)" = faults-413 ]'
rm -f "$dir/big.json"

e2e_finish
