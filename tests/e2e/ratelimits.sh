#!/usr/bin/env bash
#
# tests/e2e/ratelimits.sh: issue 5 end to end through nginx -- rate limits,
# the admin role, feature flags, the admin audit and account restore.
# Runs tests/e2e/ratelimits_check.py, which starts four stacks one after
# the other with tests/harness/stack (each with the limits its checks
# need, all on free 127.0.0.1 ports, each in a directory under one
# temporary directory) and stops each when its checks are done:
#
#   1  per-IP limit (5 per 3 s, 2 workers): RateLimit-Limit 5, Remaining
#      4,3,2,1,0, the 6th 429 with Retry-After, allowed again after it;
#      both workers drew from one counter (pids from $FIN_LOG); /health
#      (R_NO_RL), /ready and /metrics are never limited
#   2  signup limit (3 per 4 s): 3 x 201, the 4th 429, after the window 201
#   3  login limits leave room for the lockout (defaults: 5 wrong passwords
#      401, the 6th 423, not 429); the per-email limit (3): the 4th login
#      for one email 429, another email still works
#   4  per-user limit (4 per 3 s): the 5th request of one user 429, another
#      user fine
#   5  Redis down: limited routes answer normally, "ratelimit_fail_open" in
#      the log, ratelimit_fail_open_total and redis_errors_total > 0 in
#      /metrics; Redis back: the limit applies again
#   6  finance-admin create-admin / promote / demote; 403 FORBIDDEN for users
#   7  feature flags: a change reaches every worker within a second (and
#      so does turning it off), validation, audit, pdf_export gates the PDF
#      export (skipped with a note while that export answers 404)
#   8  GET /admin/audit: all users, ?user_id, ?action, cursor walk; admin
#      restore of a deleted account
#   9  TRUSTED_PROXIES: the right-most untrusted X-Forwarded-For entry is
#      the client (the audit's ip), REMOTE_ADDR when it is no address
#
# One "ok N - ..." or "not ok N - ..." line per check, "1..N" at the end;
# exits 1 if any failed, 99 if a tool is missing.  Every loop is bounded;
# every address is 127.0.0.1.  Whatever happens, every stack started here
# is stopped: ratelimits_check.py stops each in a finally block, and the
# EXIT trap below stops whatever is still running under the directory.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/ratelimits.sh
# (arguments: the groups to run, of ip signup login admin; default all).
FIN_PROG=ratelimits
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need python3 redis-cli psql
if [ ! -x "$top_builddir/src/finance-admin" ]; then
	echo "ratelimits: $top_builddir/src/finance-admin is not built" >&2
	exit 99
fi

rc=0
checker=

# Every stack under $dir goes down however we leave; the logs are shown
# on a failure.
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	local rc=$? d i
	trap - EXIT INT TERM
	if [ -n "$checker" ] && fin_alive "$checker"; then
		# It stops the stack it is using on SIGTERM (a finally block).
		kill -TERM "$checker" 2>/dev/null || true
		for ((i = 0; i < 600; i++)); do
			fin_alive "$checker" || break
			sleep 0.1
		done
		fin_alive "$checker" && kill -KILL "$checker" 2>/dev/null
		wait "$checker" 2>/dev/null || true
	fi
	for d in "$dir"/*/; do
		[ -d "$d" ] || continue
		e2e_stop_stack "${d%/}" "$rc" || true
	done
	rm -rf "$dir"
	exit "$rc"
}
# One directory for the four stacks; postgres (as its own user) must reach
# the stack directories inside it.
e2e_tempdir rl cleanup
chmod 755 "$dir"

export FIN_RL_ROOT=$dir FIN_STACK=$stack
# In the background, so that a signal reaches the traps at once.
python3 "$here/ratelimits_check.py" "$@" &
checker=$!
wait "$checker" || rc=$?
checker=
exit "$rc"
