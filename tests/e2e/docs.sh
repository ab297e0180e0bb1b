#!/usr/bin/env bash
#
# tests/e2e/docs.sh: the documentation says what the code does.  The
# README's configuration table and deploy/finance.env.example list every
# setting of `finance-fcgi --describe-config`, with the same defaults.
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
top_builddir=${top_builddir:-$top_srcdir}

n=0 failed=0
check() {
	local what=$1
	shift
	n=$((n + 1))
	if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=$((failed + 1)); fi
}

table=$("$top_builddir/src/finance-fcgi" --describe-config)
check "finance-fcgi --describe-config prints a table" test -n "$table"
check "README.md holds the configuration table exactly" \
	grep -qxF -- "$(sed -n 3p <<<"$table")" "$top_srcdir/README.md"
missing=
while IFS= read -r row; do
	grep -qxF -- "$row" "$top_srcdir/README.md" || missing="$missing
  $row"
done < <(tail -n +3 <<<"$table")
check "every setting is in README.md with its default${missing:+: missing$missing}" test -z "$missing"
missing=
for var in $(tail -n +3 <<<"$table" | sed -n 's/^| `\([A-Z0-9_]*\)`.*/\1/p'); do
	grep -qE "^#? ?$var=" "$top_srcdir/deploy/finance.env.example" || missing="$missing $var"
done
check "every setting is in deploy/finance.env.example${missing:+: missing$missing}" test -z "$missing"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
