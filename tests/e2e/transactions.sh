#!/usr/bin/env bash
#
# tests/e2e/transactions.sh: /transactions end to end (issue 4), beyond
# what one HTTP case can say.  Starts the whole stack (PostgreSQL, Redis,
# 2 workers, nginx) with tests/harness/stack on free 127.0.0.1 ports, runs
# tests/e2e/transactions_check.py against it, and stops the stack whatever
# happened.  The checks: a walk of every page of a 1,000-row account, the
# plan of the list query (index scan, no sort), idempotency under 8
# parallel requests, the response cache across workers, Redis going away
# and coming back, and 4 concurrent clients whose rows, listing and audit
# trail must agree.  One "ok N - ..." or "not ok N - ..." line per check;
# exits 1 if any failed.  Every loop is bounded; every address 127.0.0.1.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/transactions.sh
FIN_PROG=transactions
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need python3 psql

# Rate limits are not under test here: the loops must not trip them.
export RATE_LIMIT_IP_PER_MIN=1000000
export RATE_LIMIT_USER_PER_MIN=1000000
export RATE_LIMIT_SIGNUP_PER_HOUR=1000000
export RATE_LIMIT_LOGIN_IP_PER_15MIN=1000000
export RATE_LIMIT_LOGIN_EMAIL_PER_15MIN=1000000
# Check (d) is about two workers sharing one cache.
export FIN_WORKERS=2

e2e_tempdir txn
rc=0

if ! bash "$stack" start "$dir" >/dev/null; then
	echo "transactions: the stack did not start" >&2
	exit 99
fi
# shellcheck disable=SC1091
. "$dir/env"
export FIN_STACK=$stack

python3 "$here/transactions_check.py" || rc=$?
exit "$rc"
