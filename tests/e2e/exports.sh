#!/usr/bin/env bash
#
# tests/e2e/exports.sh: the exports through nginx and the workers.  Starts
# the whole stack with tests/harness/stack, signs a user up, creates
# transactions in EUR, JPY and BHD whose text is hostile (formulas,
# quotes, commas, newlines, "Café", "Zürich", "東京", "🎉"), then reads
# back the CSV with python3's csv module, the PDF statement with
# pdftotext (poppler-utils) and the GDPR export with python3's json;
# checks an empty account's exports, a 10,000-row statement, the from/to
# filter and its validation, and the pdf_export flag.  One "ok N - ..."
# or "not ok N - ..." line per check; exits 1 if any failed.  Every
# address is 127.0.0.1 and every wait is bounded.
#
# Run by make check (SH_LOG_COMPILER, with top_srcdir/top_builddir set),
# or by hand: top_srcdir=. top_builddir=. bash tests/e2e/exports.sh
FIN_PROG=exports
# shellcheck source=tests/e2e/common.sh
. "$(dirname "$0")/common.sh"
e2e_need curl python3 psql pdftotext pdfinfo

# Rate limits are not under test here.
export RATE_LIMIT_IP_PER_MIN=1000000
export RATE_LIMIT_USER_PER_MIN=1000000
export RATE_LIMIT_SIGNUP_PER_HOUR=1000000

e2e_tempdir exports
# A stack that does not stop cleanly (a worker stuck, say) fails the test.
e2e_stop_must_succeed=1
out=$dir/out

# ------------------------------------------------------------ reporting

# check DESCRIPTION COMMAND...: ok when COMMAND succeeds, else its output.
check() {
	local what=$1 log
	shift
	log=$("$@" 2>&1) && { ok "$what"; return 0; }
	not_ok "$what" "${log:0:2000}"
	return 0
}

# ------------------------------------------------------------ HTTP

# http METHOD PATH [TOKEN] [BODY]: the body into $out.body, the headers
# into $out.head, the status on stdout.
http() {
	local method=$1 path=$2 token=${3:-} body=${4:-}
	local args=(-s --max-time 60 -D "$out.head" -o "$out.body" -w '%{http_code}')
	# curl -X HEAD would wait for a body that never comes.
	if [ "$method" = HEAD ]; then args+=(-I); else args+=(-X "$method"); fi
	[ -z "$token" ] || args+=(-H "Authorization: Bearer $token")
	[ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
	curl "${args[@]}" "$FIN_BASE_URL/api/v1$path"
}

header() {
	tr -d '\r' <"$out.head" | awk -v h="$1" \
	    'BEGIN { IGNORECASE = 1 } tolower($0) ~ "^" tolower(h) ":" { sub(/^[^:]*: */, ""); print; exit }'
}

# The value at a path of the JSON in FILE, e.g. json_get f '["code"]'.
json_get() {
	python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in json.loads(sys.argv[2]): v = v[k]
print(v)' "$1" "$2"
}

# signup_login EMAIL NAME: prints an access token.
signup_login() {
	local st
	st=$(http POST /auth/signup "" "{\"email\":\"$1\",\"name\":\"$2\",\"password\":\"Password123!\"}")
	[ "$st" = 201 ] || { echo "signup of $1: $st $(cat "$out.body")" >&2; return 1; }
	st=$(http POST /auth/login "" "{\"email\":\"$1\",\"password\":\"Password123!\"}")
	[ "$st" = 200 ] || { echo "login of $1: $st $(cat "$out.body")" >&2; return 1; }
	json_get "$out.body" '["access_token"]'
}

expect_status() {
	[ "$1" = "$2" ] || { echo "status $1, expected $2: $(head -c 500 "$out.body")"; return 1; }
}

# ------------------------------------------------------------ the stack

if ! bash "$stack" start "$dir" >/dev/null; then
	echo "exports: the stack did not start" >&2
	exit 99
fi
# shellcheck disable=SC1091
. "$dir/env"

alice=$(signup_login alice@example.com 'Alice Zürich')
empty=$(signup_login empty@example.com 'Empty Account')
bulk=$(signup_login bulk@example.com 'Bulk Account')

# The transactions, with the ids kept for the checks.
create() {
	local st
	st=$(http POST /transactions "$alice" "$1")
	[ "$st" = 201 ] || { echo "create: $st $(cat "$out.body")" >&2; return 1; }
	json_get "$out.body" '["transaction","id"]'
}
t_formula=$(create '{"amount":-1250,"currency":"EUR","description":"=HYPERLINK(\"http://evil.example\",\"click\")","category":"Food","occurred_on":"2026-01-05"}')
t_tokyo=$(create '{"amount":1500,"currency":"JPY","description":"東京 🎉 trip, \"day one\"\r\nsecond line","category":"+travel","occurred_on":"2026-01-06"}')
t_zurich=$(create '{"amount":1250,"currency":"BHD","description":"Café Zürich","category":"@fees","occurred_on":"2026-01-07"}')
t_long=$(create '{"amount":-99,"currency":"EUR","description":"A very long description that goes on and on well past the width of the description column of the statement","category":"-minus","occurred_on":"2026-01-08"}')
t_gone=$(create '{"amount":-500,"currency":"EUR","description":"deleted later","category":"x","occurred_on":"2026-01-09"}')
st=$(http DELETE "/transactions/$t_gone" "$alice")
check "a transaction is deleted for the exports" expect_status "$st" 204

# ------------------------------------------------------------ CSV

st=$(http GET /export/transactions.csv "$alice")
check "CSV export answers 200" expect_status "$st" 200
cp "$out.body" "$dir/alice.csv"
check "CSV Content-Type is text/csv; charset=utf-8" \
    test "$(header Content-Type)" = "text/csv; charset=utf-8"
check "CSV Content-Disposition names today's file" \
    test "$(header Content-Disposition)" = "attachment; filename=\"transactions-$(date -u +%F).csv\""
check "CSV is never cached" test "$(header Cache-Control)" = "no-store"

check "CSV reads back row for row with python's csv module" \
    python3 - "$dir/alice.csv" "$t_formula" "$t_tokyo" "$t_zurich" "$t_long" "$t_gone" <<'EOF'
import csv, io, sys
raw = open(sys.argv[1], "rb").read()
t_formula, t_tokyo, t_zurich, t_long, t_gone = sys.argv[2:]
text = raw.decode("utf-8")
assert not text.startswith("\ufeff"), "a byte order mark"
rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
assert rows[0] == ["id", "occurred_on", "amount", "amount_minor", "currency",
    "category", "description", "created_at"], rows[0]
body = {r[0]: r for r in rows[1:]}
assert len(rows) == 5, "%d rows: %r" % (len(rows), rows)
assert t_gone not in body, "the deleted transaction is exported"
assert [r[0] for r in rows[1:]] == [t_formula, t_tokyo, t_zurich, t_long], "order"
r = body[t_formula]
assert r[1:6] == ["2026-01-05", "-12.50", "-1250", "EUR", "Food"], r
assert r[6] == "'=HYPERLINK(\"http://evil.example\",\"click\")", r[6]
r = body[t_tokyo]
assert r[1:6] == ["2026-01-06", "1500", "1500", "JPY", "'+travel"], r
assert r[6] == "東京 🎉 trip, \"day one\"\r\nsecond line", repr(r[6])
r = body[t_zurich]
assert r[1:7] == ["2026-01-07", "1.250", "1250", "BHD", "'@fees", "Café Zürich"], r
r = body[t_long]
assert r[2:6] == ["-0.99", "-99", "EUR", "'-minus"], r
for r in rows[1:]:
    assert r[7].endswith("Z") and "T" in r[7], r[7]
EOF

check "CSV records end in CRLF (a bare LF only inside a quoted field)" \
    python3 - "$dir/alice.csv" <<'EOF'
import sys
raw = open(sys.argv[1], "rb").read()
assert raw.endswith(b"\r\n")
quoted = False
for i, b in enumerate(raw):
    if b == ord('"'):
        quoted = not quoted
    elif b == ord("\n") and not quoted:
        assert i > 0 and raw[i - 1] == ord("\r"), "bare LF at byte %d" % i
EOF

st=$(http GET '/export/transactions.csv?from=2026-01-06&to=2026-01-07' "$alice")
check "CSV from/to keeps the rows of the range" python3 -c '
import csv, io, sys
rows = list(csv.reader(io.StringIO(open(sys.argv[1], encoding="utf-8").read(), newline="")))
assert [r[1] for r in rows[1:]] == ["2026-01-06", "2026-01-07"], rows' "$out.body"
check "CSV with a range names it in the file name" \
    test "$(header Content-Disposition)" = 'attachment; filename="transactions-2026-01-06-to-2026-01-07.csv"'

st=$(http GET '/export/transactions.csv?from=2026-02-30' "$alice")
check "CSV with an impossible date is 400 VALIDATION_ERROR on from" sh -c '
[ "$1" = 400 ] && [ "$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d[\"code\"], \"from\" in d[\"fields\"])" "$2")" = "VALIDATION_ERROR True" ]' _ "$st" "$out.body"
check "that error is JSON, not an attachment" sh -c '
[ -z "$1" ] && [ "$2" = "application/json; charset=utf-8" ]' _ \
    "$(header Content-Disposition)" "$(header Content-Type)"
st=$(http GET '/export/transactions.csv?from=2026-02-01&to=2026-01-01' "$alice")
check "CSV with to before from is 400 on to" sh -c '
[ "$1" = 400 ] && grep -q "\"to\"" "$2"' _ "$st" "$out.body"
st=$(http GET /export/transactions.csv)
check "CSV without a token is 401" expect_status "$st" 401

st=$(http GET /export/transactions.csv "$empty")
check "an empty account's CSV is the header row alone" sh -c '
[ "$1" = 200 ] && [ "$(cat "$2")" = "$(printf "id,occurred_on,amount,amount_minor,currency,category,description,created_at\r\n")" ]' _ "$st" "$out.body"

# ------------------------------------------------------------ PDF

st=$(http GET /export/transactions.pdf "$alice")
check "PDF export answers 200" expect_status "$st" 200
cp "$out.body" "$dir/alice.pdf"
check "PDF Content-Type and Content-Disposition" sh -c '
[ "$1" = application/pdf ] && [ "$2" = "attachment; filename=\"statement-$(date -u +%F).pdf\"" ]' _ \
    "$(header Content-Type)" "$(header Content-Disposition)"
check "PDF is a PDF" sh -c 'head -c 5 "$1" | grep -q "^%PDF-" && pdfinfo "$1" >/dev/null 2>&1' _ "$dir/alice.pdf"
pdftotext -layout "$dir/alice.pdf" "$dir/alice.txt" 2>/dev/null
check "PDF statement text: title, holder, period, rows and totals" \
    python3 - "$dir/alice.txt" <<'EOF'
import re, sys
t = open(sys.argv[1], encoding="utf-8").read()
def has(s):
    assert s in t, "%r not in:\n%s" % (s, t)
for s in ["Statement", "Alice Zürich <alice@example.com>", "Period: all time",
          "Generated:", "Date", "Description", "Category", "Amount",
          "=HYPERLINK(\"http://evil.example\",\"click\")", "-12.50 EUR",
          "1500 JPY", "1.250 BHD", "-0.99 EUR", "Café Zürich",
          "?? ? trip", "+travel", "Totals", "Page 1 of 1"]:
    has(s)
assert "deleted later" not in t, "a deleted transaction in the statement"
assert "東京" not in t and "🎉" not in t, "glyphs the font lacks"
assert "…" in t, "no ellipsis on the long description"
assert "width of the description column of the statement" not in t, "not cut"
# Totals per currency: count, money in, money out, net.
has("Totals per currency")
assert re.search(r"Currency\s+Transactions\s+Money in\s+Money out\s+Net", t), t
for cur, line in [("BHD", r"BHD\s+1\s+1\.250 BHD\s+0\.000 BHD\s+1\.250 BHD"),
                  ("EUR", r"EUR\s+2\s+0\.00 EUR\s+-13\.49 EUR\s+-13\.49 EUR"),
                  ("JPY", r"JPY\s+1\s+1500 JPY\s+0 JPY\s+1500 JPY")]:
    assert re.search(line, t), "no %s total in:\n%s" % (cur, t)
EOF

st=$(http GET '/export/transactions.pdf?from=2026-01-06&to=2026-01-06' "$alice")
pdftotext -layout "$out.body" "$dir/range.txt" 2>/dev/null || true
check "PDF with a range prints the period and its rows only" sh -c '
[ "$1" = 200 ] && grep -q "Period: 2026-01-06 – 2026-01-06" "$2" &&
! grep -q "12.50 EUR" "$2" && grep -q "1500 JPY" "$2"' _ "$st" "$dir/range.txt"

st=$(http GET /export/transactions.pdf "$empty")
pdftotext -layout "$out.body" "$dir/empty.txt" 2>/dev/null || true
check "an empty account's PDF is a valid one-page statement" sh -c '
[ "$1" = 200 ] && pdfinfo "$2" 2>/dev/null | grep -q "^Pages: *1$" &&
grep -q "No transactions in this period." "$3" && grep -q "Page 1 of 1" "$3"' _ \
    "$st" "$out.body" "$dir/empty.txt"

# 10,000 rows straight into PostgreSQL: the API would take minutes.
psql "$DATABASE_URL" -XqAt -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
INSERT INTO transactions (user_id, amount, currency, description, category, occurred_on)
SELECT u.id, (g % 2001) - 1000,
       (ARRAY['EUR', 'JPY', 'BHD'])[g % 3 + 1],
       'Bulk ' || g || repeat(' and more words', g % 4), 'bulk',
       date '2025-01-01' + (g % 365)
FROM users u, generate_series(1, 10000) g
WHERE u.email = 'bulk@example.com';
EOF
st=$(http GET /export/transactions.pdf "$bulk")
cp "$out.body" "$dir/bulk.pdf"
pages=$(pdfinfo "$dir/bulk.pdf" 2>/dev/null | awk '/^Pages:/ { print $2 }')
pdftotext -layout "$dir/bulk.pdf" "$dir/bulk.txt" 2>/dev/null || true
check "a 10,000-row statement renders ($pages pages)" sh -c '
[ "$1" = 200 ] && [ "${2:-0}" -gt 100 ]' _ "$st" "$pages"
check "its pages are numbered 1 to $pages of $pages" sh -c '
grep -q "Page 1 of $2" "$1" && grep -q "Page $2 of $2" "$1" &&
[ "$(grep -c "Page [0-9]* of $2" "$1")" = "$2" ]' _ "$dir/bulk.txt" "$pages"
check "its column headers are on every page" sh -c '
[ "$(grep -c "^ *Date  *Description  *Category  *Amount" "$1")" = "$2" ]' _ "$dir/bulk.txt" "$pages"
check "its totals count every row" python3 - "$dir/bulk.txt" <<'EOF'
import re, sys
t = open(sys.argv[1], encoding="utf-8").read()
counts = [int(c) for c in re.findall(r"^(?:BHD|EUR|JPY)\s+(\d+)\s", t, re.M)]
assert sum(counts) == 10000, counts
EOF
st=$(http GET /export/transactions.csv "$bulk")
check "the 10,000-row CSV has 10,001 records" sh -c '
[ "$1" = 200 ] && [ "$(grep -c "" "$2")" = 10001 ]' _ "$st" "$out.body"

# The flag: off is a 404, on again a 200, within the flags' second.
psql "$DATABASE_URL" -XqAt -c "UPDATE feature_flags SET enabled = false WHERE key = 'pdf_export'"
sleep 1.5
st=$(http GET /export/transactions.pdf "$alice")
check "pdf_export off: the PDF is 404 NOT_FOUND" sh -c '
[ "$1" = 404 ] && grep -q "\"NOT_FOUND\"" "$2"' _ "$st" "$out.body"
st=$(http GET /export/transactions.csv "$alice")
check "pdf_export off: the CSV is still there" expect_status "$st" 200
psql "$DATABASE_URL" -XqAt -c "UPDATE feature_flags SET enabled = true WHERE key = 'pdf_export'"
sleep 1.5
st=$(http GET /export/transactions.pdf "$alice")
check "pdf_export on again: the PDF is 200" expect_status "$st" 200

# ------------------------------------------------------------ GDPR

st=$(http GET /export/me "$alice")
check "GDPR export answers 200" expect_status "$st" 200
check "GDPR export headers" sh -c '
[ "$1" = "application/json; charset=utf-8" ] &&
[ "$2" = "attachment; filename=\"libfinance-export-$3.json\"" ]' _ \
    "$(header Content-Type)" "$(header Content-Disposition)" \
    "$(json_get "$out.body" '["user","id"]')"
check "GDPR export holds the user, sessions, deleted transactions and audit" \
    python3 - "$out.body" "$t_gone" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
gone = sys.argv[2]
for k in ["user", "sessions", "transactions", "audit", "idempotency_keys"]:
    assert k in d, k
u = d["user"]
assert u["email"] == "alice@example.com" and u["name"] == "Alice Zürich", u
assert "password_hash" not in json.dumps(d) and "$argon2" not in json.dumps(d)
assert len(d["sessions"]) >= 1 and {"ip", "user_agent", "created_at",
    "last_used_at", "revoked_at"} <= set(d["sessions"][0]), d["sessions"]
txns = {t["id"]: t for t in d["transactions"]}
assert len(txns) == 5, len(txns)
assert txns[gone]["deleted_at"] is not None, txns[gone]
assert any(t["description"] == "東京 🎉 trip, \"day one\"\r\nsecond line"
           for t in txns.values())
actions = [a["action"] for a in d["audit"]]
for a in ["signup", "transaction_created", "transaction_deleted", "export"]:
    assert a in actions, (a, actions)
formats = {a["details"].get("format") for a in d["audit"] if a["action"] == "export"}
assert {"csv", "pdf"} <= formats, formats
csv_ev = [a for a in d["audit"] if a["action"] == "export"
          and a["details"].get("format") == "csv" and a["details"].get("from") is None]
assert csv_ev and csv_ev[0]["details"]["rows"] == 4, csv_ev
EOF

st=$(http GET /export/me "$empty")
check "an empty account's GDPR export is valid JSON with empty lists" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["transactions"] == [] and d["idempotency_keys"] == [], d
assert d["user"]["email"] == "empty@example.com"' "$out.body"

st=$(http GET /export/me "$empty")
check "the GDPR export is itself audited" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert any(a["action"] == "export" and a["details"]["format"] == "json"
           for a in d["audit"]), d["audit"]' "$out.body"

st=$(http HEAD /export/transactions.csv "$empty")
check "HEAD of an export: its headers" sh -c '
[ "$1" = 200 ] && [ "$2" = "text/csv; charset=utf-8" ]' _ "$st" "$(header Content-Type)"

echo "1..$n"
[ "$failed" -eq 0 ]
