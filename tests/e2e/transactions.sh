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
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
: "${top_srcdir:=$(cd "$here/../.." && pwd -P)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
FIN_PROG=transactions
# shellcheck source=tests/harness/lib.sh
. "$top_srcdir/tests/harness/lib.sh"
stack=$top_srcdir/tests/harness/stack

for prog in python3 psql; do
	if ! command -v "$prog" >/dev/null 2>&1; then
		echo "transactions: $prog is needed" >&2
		exit 99		# automake: a hard error, not a test failure
	fi
done

# Rate limits are not under test here: the loops must not trip them.
export RATE_LIMIT_IP_PER_MIN=1000000
export RATE_LIMIT_USER_PER_MIN=1000000
export RATE_LIMIT_SIGNUP_PER_HOUR=1000000
export RATE_LIMIT_LOGIN_IP_PER_15MIN=1000000
export RATE_LIMIT_LOGIN_EMAIL_PER_15MIN=1000000
# Check (d) is about two workers sharing one cache.
export FIN_WORKERS=2

dir=$(mktemp -d "${TMPDIR:-/tmp}/finance-txn.XXXXXX")
rc=0

# The stack goes down however we leave; its logs are shown on a failure.
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	local st=$?
	trap - EXIT INT TERM
	[ "$rc" -ne 0 ] || rc=$st
	if [ -f "$dir/env" ]; then
		bash "$stack" stop "$dir" || true
	else
		fin_down "$dir" >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ]; then
		fin_tail_logs "$dir/logs/finance.log" "$dir/nginx/logs/error.log" \
		    "$dir/logs/postgres.log" "$dir/logs/redis.log" || true
	fi
	rm -rf "$dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! bash "$stack" start "$dir" >/dev/null; then
	echo "transactions: the stack did not start" >&2
	rc=99
	exit 99
fi
# shellcheck disable=SC1091
. "$dir/env"
export FIN_STACK=$stack

python3 "$here/transactions_check.py" || rc=$?
exit "$rc"
