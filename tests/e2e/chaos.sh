#!/usr/bin/env bash
#
# tests/e2e/chaos.sh: the stack under chaos (issue 8, section 4 "Faults"),
# end to end through nginx.  Starts PostgreSQL, Redis, 8 workers and nginx
# with tests/harness/stack on free 127.0.0.1 ports, runs
# tests/e2e/chaos_check.py against it, and stops the stack whatever
# happened.  The checks:
#   1  a worker SIGKILLed every 200 ms for 10 s under a write load
#   2  Redis stopped for 5 s under load (and restarted from a snapshot)
#   3  PostgreSQL stopped for 2 s under load
#   4  slow clients: a byte a second, and clients that never read
#   5  10,000 random requests (seeded: CHAOS_SEED)
# One "ok N - ..." or "not ok N - ..." line per check, then "1..N" and
# "P passed, F failed"; exits 1 if any failed.  Every loop is bounded in
# count and time (about 2 minutes in all); every address is 127.0.0.1.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/chaos.sh
FIN_PROG=chaos
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need python3 psql redis-cli

# Rate limits are not under test, except the per-email login limit that
# check 2 exceeds to see it fail open while Redis is down (each of the
# other checks logs a user in once).  The maximum the config accepts is
# 1000000.
export RATE_LIMIT_IP_PER_MIN=1000000
export RATE_LIMIT_USER_PER_MIN=1000000
export RATE_LIMIT_SIGNUP_PER_HOUR=1000000
export RATE_LIMIT_LOGIN_IP_PER_15MIN=1000000
export RATE_LIMIT_LOGIN_EMAIL_PER_15MIN=3
# Fast password hashing: argon2id at its minimum.
export PWHASH_OPSLIMIT=1
export PWHASH_MEMLIMIT=8192
# Eight workers: check 1 kills the oldest every 200 ms, so each lives
# ~1.6 s, past the master's one-second crash-loop backoff threshold; and
# check 4 opens more slow clients than there are workers.
export FIN_WORKERS=8
export LOG_LEVEL=info

e2e_tempdir chaos
rc=0

if ! bash "$stack" start "$dir" >/dev/null; then
	echo "chaos: the stack did not start" >&2
	exit 99
fi
# shellcheck disable=SC1091
. "$dir/env"
export FIN_STACK=$stack

# Bounded: the checks themselves stop within about 2 minutes; this is
# the backstop if one of them hangs.
timeout -k 10 300 python3 "$here/chaos_check.py" || rc=$?
exit "$rc"
