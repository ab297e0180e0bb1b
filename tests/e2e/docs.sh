#!/usr/bin/env bash
#
# tests/e2e/docs.sh: the documentation says what the code does.  The
# README's configuration table and deploy/finance.env.example list every
# setting of `finance-fcgi --describe-config`, with the same defaults.
# The CLIs deploy/README.md names answer --help as it says.
# One "ok N - ..." or "not ok N - ..." line per check; exits 1 if any
# failed.  Starts no stack.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/docs.sh
FIN_PROG=docs
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"

table=$("$top_builddir/src/finance-fcgi" --describe-config)
verify "finance-fcgi --describe-config prints a table" test -n "$table"
verify "README.md holds the configuration table exactly" \
	grep -qxF -- "$(sed -n 3p <<<"$table")" "$top_srcdir/README.md"
missing=
while IFS= read -r row; do
	grep -qxF -- "$row" "$top_srcdir/README.md" || missing="$missing
  $row"
done < <(tail -n +3 <<<"$table")
verify "every setting is in README.md with its default${missing:+: missing$missing}" test -z "$missing"
missing=
# shellcheck disable=SC2016  # the backquotes are the table's, not a command
for var in $(tail -n +3 <<<"$table" | sed -n 's/^| `\([A-Z0-9_]*\)`.*/\1/p'); do
	grep -qE "^#? ?$var=" "$top_srcdir/deploy/finance.env.example" || missing="$missing $var"
done
verify "every setting is in deploy/finance.env.example${missing:+: missing$missing}" test -z "$missing"

# deploy/README.md: finance-migrate and finance-admin, exit codes.
help=$("$top_builddir/src/finance-migrate" --help 2>/dev/null) && rc=0 || rc=$?
verify "finance-migrate --help prints its usage on stdout and exits 0 (exit $rc)" \
	test "$rc" = 0 -a -n "$(grep -F -- '--dir DIR' <<<"$help")"
help=$("$top_builddir/src/finance-admin" --help 2>/dev/null) && rc=0 || rc=$?
verify "finance-admin --help names create-admin, promote and demote, exits 0 (exit $rc)" \
	test "$rc" = 0 -a -n "$(grep -F 'create-admin --email' <<<"$help")" \
	-a -n "$(grep -F 'promote EMAIL' <<<"$help")" \
	-a -n "$(grep -F 'demote EMAIL' <<<"$help")"
# A password on the command line would show in ps: refused, not ignored.
"$top_builddir/src/finance-admin" create-admin --email a@example.com \
	--name A --password 'not here' </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
verify "finance-admin create-admin --password ... is a usage error (exit $rc)" \
	test "$rc" = 2
"$top_builddir/src/finance-migrate" --no-such-option >/dev/null 2>&1 && rc=0 || rc=$?
verify "finance-migrate with an unknown option exits 2 (exit $rc)" test "$rc" = 2
# libpq quotes a connection string it cannot parse, password and all.
out=$(DATABASE_URL='postgresql://u:s3cretpw@[bad' \
	"$top_builddir/src/finance-migrate" --dir "$top_srcdir/db/migrations" 2>&1) && rc=0 || rc=$?
verify "finance-migrate with a malformed DATABASE_URL fails without showing its password (exit $rc)" \
	test "$rc" != 0 -a -z "$(grep -F s3cretpw <<<"$out")" \
	-a -n "$(grep -F 'DATABASE_URL' <<<"$out")"

echo "1..$n"
[ "$failed" -eq 0 ]
