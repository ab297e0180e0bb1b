#!/usr/bin/env bash
#
# tests/e2e/docs.sh: the documentation says what the code does.  The
# README's configuration table and deploy/finance.env.example list every
# setting of `finance-fcgi --describe-config`, with the same defaults.
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

echo "1..$n"
[ "$failed" -eq 0 ]
