#!/usr/bin/env bash
#
# tests/e2e/http_cases.sh: the HTTP cases.  Starts the whole stack
# (PostgreSQL, Redis, the workers and nginx with deploy/nginx.conf) with
# tests/harness/stack on free 127.0.0.1 ports, plays every
# tests/http/cases/*.case against it with tests/http/runner, stops the
# stack whatever happened, and exits with the runner's status.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/http_cases.sh
# Extra arguments are passed to the runner before the base URL, and
# FIN_CASES (a glob) picks cases:
#   FIN_CASES='tests/http/cases/1*.case' bash tests/e2e/http_cases.sh -v
FIN_PROG=http_cases
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
runner=$top_builddir/tests/http/runner

if [ ! -x "$runner" ]; then
	echo "http_cases: $runner is not built (make tests/http/runner)" >&2
	exit 99		# automake: a hard error, not a test failure
fi

e2e_tempdir http
rc=0

# Every case signs up and logs in from 127.0.0.1: the real per-IP limits
# would refuse most of them.  The limits themselves are tested on their own
# stack (tests/e2e/ratelimits.sh); here they only need to stay out of the way.
export RATE_LIMIT_SIGNUP_PER_HOUR=${RATE_LIMIT_SIGNUP_PER_HOUR:-100000}
export RATE_LIMIT_LOGIN_IP_PER_15MIN=${RATE_LIMIT_LOGIN_IP_PER_15MIN:-100000}
export RATE_LIMIT_LOGIN_EMAIL_PER_15MIN=${RATE_LIMIT_LOGIN_EMAIL_PER_15MIN:-100000}
export RATE_LIMIT_IP_PER_MIN=${RATE_LIMIT_IP_PER_MIN:-100000}
export RATE_LIMIT_USER_PER_MIN=${RATE_LIMIT_USER_PER_MIN:-100000}
# 015-cors-allowed-origin.case needs one listed origin.
export CORS_ORIGINS=${CORS_ORIGINS:-https://app.example.com}

if ! bash "$stack" start "$dir" >/dev/null; then
	echo "http_cases: the stack did not start" >&2
	exit 99
fi
# shellcheck disable=SC1091
. "$dir/env"

# An unmatched glob stays literal and fails in the runner, loudly.
if [ -n "${FIN_CASES:-}" ]; then
	# shellcheck disable=SC2206
	cases=($FIN_CASES)
else
	cases=("$top_srcdir"/tests/http/cases/*.case)
fi
"$runner" "$@" "$FIN_BASE_URL" "${cases[@]}" || rc=$?
exit "$rc"
