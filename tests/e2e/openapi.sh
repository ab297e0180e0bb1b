#!/usr/bin/env bash
#
# tests/e2e/openapi.sh: docs/openapi.yaml is a valid OpenAPI 3.1 document
# and describes the route table.  Checks, one "ok N - ..." or "not ok N -
# ..." line each:
#   - the OpenAPI 3.1 schema and $refs (@seriousme/openapi-schema-validator,
#     pinned in tests/openapi/package.json), every Schema Object in JSON
#     Schema 2020-12 strict mode, every example against its schema, path
#     parameters and operationIds (tests/openapi/lint.mjs);
#   - every route of src/routes.c's routes[] (but R_TEST_ONLY ones) is an
#     operation of the document and every operation is a route, with both
#     differences printed;
#   - each route's request body schema has exactly the fields of its body
#     spec (the *_spec arrays), with the same required flags, types and
#     bounds, and refuses other fields; routes without a spec take no body;
#   - security and error responses follow the route flags (R_PUBLIC, R_AUTH,
#     R_ADMIN, R_NO_RL, a body spec).
# The validator and its dependencies (9 packages, MIT/ISC/BSD) are kept
# in tests/openapi/node_modules, installed from package-lock.json, so the
# test needs no network: a machine whose npm cannot reach the registry
# (no proxy CA, say) still runs it.  Should they be missing or differ from
# the pins, npm ci installs them (into a temporary directory when the
# source tree is read-only, as under make distcheck); a failure to install
# is a hard error (exit 99), never a skip.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/openapi.sh
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
: "${top_srcdir:=$(cd "$here/../.." && pwd -P)}"
: "${top_builddir:=$top_srcdir}"
doc=$top_srcdir/docs/openapi.yaml
routes_c=$top_srcdir/src/routes.c
finance_h=$top_srcdir/lib/finance.h
pkg_src=$top_srcdir/tests/openapi
validator=@seriousme/openapi-schema-validator

die() {
	echo "openapi: $*" >&2
	exit 99		# automake: a hard error, not a test failure
}

for tool in node npm awk comm sort; do
	command -v "$tool" >/dev/null 2>&1 ||
	    die "$tool is missing (script/bootstrap installs nodejs and npm)"
done
for f in "$doc" "$routes_c" "$finance_h" "$pkg_src/package.json" \
    "$pkg_src/package-lock.json" "$pkg_src/lint.mjs"; do
	[ -f "$f" ] || die "$f is missing"
done

# The versions that package.json pins ("name@version ..."), and those
# installed in DIR/node_modules (a missing package is name@none).
read -r node_major wanted pinned < <(node -e '
	const deps = require(process.argv[1]).dependencies;
	console.log(process.versions.node.split(".")[0], deps[process.argv[2]],
	    Object.entries(deps).map(([k, v]) => k + "@" + v).join(" "))' \
    "$pkg_src/package.json" "$validator")
installed() {
	node -e '
	const names = Object.keys(require(process.argv[1]).dependencies);
	console.log(names.map((k) => { let v = "none";
	    try { v = require(process.argv[2] + "/node_modules/" + k + "/package.json").version } catch (e) {}
	    return k + "@" + v }).join(" "))' "$pkg_src/package.json" "$1"
}
[ "$node_major" -ge 18 ] || die "node $(node --version) is too old: 18 or later is needed"

dir=$(mktemp -d "${TMPDIR:-/tmp}/finance-openapi.XXXXXX")
trap 'rm -rf "$dir"' EXIT

# Where lint.mjs runs: next to its node_modules (ES modules resolve
# packages from the importing file's directory).  The source tree's
# tests/openapi when it has them or is writable, else (make distcheck's
# read-only tree: tested by mode, as root may write anyway) a copy in the
# temporary directory, so that nothing is left in the build tree.
pkg=$pkg_src
have=$(installed "$pkg")
if [ "$have" != "$pinned" ] && [ -z "$(find "$pkg_src" -maxdepth 0 -perm -u+w)" ]; then
	pkg=$dir/openapi
	mkdir -p "$pkg"
	cp "$pkg_src/package.json" "$pkg_src/package-lock.json" "$pkg_src/lint.mjs" "$pkg/"
	have=$(installed "$pkg")
fi
if [ "$have" != "$pinned" ]; then
	echo "# installing $pinned: npm ci in $pkg"
	if ! (cd "$pkg" && npm ci --no-audit --no-fund --ignore-scripts \
	    --prefer-offline --fetch-retries=1 --fetch-timeout=60000) >"$dir/npm.log" 2>&1; then
		sed 's/^/# /' "$dir/npm.log" | tail -n 30
		die "npm ci failed in $pkg: the validator could not be installed (is the npm registry reachable?)"
	fi
	[ "$(installed "$pkg")" = "$pinned" ] ||
	    die "npm ci did not install $pinned in $pkg: $(installed "$pkg")"
fi

n=0
failed=0

ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
}
# check DESCRIPTION FILE: ok when FILE is empty, else not ok and FILE's lines.
check_empty() {
	if [ -s "$2" ]; then
		not_ok "$1"
		sed 's/^/#   /' "$2"
	else
		ok "$1"
	fi
}

# ---------------------------------------------------------------- lint

# One node for every check (a node start is not free on a loaded machine).
node "$pkg/lint.mjs" "$doc" validate schemas examples params dump >"$dir/lint.out" 2>&1 || true
# section CHECK: the lines lint.mjs printed for CHECK; fails if it printed
# no verdict for it.
section() {
	awk -v c="$1" '/^== / { on = ($2 == c) } on' "$dir/lint.out" | tail -n +2
	grep -q "^== $1 \(pass\|fail\)\$" "$dir/lint.out"
}
lint() {
	local desc=$1 what=$2
	if grep -qx "== $what pass" "$dir/lint.out"; then
		ok "$desc"
		section "$what" || true
	else
		not_ok "$desc"
		if ! section "$what"; then
			echo "# lint.mjs gave no verdict for $what:"
			sed 's/^/#   /' "$dir/lint.out" | tail -n 30
		fi
	fi
}
lint "docs/openapi.yaml is valid OpenAPI 3.1 and its \$refs resolve ($validator $wanted)" validate
lint "every Schema Object compiles in JSON Schema 2020-12 strict mode (no unknown keywords)" schemas
lint "every example matches its schema" examples
lint "path templates match their path parameters; operationIds are unique" params

if ! grep -qx "== dump pass" "$dir/lint.out"; then
	not_ok "the document's operations can be read"
	section dump | sed 's/^/#   /' || true
	echo "1..$n"
	exit 1
fi
section dump >"$dir/dump"

# ---------------------------------------------------------------- routes.c

# Reads #defines (lib/finance.h, src/routes.c), the *_spec arrays and the
# routes[] rows of src/routes.c.  Prints
#   route METHOD PATH FLAGS BODY	PATH with /api/v1 unless R_ROOT
#   field SPEC NAME|TYPE|REQ|LO|HI|FORMAT
# in the form lint.mjs dump prints the document's.
awk '
function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
function num(s,    neg) {
	s = trim(s); neg = 0
	if (s ~ /^-/) { neg = 1; s = trim(substr(s, 2)) }
	if (s in def) s = def[s]
	sub(/[LlUu]+$/, "", s)
	if (s !~ /^[0-9]+$/) return "?" s
	return neg ? "-" s : s
}
/^#define[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]+[-0-9A-Za-z_]+/ {
	v = $3; sub(/[LlUu]+$/, "", v); def[$2] = v; next
}
FILENAME !~ /routes\.c$/ { next }
/^const struct fin_field [a-z_0-9]+\[\] = \{/ {
	spec = $4; sub(/\[\].*/, "", spec); nspec[spec] = 0; next
}
/^const struct route routes\[\] = \{/ { inroutes = 1; next }
/^\};/ { spec = ""; inroutes = 0; next }
spec != "" && /^[ \t]*\{[ \t]*"/ {
	row = $0; sub(/\/\*.*/, "", row); sub(/^[ \t]*\{/, "", row); sub(/\}[ \t]*,?[ \t]*$/, "", row)
	split(row, c, ",")
	name = trim(c[1]); gsub(/"/, "", name); type = trim(c[2])
	req = trim(c[3]) == "true" ? 1 : 0
	lo = num(c[4]); hi = num(c[5])
	if (trim(c[6]) == "true") type = type "(nullable)"
	if (type == "FIN_F_STRING" || type == "FIN_F_TEXT") { t = "string"; f = "-" }
	else if (type == "FIN_F_EMAIL" || type == "FIN_F_EMAIL_LOGIN") { t = "string"; f = "email" }
	else if (type == "FIN_F_DATE") { t = "string"; f = "date" }
	else if (type == "FIN_F_UUID") { t = "string"; f = "uuid" }
	else if (type == "FIN_F_CURRENCY") { t = "string"; f = "pattern:^[A-Z]{3}$" }
	else if (type == "FIN_F_INT64") { t = "integer"; f = "-" }
	else if (type == "FIN_F_BOOL") { t = "boolean"; f = "-"; lo = "-"; hi = "-" }
	else { t = "?" type; f = "?" }
	print "field " spec " " name "|" t "|" req "|" lo "|" hi "|" f
	nspec[spec]++
	next
}
inroutes && /^[ \t]*\{[ \t]*M_/ {
	row = $0; sub(/\/\*.*/, "", row); sub(/^[ \t]*\{/, "", row); sub(/\}[ \t]*,?[ \t]*$/, "", row)
	split(row, c, ",")
	m = trim(c[1]); sub(/^M_/, "", m)
	p = trim(c[2]); gsub(/"/, "", p)
	fl = c[4]; gsub(/[ \t]/, "", fl)
	b = trim(c[5])
	print "route " m " " (fl ~ /(^|\|)R_ROOT(\||$)/ ? "" : "/api/v1") p " " fl " " b
	next
}
END { for (s in nspec) print "spec " s " " nspec[s] }
' "$finance_h" "$routes_c" >"$dir/routes"

nroutes=$(grep -c '^route ' "$dir/routes" || true)
ntest=$(grep -c '^route .*R_TEST_ONLY' "$dir/routes" || true)
nspecs=$(grep -c '^spec ' "$dir/routes" || true)
: >"$dir/bad"
[ "$nroutes" -gt 0 ] || echo "no routes[] row found" >>"$dir/bad"
[ "$nspecs" -gt 0 ] || echo "no *_spec array found" >>"$dir/bad"
while read -r _ m p fl b; do
	case $b in
	NULL) ;;
	*) grep -q "^spec $b [1-9]" "$dir/routes" ||
	    echo "$m $p: body spec $b has no rows in src/routes.c" >>"$dir/bad" ;;
	esac
done < <(grep '^route ' "$dir/routes")
grep '^field .*|?' "$dir/routes" | sed 's/^field /unknown field type or bound: /' >>"$dir/bad" || true
check_empty "src/routes.c: $nroutes routes ($ntest R_TEST_ONLY, left out), $nspecs body specs parsed" "$dir/bad"

# "METHOD PATH" with every {param} as {}, one per line, sorted.
norm() { sed 's/{[^}]*}/{}/g' | LC_ALL=C sort -u; }
grep '^route ' "$dir/routes" | grep -v 'R_TEST_ONLY' | awk '{ print $2, $3 }' | norm >"$dir/want"
grep '^op ' "$dir/dump" | awk '{ print $2, $3 }' | norm >"$dir/have"
LC_ALL=C comm -23 "$dir/want" "$dir/have" | sed 's/^/missing from docs\/openapi.yaml: /' >"$dir/bad"
check_empty "every route of src/routes.c is in docs/openapi.yaml" "$dir/bad"
LC_ALL=C comm -13 "$dir/want" "$dir/have" | sed 's/^/not a route of src\/routes.c: /' >"$dir/bad"
check_empty "every operation of docs/openapi.yaml is a route of src/routes.c" "$dir/bad"

# ---------------------------------------------------------------- bodies

# The document's operations by "METHOD PATH" with every {param} as {}:
# ops[op|auth|status|body KEY] is the rest of that dump line ("-" when
# none), ops[field KEY] the field lines, one per line.
declare -A ops=()
key_of() {
	local p=$2
	while [[ $p =~ ^(.*)\{[^}]+\}(.*)$ ]]; do
		p="${BASH_REMATCH[1]}{}${BASH_REMATCH[2]}"
	done
	key="$1 $p"
}
while read -r kind m p rest; do
	key_of "$m" "$p"
	case $kind in
	field)	ops[field $key]+="$rest"$'\n' ;;
	*)	ops[$kind $key]=${rest:--} ;;
	esac
done <"$dir/dump"
doc_lines() {
	local key
	key_of "$2" "$3"
	printf '%s' "${ops[$1 $key]:-}"
}

: >"$dir/nobody"
while read -r _ m p fl b; do
	case $fl in *R_TEST_ONLY*) continue ;; esac
	if [ "$b" = NULL ]; then
		[ -z "$(doc_lines body "$m" "$p")" ] ||
		    echo "$m $p: has a requestBody but no body spec in src/routes.c" >>"$dir/nobody"
		continue
	fi
	grep "^field $b " "$dir/routes" | cut -d' ' -f3 | LC_ALL=C sort >"$dir/spec"
	doc_lines field "$m" "$p" | LC_ALL=C sort >"$dir/schema"
	cut -d'|' -f1 "$dir/spec" >"$dir/spec.names"
	cut -d'|' -f1 "$dir/schema" >"$dir/schema.names"
	{
		LC_ALL=C comm -23 "$dir/spec.names" "$dir/schema.names" | sed "s/^/in $b, not in the schema: /"
		LC_ALL=C comm -13 "$dir/spec.names" "$dir/schema.names" | sed "s/^/in the schema, not in $b: /"
		[ -s "$dir/schema.names" ] || [ -n "$(doc_lines op "$m" "$p")" ] ||
		    echo "the operation is not in the document"
	} >"$dir/bad"
	check_empty "$m $p: request body properties are the fields of $b" "$dir/bad"

	{
		LC_ALL=C comm -23 "$dir/spec" "$dir/schema" | sed "s/^/$b says     /"
		LC_ALL=C comm -13 "$dir/spec" "$dir/schema" | sed "s/^/schema says /"
		info=$(doc_lines body "$m" "$p")
		for want in required=true closed=true media=application/json; do
			case " $info " in
			*" $want "*) ;;
			*) echo "requestBody: want $want, have: ${info:-no requestBody}" ;;
			esac
		done
	} >"$dir/bad"
	check_empty "$m $p: required, types and bounds as in $b; unknown fields refused (name|type|required|min|max|format)" "$dir/bad"
done < <(grep '^route ' "$dir/routes")
check_empty "routes without a body spec have no requestBody" "$dir/nobody"

# ---------------------------------------------------------------- flags

# What each route's flags promise: who may call it (security), and the
# error responses that the pipeline gives it whatever its handler does.
: >"$dir/bad"
while read -r _ m p fl b; do
	case $fl in *R_TEST_ONLY*) continue ;; esac
	[ -n "$(doc_lines op "$m" "$p")" ] || continue	# reported above
	auth=$(doc_lines auth "$m" "$p")
	codes=" $(doc_lines status "$m" "$p") "
	need=(500)
	case "|$fl|" in
	*"|R_PUBLIC|"*)
		[ "$auth" = none ] || echo "$m $p: R_PUBLIC but security is $auth" >>"$dir/bad" ;;
	*"|R_AUTH|"*|*"|R_ADMIN|"*)
		[ "$auth" = bearerAuth ] || echo "$m $p: needs a token but security is $auth" >>"$dir/bad"
		need+=(401) ;;
	*)	echo "$m $p: neither R_PUBLIC nor R_AUTH nor R_ADMIN" >>"$dir/bad" ;;
	esac
	case "|$fl|" in *"|R_ADMIN|"*) need+=(403) ;; esac
	case "|$fl|" in
	*"|R_NO_RL|"*)
		case $codes in *" 429 "*) echo "$m $p: R_NO_RL but lists 429" >>"$dir/bad" ;; esac ;;
	*)	need+=(429) ;;
	esac
	[ "$b" = NULL ] || need+=(400 413 415)
	for c in "${need[@]}"; do
		case $codes in
		*" $c "*) ;;
		*) echo "$m $p ($fl, body $b): response $c is missing" >>"$dir/bad" ;;
		esac
	done
done < <(grep '^route ' "$dir/routes")
check_empty "security and error responses follow the route flags (R_PUBLIC/R_AUTH/R_ADMIN/R_NO_RL, body specs)" "$dir/bad"

echo "1..$n"
[ "$failed" -eq 0 ]
