# shellcheck shell=bash
#
# tests/e2e/common.sh: what every end-to-end script starts with, sourced
# as its first command after setting FIN_PROG (the name its messages
# carry):
#
#	FIN_PROG=faults
#	# shellcheck source=tests/e2e/common.sh
#	. "$(dirname "$0")/common.sh"
#
# It re-runs the script under bash, sets -euo pipefail, sets here (the
# script's directory), top_srcdir and top_builddir (exported), sources
# tests/harness/lib.sh and sets stack (tests/harness/stack).  Then:
#
#   e2e_need TOOL...        exit 99 unless every TOOL is on PATH
#   e2e_tempdir PREFIX [FN] dir=a new temporary directory; FN (default
#                           e2e_cleanup) runs on exit, INT exits 130 and
#                           TERM 143
#   e2e_stop_stack DIR FAILING  stop the stack in DIR, logs when failing
#   ok, not_ok              one "ok N - ..." / "not ok N - ..." line
#   verify DESC COMMAND...  ok DESC when COMMAND succeeds, else not ok
#   e2e_finish              the sanitizer check and the plan line, last
#   wait_for SECONDS CMD... retry CMD every 0.2 s for SECONDS
#
# Exit codes are automake's: 0 pass, 1 fail, 99 a hard error (a missing
# tool, a stack that did not start), which is not a test failure.

# Re-run under bash when started by sh (make check's SH_LOG_COMPILER).
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
: "${top_srcdir:=$(cd "$here/../.." && pwd -P)}"
export top_srcdir
# shellcheck source=tests/harness/lib.sh
. "$top_srcdir/tests/harness/lib.sh"
# lib.sh picks top_builddir when it is unset (the tree or its build/).
export top_builddir
stack=$top_srcdir/tests/harness/stack

# What the cleanup reads: background pids to stop (the script adds its
# own), the count of checks and failures, and whether a failed `stack
# stop` fails the test (for scripts that check how the stack goes down).
bg=()
n=0
failed=0
e2e_stop_must_succeed=0

e2e_need() {
	local tool
	for tool in "$@"; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "$FIN_PROG: $tool is needed (script/bootstrap installs it)" >&2
			exit 99
		fi
	done
}

# e2e_stop_stack DIR FAILING: stops the stack in DIR, or whatever of it
# had started when there is no DIR/env; shows the end of its logs when
# FAILING is not 0 or the stop failed.  Returns 1 when `stack stop` failed.
e2e_stop_stack() {
	local d=$1 failing=$2 st=0
	if [ -f "$d/env" ]; then
		bash "$stack" stop "$d" || st=1
	else
		fin_down "$d" >/dev/null 2>&1 || true
	fi
	if [ "$failing" -ne 0 ] || [ "$st" -ne 0 ]; then
		fin_tail_logs "$d/logs/finance.log" "$d/nginx/logs/error.log" \
		    "$d/logs/postgres.log" "$d/logs/redis.log" || true
	fi
	return "$st"
}

# The stack in $dir and every background pid go down however the script
# leaves; a failed check makes the exit code 1 even if the script did not.
# shellcheck disable=SC2317  # run by the EXIT trap
e2e_cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	[ "$failed" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
	for p in "${bg[@]}"; do
		fin_stop_tree "$p" 5 >/dev/null 2>&1 || true
	done
	if ! e2e_stop_stack "$dir" "$rc" && [ "$e2e_stop_must_succeed" -ne 0 ]; then
		rc=1
	fi
	rm -rf "$dir"
	exit "$rc"
}

# wait_bg SECONDS: waits for every background pid in bg, each for at
# most SECONDS, then forgets them.
wait_bg() {
	local p
	for p in "${bg[@]}"; do
		fin_wait_gone "$p" "$1" || true
	done
	bg=()
}

# e2e_tempdir PREFIX [FN]: sets dir to a new directory under TMPDIR and
# arranges for FN to run however the script leaves.
e2e_tempdir() {
	dir=$(mktemp -d "${TMPDIR:-/tmp}/finance-$1.XXXXXX")
	# shellcheck disable=SC2064  # FN is known now
	trap "${2:-e2e_cleanup}" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# wait_for SECONDS COMMAND...: retries COMMAND every 0.2 s.
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

# ------------------------------------------------------------ reporting

ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}

# verify DESCRIPTION COMMAND...: for checks whose description carries
# what was seen; a script that shows the last response on a failure has a
# check of its own.
verify() {
	local desc=$1
	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc"
	fi
}

# e2e_finish: the last check of a script that ran workers -- no sanitizer
# report in their log -- and the plan line; false if any check failed.
e2e_finish() {
	local reports
	# shellcheck disable=SC2153  # FIN_LOG comes from the stack's env file
	reports=$(fin_sanitizer_reports "$FIN_LOG")
	if [ -z "$reports" ]; then
		ok "no sanitizer report in the workers' log"
	else
		mapfile -t reports < <(head -n 5 <<<"$reports")
		not_ok "no sanitizer report in the workers' log" "${reports[@]}"
	fi
	echo "1..$n"
	[ "$failed" -eq 0 ]
}

# not_ok DESCRIPTION [DETAIL...]: each DETAIL on a "#   " line.
not_ok() {
	local l
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for l in "$@"; do
		echo "#   $l"
	done
}
