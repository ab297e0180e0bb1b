#!/usr/bin/env bash
#
# tests/e2e/faults.sh: the stack under faults.  Starts PostgreSQL, Redis,
# the workers and nginx with tests/harness/stack, then kills and restarts
# pieces of it and checks with curl, through nginx, that clients see what
# they should: a killed worker is replaced, a reload (SIGHUP) and a stop
# (SIGTERM) lose no request, /ready follows PostgreSQL and Redis going
# away and coming back without a worker restart.  One "ok N - ..." or
# "not ok N - ..." line per check; exits 1 if any failed.  Every loop is
# bounded in count and time; every address is 127.0.0.1.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/faults.sh
FIN_PROG=faults
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"

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
check "nginx answers a body over 1 MiB with a JSON 413 and a UUID v4 request id" \
    eval '[ "$code" = 413 ] && body_has "\"code\": \"PAYLOAD_TOO_LARGE\"" && header Content-Type | grep -q "^application/json" && header X-Request-Id | grep -Eq "$uuid4"'
rm -f "$dir/big.json"

req /metrics
check "GET /metrics from loopback reaches the workers (200)" [ "$code" = 200 ]

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

e2e_finish
