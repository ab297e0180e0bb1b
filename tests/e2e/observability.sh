#!/usr/bin/env bash
#
# tests/e2e/observability.sh: what operators watch.
#   1. /metrics is valid Prometheus text (promtool check metrics), summed
#      over the workers, and served through nginx from loopback.
#   2. Error reports reach a Sentry DSN: a local listener on 127.0.0.1
#      plays Sentry's envelope endpoint and records what arrives.  A 5xx
#      and a worker crash are reported, never holding a request, never
#      carrying a password, token or body.
#   3. One JSON log line per request with the fields operators need, also
#      for a request refused before routing (a malformed query string).
#   4. Reports are few and short during an outage: one event when /ready
#      starts failing, not one per probe; one per route and code a
#      minute; a Sentry that never answers holds a worker about 1 s, once.
# One "ok N - ..." or "not ok N - ..." line per check; exits 1 if any
# failed, 99 if a tool is missing or the stack did not start.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/observability.sh
FIN_PROG=observability
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need promtool curl python3

e2e_tempdir obs

# A stand-in for Sentry: records each POST (path, auth header, body) as one
# JSON line, and answers after 1.5 s so that a report that held a request
# would show in that request's time.  Project 44 answers at once, project
# 43 never (a Sentry that accepts and hangs).
cat >"$dir/sentry.py" <<'PY'
import http.server, json, sys, time
out = open(sys.argv[2], "a")
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(json.dumps({"path": self.path,
            "auth": self.headers.get("X-Sentry-Auth", ""),
            "type": self.headers.get("Content-Type", ""),
            "body": body.decode("utf-8", "replace")}) + "\n")
        out.flush()
        if self.path.startswith("/api/43/"):
            time.sleep(60)
        elif not self.path.startswith("/api/44/"):
            time.sleep(1.5)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"id":"x"}')
        except OSError:
            pass    # the sender gave up waiting: that is its right
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
fin_free_port port
python3 "$dir/sentry.py" "$port" "$dir/sentry.jsonl" &
bg+=($!)
wait_for 5 fin_port_in_use "$port" || true

export SENTRY_DSN="http://publickey123@127.0.0.1:$port/42"
export RELEASE=obs-test ENVIRONMENT_NAME=ci CORS_ORIGINS=https://app.example.test
export RATE_LIMIT_IP_PER_MIN=100000 PWHASH_OPSLIMIT=1 PWHASH_MEMLIMIT=8192
if ! bash "$stack" start "$dir" >/dev/null; then
	echo "observability: the stack did not start" >&2
	exit 99
fi
# shellcheck disable=SC1091
. "$dir/env"
B=$FIN_BASE_URL/api/v1
M=$FIN_BASE_URL/metrics

# ---------------------------------------------------------- metrics

for _ in $(seq 1 10); do curl -s -o /dev/null "$B/health"; done
for _ in $(seq 1 5); do curl -s -o /dev/null "$B/nope"; done
curl -s -o /dev/null -X POST "$B/auth/login" -H 'Content-Type: application/json' \
	-d '{"email":"nobody@example.com","password":"Secret-Pass-123"}'
curl -s "$M" >"$dir/metrics.txt"
verify "promtool check metrics accepts /metrics" promtool check metrics <"$dir/metrics.txt"
verify "requests are counted by route, method and status (10 health, summed over workers)" \
	grep -q '^http_requests_total{route="/health",method="GET",status="200"} 1[0-9]*$' "$dir/metrics.txt"
verify "unmatched paths are counted apart" \
	grep -q '^http_requests_total{route="unmatched",method="GET",status="404"} 5$' "$dir/metrics.txt"
verify "the latency histogram has +Inf buckets" \
	grep -q '^http_request_duration_seconds_bucket{route="/health",le="+Inf"}' "$dir/metrics.txt"
for name in worker_restarts_total db_errors_total redis_errors_total rate_limited_total 'logins_total{result="failure"}'; do
	verify "$name is exported" grep -q "^$name " "$dir/metrics.txt"
done
verify "a failed login is counted" grep -q '^logins_total{result="failure"} 1$' "$dir/metrics.txt"

# Each authenticated request counts once in session_checks_total, by what
# said its session was alive.  The workers started moments ago, and for
# their first minute PostgreSQL answers (they have not listened for
# revocations as long as a Redis entry lives).
session_checks() {
	curl -s "$M" | awk -v s="$1" '$1 == "session_checks_total{source=\"" s "\"}" { n = $2 } END { print n + 0 }'
}
curl -s -o /dev/null -X POST "$B/auth/signup" -H 'Content-Type: application/json' \
	-d '{"email":"obs-session@example.com","name":"Obs","password":"Secret-Pass-123"}'
token=$(curl -s -X POST "$B/auth/login" -H 'Content-Type: application/json' \
	-d '{"email":"obs-session@example.com","password":"Secret-Pass-123"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin).get("access_token", ""))')
pg0=$(session_checks postgres)
rd0=$(session_checks redis)
for _ in 1 2 3; do
	curl -s -o /dev/null -H "Authorization: Bearer $token" "$B/auth/me"
done
curl -s -o /dev/null -H "Authorization: Bearer not-a-token" "$B/auth/me"
pg1=$(session_checks postgres)
rd1=$(session_checks redis)
verify "3 authenticated requests count 3 session checks, a forged token none (postgres $pg0 -> $pg1, redis $rd0 -> $rd1)" \
	test $((pg1 - pg0 + rd1 - rd0)) = 3
if [ "$SECONDS" -lt 50 ]; then
	verify "... answered by PostgreSQL in the workers' first minute" \
		test $((pg1 - pg0)) = 3
fi

# A request refused while it is read, before any route is matched: a
# malformed query string.  Logged, counted and given CORS like the rest.
unmatched400() {
	curl -s "$M" | awk '$1 == "http_requests_total{route=\"unmatched\",method=\"GET\",status=\"400\"}" { n = $2 } END { print n + 0 }'
}
before=$(unmatched400)
code=$(curl -s -D "$dir/badq.h" -o "$dir/badq.json" -w '%{http_code}' \
	-H 'X-Request-Id: obs-badq-2' -H 'Origin: https://app.example.test' \
	"$B/transactions?a=%ZZ")
verify "a malformed query string answers 400 ($code)" test "$code" = 400
after=$(unmatched400)
verify "... counted in /metrics as an unmatched route ($before -> $after)" \
	test "$after" = $((before + 1))
line=$(grep '"event":"request"' "$FIN_LOG" | grep '"request_id":"obs-badq-2"' | head -n 1 || true)
verify "... with its JSON access line (status 400, no route)" \
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["status"]==400 and d["route"] is None and d["method"]=="GET"' "$line"
verify "... and CORS headers for an allowed origin" \
	grep -qi '^Access-Control-Allow-Origin: https://app.example.test' "$dir/badq.h"

# ---------------------------------------------------------- Sentry

# A 5xx: PostgreSQL away, a request that needs it answers 503 at once.
bash "$stack" pg-stop "$dir" >/dev/null
t0=$(date +%s%N)
code=$(curl -s -o "$dir/503.json" -w '%{http_code}' -X POST "$B/auth/login" \
	-H 'Content-Type: application/json' -H 'X-Request-Id: obs-503-request' \
	-d '{"email":"someone@example.com","password":"Very-Secret-Pass-9"}')
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
verify "a request while PostgreSQL is down answers 503 ($code)" test "$code" = 503
verify "the report does not hold the request (${ms} ms < 1000; Sentry answers after 1.5 s)" test "$ms" -lt 1000
bash "$stack" pg-start "$dir" >/dev/null

# A crash: a worker killed by SIGSEGV; the master reports it.
victim=$(bash "$stack" workers "$dir" | head -n 1)
kill -SEGV "$victim"
for _ in $(seq 1 60); do
	[ "$(grep -c . "$dir/sentry.jsonl" 2>/dev/null || echo 0)" -ge 2 ] && break
	sleep 0.25
done

python3 - "$dir/sentry.jsonl" >"$dir/sentry.check" <<'PY' || true
import json, sys
events = []
for line in open(sys.argv[1]):
    rec = json.loads(line)
    lines = rec["body"].split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    parsed = [json.loads(l) for l in lines]          # every line is JSON
    assert len(parsed) == 3, "an envelope has three lines"
    assert rec["path"] == "/api/42/envelope/", rec["path"]
    assert "sentry_key=publickey123" in rec["auth"] and "sentry_version=7" in rec["auth"]
    assert parsed[1]["type"] == "event"
    assert parsed[0]["event_id"] == parsed[2]["event_id"]
    events.append((rec, parsed[2]))
five = [e for r, e in events if e["level"] == "error"]
fatal = [e for r, e in events if e["level"] == "fatal"]
print("envelopes", len(events))
print("5xx", len(five), five[0]["tags"].get("request_id") if five else None,
      five[0]["tags"].get("route") if five else None,
      five[0].get("release") if five else None, five[0].get("environment") if five else None)
print("fatal", len(fatal), fatal[0]["message"]["formatted"] if fatal else None)
raw = open(sys.argv[1]).read()
print("secrets", sum(s in raw for s in ("Very-Secret-Pass-9", "someone@example.com", "Bearer", "password")))
PY
sed 's/^/# /' "$dir/sentry.check"
verify "every report is an envelope of three JSON lines at /api/42/envelope/ with X-Sentry-Auth" \
	grep -q '^envelopes [1-9]' "$dir/sentry.check"
verify "the 5xx was reported with its request id, route, release and environment" \
	grep -q '^5xx [1-9][0-9]* obs-503-request /auth/login obs-test ci$' "$dir/sentry.check"
verify "the worker crash was reported as fatal by the master" \
	grep -qE '^fatal [1-9][0-9]* worker [0-9]* (killed by signal 11|exited with status [1-9])' "$dir/sentry.check"
verify "no password, email, token or body reached Sentry" grep -q '^secrets 0$' "$dir/sentry.check"

# ---------------------------------------------------------- logs

line=$(grep '"event":"request"' "$FIN_LOG" | grep '"request_id":"obs-503-request"' | head -n 1)
verify "one JSON access line per request with ts, request_id, method, route, status, duration_ms, user_id, ip" \
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert all(k in d for k in ("ts","request_id","method","route","status","duration_ms","user_id","ip")) and d["status"]==503' "$line"
# shellcheck disable=SC2016  # $1 is bash -c's own argument
verify "no password in the workers' log" bash -c '! grep -q "Very-Secret-Pass-9\|Secret-Pass-123" "$1"' _ "$FIN_LOG"

# ---------------------------------------------------------- Sentry during an outage

# events PROJECT ROUTE: how many events about ROUTE reached /api/PROJECT/.
events() {
	python3 - "$dir/sentry.jsonl" "$1" "$2" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    rec = json.loads(line)
    if rec["path"] == "/api/%s/envelope/" % sys.argv[2]:
        event = json.loads(rec["body"].split("\n")[2])
        n += event["tags"].get("route") == sys.argv[3]
print(n)
PY
}
# ms CURL-ARGS...: how long one request took, in milliseconds.
ms() {
	local t0
	t0=$(date +%s%N)
	curl -s -o /dev/null --max-time 10 "$@" || true
	echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
login503() {
	curl -s -o /dev/null --max-time 10 -X POST "$B/auth/login" \
		-H 'Content-Type: application/json' \
		-d '{"email":"someone@example.com","password":"Very-Secret-Pass-9"}'
}

# One worker (its reports are the ones counted), a Sentry that answers at
# once, PostgreSQL away: a load balancer's probes and a route that fails.
bash "$stack" pg-stop "$dir" >/dev/null
export SENTRY_DSN="http://publickey123@127.0.0.1:$port/44"
if fin_workers_up "$dir" 1 "$dir"; then
	for _ in $(seq 1 8); do
		curl -s -o /dev/null --max-time 10 "$B/ready"
	done
	for _ in $(seq 1 5); do
		login503
	done
	curl -s -o /dev/null "$B/health"	# the worker has sent what it sends
	got=$(events 44 /ready)
	verify "8 failing /ready probes make one Sentry event, not one a probe ($got)" test "$got" = 1
	got=$(events 44 /auth/login)
	verify "5 failing logins make one Sentry event a minute ($got)" test "$got" = 1
else
	not_ok "the workers start again with another SENTRY_DSN"
fi

# A Sentry that accepts and never answers: the worker gives up after about
# a second, then sends nothing for a while, so /health stays fast.
export SENTRY_DSN="http://publickey123@127.0.0.1:$port/43"
if fin_workers_up "$dir" 1 "$dir"; then
	login503
	# The send gives up after 1 s (the old one after 2 s); the margin is
	# for a slow machine, not a speed target.
	took=$(ms "$B/health")
	verify "a Sentry that never answers holds the worker about 1 s (/health after a 503: ${took} ms < 1900)" \
		test "$took" -lt 1900
	for _ in 1 2 3 4; do
		curl -s -o /dev/null --max-time 10 "$B/ready"
	done
	for _ in 1 2 3; do
		login503
	done
	curl -s -o /dev/null "$B/health"	# the worker has sent what it sends
	got=$(( $(events 43 /auth/login) + $(events 43 /ready) ))
	verify "then 4 probes and 3 failing logins try no report: only the first was tried ($got)" \
		test "$got" = 1
else
	not_ok "the workers start again with another SENTRY_DSN"
fi
bash "$stack" pg-start "$dir" >/dev/null

echo "1..$n"
[ "$failed" -eq 0 ]
