#!/usr/bin/env python3
#
# tests/e2e/transactions_check.py: the heavier end-to-end checks of
# /transactions (issue 4), run by tests/e2e/transactions.sh against a stack
# it started (the env of tests/harness/stack, plus FIN_STACK, the path of
# the stack script).  Python 3 standard library only; psql for the rows.
#
#   a  walking every page of a 1,000-row account gives each row once, in
#      the documented order (ties on occurred_on and created_at included)
#   b  the list query, in the server's exact form, is an index scan of
#      transactions_list_live_idx with no Sort, on the first page and
#      after a cursor, filtered or not; without a filter PostgreSQL keeps
#      a generic plan for it (no planning per request)
#   c  8 parallel POSTs with one Idempotency-Key create one row
#   d  the response cache is right across the 2 workers after a write
#   e  Redis down: list, summary and create still work; Redis back: the
#      cache works again without a restart; a Redis restarted from an old
#      snapshot does not hide a write (API.md, "Where state lives")
#   f  4 concurrent clients: the rows in PostgreSQL, the API listing and
#      the audit trail agree row for row
#   g  totals past 2^53 and 2^63 are still exact JSON integers
#
# Prints "ok N - ..." / "not ok N - ..." (diagnostics as "#   ..."), and
# "1..N" at the end; exits 1 when a check failed.  Every address is
# 127.0.0.1 (FIN_BASE_URL, DATABASE_URL); every loop is bounded.
import base64
import collections
import concurrent.futures
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid

# The shared helpers sit next to this file; no .pyc is left in the source
# tree (read-only under make distcheck).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
from e2e_common import (Fatal, check, finish, http_call, in_pairs, lit,  # noqa: E402
                        not_ok, note, pids_of, psql, psql_json, redis_cli, stack)

BASE = os.environ["FIN_BASE_URL"] + "/api/v1"
STACK_DIR = os.environ["FIN_STACK_DIR"]
FIN_LOG = os.environ["FIN_LOG"]
REDIS_PORT = os.environ["REDIS_PORT"]
SRCDIR = os.environ.get("top_srcdir", ".")
BUILDDIR = os.environ.get("top_builddir", SRCDIR)
PASSWORD = "Password123!"

# ----------------------------------------------------------------- http


def call(method, path, token=None, body=None, headers=None, timeout=20):
    return http_call(method, BASE + path, token, body, headers, timeout)


def new_user(tag):
    email = f"e2e-{tag}-{uuid.uuid4().hex[:16]}@example.com"
    r = call("POST", "/auth/signup",
             body={"email": email, "name": tag, "password": PASSWORD})
    if r.status != 201:
        raise Fatal(f"signup of {email}: {r}")
    r = call("POST", "/auth/login", body={"email": email, "password": PASSWORD})
    if r.status != 200:
        raise Fatal(f"login of {email}: {r}")
    token = r.json()["access_token"]
    r = call("GET", "/auth/me", token)
    if r.status != 200:
        raise Fatal(f"GET /auth/me of {email}: {r}")
    return token, r.json()["user"]["id"]


def create(token, **fields):
    body = {"amount": -100, "currency": "EUR"}
    body.update(fields)
    r = call("POST", "/transactions", token, body)
    if r.status != 201:
        raise Fatal(f"POST /transactions {body}: {r}")
    return r.json()["transaction"]


def walk(token, query, limit, max_pages):
    """Every page of GET /transactions?query: (rows, pages, problems)."""
    rows, problems, pages, cursor = [], [], [], None
    for _ in range(max_pages):
        path = f"/transactions?limit={limit}" + (f"&{query}" if query else "")
        if cursor is not None:
            path += "&cursor=" + cursor
        r = call("GET", path, token)
        j = r.json()
        if r.status != 200 or not isinstance(j, dict):
            problems.append(f"page {len(pages) + 1}: {r}")
            break
        pages.append(j)
        if len(j["data"]) > limit:
            problems.append(f"page {len(pages)} has {len(j['data'])} rows")
        rows.extend(j["data"])
        cursor = j.get("next_cursor")
        if cursor is None:
            break
    else:
        problems.append(f"still a next_cursor after {max_pages} pages")
    return rows, pages, problems


# ------------------------------------------------------------------ sql

# The API's form of a row, computed by PostgreSQL (the server's SQL_TS).
ROW_JSON = """json_build_object(
  'id', id, 'amount', amount, 'currency', currency,
  'description', description, 'category', category,
  'occurred_on', occurred_on::text,
  'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
  'updated_at', to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
  'deleted_at', to_char(deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))"""


# ------------------------------------------------------ a: the 1,000-row walk

ROWS = 1000
DELETED = 25
PAGE = 50


def check_walk():
    token, uid = new_user("walk")
    # Dates cycle over 40 days (25 rows a day); created_at takes 3 values a
    # microsecond apart, so ~8 rows share both and only the id orders them,
    # and a cursor that kept whole seconds would skip or repeat rows.
    psql(f"""
INSERT INTO transactions (user_id, amount, currency, description, category,
    occurred_on, created_at, updated_at, deleted_at)
SELECT {lit(uid)}, -g, 'EUR', 'bulk ' || g, 'cat' || (g % 7),
    date '2026-01-01' + (g % 40),
    timestamptz '2026-06-01 12:00:00+00' + (g % 3) * interval '1 microsecond',
    timestamptz '2026-06-01 12:00:00+00',
    CASE WHEN g > {ROWS} THEN now() END
FROM generate_series(1, {ROWS + DELETED}) g""")
    ties = int(psql(f"""
SELECT count(*) FROM (SELECT 1 FROM transactions WHERE user_id = {lit(uid)}
  AND deleted_at IS NULL GROUP BY occurred_on, created_at
  HAVING count(*) > 1) t"""))
    want = psql(f"""
SELECT id FROM transactions WHERE user_id = {lit(uid)} AND deleted_at IS NULL
ORDER BY occurred_on DESC, created_at DESC, id DESC""").split()
    note(f"a: {len(want)} live rows, {ties} groups sharing occurred_on and created_at")

    rows, pages, problems = walk(token, "", PAGE, 100)
    got = [r["id"] for r in rows]
    check(f"a: every page of limit={PAGE} answers 200 with at most {PAGE} rows",
          not problems, *problems)
    check(f"a: {len(pages)} pages, the last with next_cursor null",
          len(pages) == ROWS // PAGE and pages and pages[-1]["next_cursor"] is None
          and all(p["next_cursor"] for p in pages[:-1]),
          f"pages: {len(pages)}, want {ROWS // PAGE}")
    dups = [i for i, c in collections.Counter(got).items() if c > 1]
    check(f"a: each of the {ROWS} rows exactly once",
          len(got) == ROWS and not dups and set(got) == set(want),
          f"rows: {len(got)}, duplicates: {len(dups)} {dups[:3]}",
          f"missing: {len(set(want) - set(got))} {sorted(set(want) - set(got))[:3]}",
          f"unknown: {len(set(got) - set(want))}")
    first_bad = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    check("a: in the documented order (occurred_on, created_at, id, all newest first)",
          got == want,
          f"first difference at position {first_bad}: got {got[first_bad] if first_bad is not None else '-'}, "
          f"want {want[first_bad] if first_bad is not None else '-'}" if first_bad is not None
          else f"lengths {len(got)} and {len(want)}")
    dates = [r["occurred_on"] for r in rows]
    check("a: occurred_on never increases from one row to the next",
          all(a >= b for a, b in zip(dates, dates[1:])))

    rows_all, _, problems = walk(token, "deleted=include", 200, 20)
    check(f"a: deleted=include walks {ROWS + DELETED} rows once each",
          not problems and len(rows_all) == ROWS + DELETED
          and len({r["id"] for r in rows_all}) == ROWS + DELETED,
          *problems, f"rows: {len(rows_all)}")
    rows_del, _, problems = walk(token, "deleted=only", 10, 10)
    check(f"a: deleted=only walks the {DELETED} deleted rows",
          not problems and len(rows_del) == DELETED
          and all(r["deleted_at"] for r in rows_del),
          *problems, f"rows: {len(rows_del)}")
    # A page in the middle, for b.
    mid = pages[6]["next_cursor"] if len(pages) > 6 else None
    return token, uid, got, mid


# --------------------------------------------------------------- b: EXPLAIN

# The live-rows list statements of lib/transactions.c (FIN_TXN_COLS,
# LIST_FILTERS, LIST_AFTER, LIST_ORDER, LIST_STMT, DEFAULT_STMT), copied as
# the server sends them: the general form (filters and limit as
# parameters) and the default page's (no filter, 50 rows), each for the
# first page and after a cursor.  source_sql() fails the check when they
# drift.
TXN_COLS = (
    "id, amount, currency, description, category, occurred_on, "
    "created_at, updated_at, deleted_at")
LIST_FILTERS = (
    "   AND ($2::date IS NULL OR occurred_on >= $2::date)"
    "   AND ($3::date IS NULL OR occurred_on <= $3::date)"
    "   AND ($4::text IS NULL OR category = $4)"
    "   AND ($5::text IS NULL OR description ILIKE '%' || $5 || '%' ESCAPE '\\')")


def list_order(limit):
    return (" ORDER BY transactions.occurred_on DESC, transactions.created_at DESC,"
            " transactions.id DESC LIMIT " + limit)


def list_after(on, at, tid):
    return f"   AND (occurred_on, created_at, id) < ({on}::date, {at}::timestamptz, {tid}::uuid)"


LIVE = ("SELECT " + TXN_COLS + " FROM transactions WHERE user_id = $1"
        " AND deleted_at IS NULL")
SQL_LIST = {
    "txn_list_live": LIVE + LIST_FILTERS + list_order("$6"),
    "txn_list_live_after": LIVE + LIST_FILTERS + list_after("$7", "$8", "$9")
    + list_order("$6"),
    "txn_list_live_default": LIVE + list_order(str(PAGE + 1)),
    "txn_list_live_default_after": LIVE + list_after("$2", "$3", "$4")
    + list_order(str(PAGE + 1)),
}


def c_strings(text):
    """The concatenation of the C string literals in text."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', text):
        out.append(re.sub(r"\\(.)", r"\1", m.group(1)))
    return "".join(out)


def source_sql():
    """{name: SQL} of the list statements, from lib/transactions.c run
    through the C preprocessor; None when that cannot be done here."""
    cc = shlex.split(os.environ.get("CC", "")) or [shutil.which("cc") or "gcc"]
    src = os.path.join(SRCDIR, "lib", "transactions.c")
    if shutil.which(cc[0]) is None or not os.path.exists(src):
        return None
    flags = []
    pc = shutil.which("pkg-config")
    if pc:
        p = subprocess.run([pc, "--cflags", "libpq", "json-c", "hiredis"],
                           capture_output=True, text=True)
        if p.returncode == 0:
            flags = p.stdout.split()
    p = subprocess.run(cc + ["-E", "-P", "-I" + BUILDDIR, "-I" + SRCDIR,
                        "-I" + os.path.join(SRCDIR, "lib")] + flags + [src],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return None
    found = {}
    for name in SQL_LIST:
        m = re.search(r'\{\s*"' + name + r'"\s*,((?:\s*"(?:[^"\\]|\\.)*")+)\s*,\s*\d+\s*\}',
                      p.stdout)
        if m:
            found[name] = c_strings(m.group(1))
    return found if len(found) == len(SQL_LIST) else None


def substitute(sql, params):
    # $9 before $1 is irrelevant: no statement has ten parameters.
    return re.sub(r"\$(\d)", lambda m: params[int(m.group(1))], sql)


def plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def explain(sql):
    out = psql("EXPLAIN (FORMAT JSON) " + sql)
    plan = json.loads(out)[0]["Plan"]
    text = psql("EXPLAIN " + sql)
    return list(plan_nodes(plan)), text


def check_explain(uid, api_ids, mid_cursor):
    # Other users' rows around the account, so that an index is worth it.
    psql("""
INSERT INTO users (email, name, password_hash)
SELECT 'e2e-explain-' || g || '-' || md5(random()::text) || '@example.com', 'Other', 'x'
FROM generate_series(1, 3) g""")
    psql("""
INSERT INTO transactions (user_id, amount, currency, occurred_on, deleted_at)
SELECT u.id, -g, 'EUR', date '2025-01-01' + (g % 500),
       CASE WHEN g % 10 = 0 THEN now() END
FROM users u, generate_series(1, 3000) g
WHERE u.email LIKE 'e2e-explain-%'""")
    psql("ANALYZE transactions")

    src = source_sql()
    if src is None:
        note("b: could not preprocess lib/transactions.c here: using the copied SQL unchecked")
    else:
        check("b: the SQL copied here is lib/transactions.c's " + ", ".join(SQL_LIST),
              src == SQL_LIST,
              *[f"{k}:\n#     source: {src.get(k)}\n#     copy:   {v}"
                for k, v in SQL_LIST.items() if src.get(k) != v],
              "update the copies in tests/e2e/transactions_check.py")

    general = {1: lit(uid), 2: "NULL", 3: "NULL", 4: "NULL", 5: "NULL", 6: str(PAGE + 1)}
    first = substitute(SQL_LIST["txn_list_live"], general)
    default = substitute(SQL_LIST["txn_list_live_default"], {1: lit(uid)})
    # The copies answer what the server answered (so the plans are of the
    # queries that really run).
    for label, sql in (("first-page", first), ("default first-page", default)):
        ids = psql(f"SELECT id FROM ({sql}) t").split()
        check(f"b: the copied {label} query returns the API's first page",
              ids[:PAGE] == api_ids[:PAGE] and len(ids) == PAGE + 1,
              f"sql: {ids[:3]}...", f"api: {api_ids[:3]}...")

    payload = base64.urlsafe_b64decode(mid_cursor.split(".")[0] + "==").decode()
    kind, on, at, tid = payload.split("|")
    keyset = (lit(on), lit(at), lit(tid))
    after = substitute(SQL_LIST["txn_list_live_after"],
                       {**general, 7: keyset[0], 8: keyset[1], 9: keyset[2]})
    default_after = substitute(SQL_LIST["txn_list_live_default_after"],
                               {1: lit(uid), 2: keyset[0], 3: keyset[1], 4: keyset[2]})
    pos = api_ids.index(tid) + 1
    for label, sql in (("after-cursor", after), ("default after-cursor", default_after)):
        ids = psql(f"SELECT id FROM ({sql}) t").split()
        check(f"b: the copied {label} query returns the API's next page",
              ids[:PAGE] == api_ids[pos:pos + PAGE],
              f"sql: {ids[:3]}...", f"api: {api_ids[pos:pos + 3]}...")

    for label, sql, bound in (("the first page", first, False),
                              ("the default first page", default, False),
                              ("a page after a cursor", after, True),
                              ("the default page after a cursor", default_after, True)):
        check_list_plan(label, explain(sql), bound)

    # The default page's statements run as the server runs them, prepared
    # with untyped parameters: after PostgreSQL's five custom plans it
    # keeps a generic one (planning once, not on every request), and that
    # plan is still the index scan, with the keyset as an index bound.
    for name, args in (("txn_list_live_default", [lit(uid)]),
                       ("txn_list_live_default_after", [lit(uid), *keyset])):
        execute = f"EXECUTE e2e_{name}({', '.join(args)})"
        out = psql(f"PREPARE e2e_{name} AS {SQL_LIST[name]}; "
                   + "".join(f"{execute}; " for _ in range(7))
                   + f"SELECT generic_plans FROM pg_prepared_statements"
                   f" WHERE name = 'e2e_{name}'").splitlines()
        generic = out[-1] if out else ""
        check(f"b: PostgreSQL keeps a generic plan for {name} (no planning per request)",
              generic.isdigit() and int(generic) >= 1,
              f"generic plans after 7 executions: {generic!r}")
        text = psql(f"PREPARE e2e_{name} AS {SQL_LIST[name]}; "
                    f"SET plan_cache_mode = force_generic_plan; "
                    f"EXPLAIN (FORMAT JSON) {execute}")
        plan = json.loads(text)[0]["Plan"]
        check_list_plan(f"the generic plan of {name}",
                        (list(plan_nodes(plan)), text), name.endswith("_after"))


def check_list_plan(label, explained, keyset):
    nodes, text = explained
    scans = [nd for nd in nodes
             if nd["Node Type"] in ("Index Scan", "Index Only Scan")
             and nd.get("Index Name") == "transactions_list_live_idx"]
    sorts = [nd["Node Type"] for nd in nodes if "Sort" in nd["Node Type"]]
    check(f"b: EXPLAIN of {label}: an Index Scan of transactions_list_live_idx",
          bool(scans), text)
    check(f"b: EXPLAIN of {label}: no Sort node", not sorts,
          f"sort nodes: {sorts}", text)
    if keyset:
        conds = " ".join(nd.get("Index Cond", "") for nd in scans)
        check("b: " + label + ": the keyset condition is an index bound (Index Cond), not a filter",
              "ROW(occurred_on, created_at, id) <" in conds, text)


# ------------------------------------------------- c: idempotency, concurrently

PARALLEL = 8
ROUNDS = 5


def check_idempotency_race():
    token, uid = new_user("idem")
    statuses = collections.Counter()
    bad = []
    for rnd in range(ROUNDS):
        key = f"race-{rnd}-{uuid.uuid4().hex}"
        body = {"amount": -1999, "currency": "EUR",
                "description": f"idempotent round {rnd}", "occurred_on": "2026-09-01"}
        barrier = threading.Barrier(PARALLEL, timeout=30)

        def post(_):
            barrier.wait()
            return call("POST", "/transactions", token, body,
                        {"Idempotency-Key": key})

        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as ex:
            answers = list(ex.map(post, range(PARALLEL)))
        rows = int(psql(f"SELECT count(*) FROM transactions WHERE user_id = {lit(uid)}"
                        f" AND description = {lit(body['description'])}"))
        ids = set()
        fresh = 0
        for a in answers:
            j = a.json() or {}
            statuses[(a.status, j.get("code"))] += 1
            if a.status == 201:
                ids.add(j["transaction"]["id"])
                if a.header("Idempotent-Replayed") != "true":
                    fresh += 1
        if rows != 1:
            bad.append(f"round {rnd}: {rows} rows in PostgreSQL")
        if len(ids) != 1:
            bad.append(f"round {rnd}: ids {sorted(ids)}")
        if fresh != 1:
            bad.append(f"round {rnd}: {fresh} answers without Idempotent-Replayed: true")
        for a in answers:
            if a.status != 201:
                bad.append(f"round {rnd}: {a}")
    note(f"c: statuses over {ROUNDS} rounds of {PARALLEL}: "
         + ", ".join(f"{s} {c or ''}: {k}" for (s, c), k in sorted(statuses.items(),
                                                                    key=lambda x: x[0][0])))
    check(f"c: {PARALLEL} parallel POSTs with one Idempotency-Key create exactly one row "
          f"({ROUNDS} rounds)",
          not [b for b in bad if "rows in PostgreSQL" in b],
          *[b for b in bad if "rows in PostgreSQL" in b])
    check("c: all answer 201 with the same id, one fresh and the others replays "
          "(409 IDEMPOTENCY_KEY_IN_USE is not in API.md)",
          not [b for b in bad if "rows in PostgreSQL" not in b],
          *[b for b in bad if "rows in PostgreSQL" not in b][:10])


# ------------------------------------------------- d: the cache across workers


def check_cache_workers():
    token, uid = new_user("cache")
    create(token, description="before", occurred_on="2026-10-01")
    hit = False
    for _ in range(20):
        r = call("GET", "/transactions", token)
        if r.status == 200 and r.header("X-Cache") == "HIT":
            hit = True
            break
    check("d: the first page becomes a cache HIT", hit, f"last: {r} X-Cache={r.header('X-Cache')}")
    new = create(token, description="after", occurred_on="2026-10-02")
    tag = uuid.uuid4().hex[:12]
    rids, stale, caches = [f"e2e-d-{tag}-{i}" for i in range(20)], [], collections.Counter()
    it = iter(rids)
    lock = threading.Lock()

    def read():
        with lock:
            rid = next(it)
        return call("GET", "/transactions", token, headers={"X-Request-Id": rid})

    for i, r in enumerate(in_pairs(read, 20)):
        caches[r.header("X-Cache")] += 1
        j = r.json() or {}
        data = j.get("data") or []
        if r.status != 200 or not data or data[0]["id"] != new["id"]:
            stale.append(f"read {i + 1}: {r.status} X-Cache={r.header('X-Cache')} "
                         f"first={data[0]['id'] if data else None}")
    check("d: after a write, 20 reads in a row all show the new row first",
          not stale, *stale)
    note(f"d: X-Cache of the 20 reads: {dict(caches)}")
    check("d: the reads after the write were served from the cache again (HIT)",
          caches.get("HIT", 0) > 0, f"X-Cache: {dict(caches)}")
    pids = pids_of(FIN_LOG, rids)
    check("d: the 20 reads were served by both workers",
          len(set(pids.values())) >= 2,
          f"pids: {collections.Counter(pids.values())} ({len(pids)} of 20 found in {FIN_LOG})")


# ------------------------------------------------------ e: Redis down and back


def workers():
    return sorted(stack("workers").split())


def check_redis_down():
    token, uid = new_user("redis")
    create(token, description="before the outage", occurred_on="2026-11-01")
    for _ in range(10):
        if call("GET", "/transactions", token).header("X-Cache") == "HIT":
            break
    before = (os.environ.get("FIN_MASTER_PID"), workers())
    stack("redis-stop")
    try:
        results = {}
        t0 = time.monotonic()
        results["list"] = call("GET", "/transactions", token)
        results["summary"] = call("GET", "/transactions/summary", token)
        results["create"] = call("POST", "/transactions", token,
                                 {"amount": -4242, "currency": "EUR",
                                  "description": "during the outage",
                                  "occurred_on": "2026-11-02"})
        results["list again"] = call("GET", "/transactions", token)
        elapsed = time.monotonic() - t0
        want = {"list": 200, "summary": 200, "create": 201, "list again": 200}
        check("e: Redis down: list, summary and create answer 200/201 (no 5xx)",
              all(results[k].status == v for k, v in want.items()),
              *[f"{k}: {results[k]}" for k in want])
        check("e: Redis down: X-Cache is absent or MISS",
              all(results[k].header("X-Cache") in (None, "MISS")
                  for k in ("list", "summary", "list again")),
              *[f"{k}: X-Cache={results[k].header('X-Cache')}" for k in want])
        created = (results["create"].json() or {}).get("transaction", {}).get("id")
        data = (results["list again"].json() or {}).get("data") or []
        check("e: Redis down: the list shows the row just created",
              created is not None and data and data[0]["id"] == created,
              f"created {created}, first {data[0]['id'] if data else None}")
        note(f"e: the 4 requests took {elapsed:.2f}s with Redis down")
    finally:
        stack("redis-start")
    hit, last = False, None
    for _ in range(40):
        last = call("GET", "/transactions", token)
        if last.status == 200 and last.header("X-Cache") == "HIT":
            hit = True
            break
        time.sleep(0.25)
    check("e: Redis back: the cache works again (X-Cache HIT) without a restart",
          hit, f"last: {last} X-Cache={last.header('X-Cache') if last else None}")
    data = (last.json() or {}).get("data") or []
    check("e: Redis back: the list still shows the row created during the outage",
          last.status == 200 and any(t["description"] == "during the outage" for t in data),
          f"descriptions: {[t['description'] for t in data]}")
    after = (os.environ.get("FIN_MASTER_PID"), workers())
    check("e: the master and its workers are the same processes as before",
          before == after, f"before {before}", f"after {after}")
    r = call("GET", "/transactions/summary", token)
    check("e: Redis back: the summary answers 200", r.status == 200, repr(r))


def check_redis_snapshot():
    """API.md, "Where state lives": restarting Redis from an old snapshot
    must never lose a write.  The list cached before the snapshot must not
    come back in place of a write acknowledged after it."""
    if shutil.which("redis-cli") is None:
        note("e: no redis-cli: the snapshot check is skipped")
        return
    token, uid = new_user("snapshot")
    create(token, description="in the snapshot", occurred_on="2026-12-01")
    hit = False
    for _ in range(40):
        if call("GET", "/transactions", token).header("X-Cache") == "HIT":
            hit = True
            break
        time.sleep(0.1)
    if not hit:
        not_ok("e: the snapshot check could not get the first page into the cache")
        return
    if redis_cli(REDIS_PORT, "SAVE") != "OK":
        not_ok("e: Redis SAVE for the snapshot check")
        return
    new = create(token, description="after the snapshot", occurred_on="2026-12-02")
    r = call("GET", "/transactions", token)
    fresh = r.status == 200 and (r.json()["data"] or [{}])[0].get("id") == new["id"]
    stack("redis-stop")
    stack("redis-start")       # loads DIR/redis/dump.rdb: the old snapshot
    # Each worker's first command after the restart finds its connection
    # gone and waits FIN_REDIS_RETRY_MS (250 ms) before it reconnects: read
    # for 2 seconds, so that both workers are back on Redis.
    seen = []
    for _ in range(10):
        time.sleep(0.2)
        r = call("GET", "/transactions", token)
        data = (r.json() or {}).get("data") or []
        seen.append(f"{r.status} X-Cache={r.header('X-Cache')} "
                    f"{[t['description'] for t in data]}")
    check("e: Redis restarted from an older snapshot: the list still shows a write "
          "acknowledged after the snapshot (API.md, Where state lives)",
          fresh and all("after the snapshot" in s for s in seen), *seen)
    try:
        os.unlink(os.path.join(STACK_DIR, "redis", "dump.rdb"))
    except OSError:
        pass


# ------------------------------------------------ f: concurrent clients agree

CLIENTS = 4
OPS = 50
CURRENCIES = ("EUR", "USD", "JPY", "GBP")
CATEGORIES = ("food", "rent", "travel", "", "fun")


def rand_date(rnd):
    return f"2026-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"


def client(k, token, shared_id):
    rnd = random.Random(4242 + k)
    mine = {}               # id -> "live" | "deleted"
    created, calls, errors = [], collections.Counter(), []

    def expect(r, want, what):
        if r.status != want:
            errors.append(f"client {k} {what}: {r}")
            return False
        return True

    for i in range(OPS):
        live = [t for t, s in mine.items() if s == "live"]
        dead = [t for t, s in mine.items() if s == "deleted"]
        x = rnd.random()
        if x < 0.30 or (not live and x < 0.65):
            body = {"amount": rnd.choice((-1, 1)) * rnd.randint(1, 10 ** 6),
                    "currency": rnd.choice(CURRENCIES),
                    "description": f"client {k} op {i}",
                    "category": rnd.choice(CATEGORIES),
                    "occurred_on": rand_date(rnd)}
            r = call("POST", "/transactions", token, body)
            if expect(r, 201, "create"):
                tid = r.json()["transaction"]["id"]
                mine[tid] = "live"
                created.append(tid)
                calls["create"] += 1
        elif x < 0.50:
            target = shared_id if (rnd.random() < 0.4 or not live) else rnd.choice(live)
            body = rnd.choice((
                {"description": f"patched by {k} op {i}"},
                {"amount": rnd.randint(-10 ** 6, 10 ** 6)},
                {"category": rnd.choice(CATEGORIES), "occurred_on": rand_date(rnd)},
                {"currency": rnd.choice(CURRENCIES), "description": f"{k}/{i}"}))
            r = call("PATCH", f"/transactions/{target}", token, body)
            if expect(r, 200, f"patch {target}"):
                calls["update"] += 1
        elif x < 0.65 and live:
            target = rnd.choice(live)
            r = call("DELETE", f"/transactions/{target}", token)
            if expect(r, 204, f"delete {target}"):
                mine[target] = "deleted"
                calls["delete"] += 1
        elif x < 0.75 and dead:
            target = rnd.choice(dead)
            r = call("POST", f"/transactions/{target}/restore", token)
            if expect(r, 200, f"restore {target}"):
                mine[target] = "live"
                calls["restore"] += 1
        else:
            q = rnd.choice(("", "?deleted=include", "?deleted=only", "?limit=5",
                            "?category=food", "?q=client"))
            r = call("GET", "/transactions" + q, token)
            if expect(r, 200, "list" + q):
                calls["list"] += 1
    return created, calls, errors


def check_concurrency():
    token, uid = new_user("concurrent")
    shared = create(token, description="shared", occurred_on="2026-06-15")
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as ex:
        results = list(ex.map(lambda k: client(k, token, shared["id"]), range(CLIENTS)))
    created = [shared["id"]] + [t for res in results for t in res[0]]
    calls = collections.Counter()
    errors = []
    for _, c, e in results:
        calls.update(c)
        errors.extend(e)
    note(f"f: calls that succeeded: {dict(calls)}")
    check(f"f: {CLIENTS} clients x {OPS} operations: every answer as expected (no 5xx)",
          not errors, *errors[:10])

    db_rows = psql_json(f"SELECT json_agg({ROW_JSON} ORDER BY id) FROM transactions"
                        f" WHERE user_id = {lit(uid)}") or []
    db = {r["id"]: r for r in db_rows}
    api_rows, _, problems = walk(token, "deleted=include", 200, 50)
    api_ids = [r["id"] for r in api_rows]
    api = {r["id"]: r for r in api_rows}
    check("f: the API listing (deleted=include, every page) has each row once",
          not problems and len(api_ids) == len(set(api_ids)), *problems,
          f"{len(api_ids)} rows, {len(set(api_ids))} distinct")
    check("f: the rows in PostgreSQL are the rows created through the API",
          set(db) == set(created) and len(created) == len(set(created)),
          f"db {len(db)}, created {len(created)}, only in db {len(set(db) - set(created))}, "
          f"only created {len(set(created) - set(db))}")
    diffs = []
    for tid, row in db.items():
        if tid not in api:
            diffs.append(f"{tid}: in PostgreSQL, not in the API")
        elif api[tid] != row:
            diffs.append(f"{tid}: db {row} api {api[tid]}")
    diffs += [f"{tid}: in the API, not in PostgreSQL" for tid in api if tid not in db]
    check("f: every row in PostgreSQL appears in the API with the same fields",
          not diffs, *diffs[:10])

    events = psql_json(f"""
SELECT json_agg(json_build_object('seq', seq, 'action', action, 'details', details)
                ORDER BY seq)
FROM audit_events WHERE user_id = {lit(uid)} AND action LIKE 'transaction%'""") or []
    by_action = collections.Counter(e["action"] for e in events)
    note(f"f: audit events: {dict(by_action)}")
    created_events = collections.Counter(e["details"].get("transaction_id") for e in events
                                         if e["action"] == "transaction_created")
    wrong = [f"{t}: {created_events.get(t, 0)} transaction_created events"
             for t in created if created_events.get(t, 0) != 1]
    wrong += [f"{t}: transaction_created for an id never created"
              for t in created_events if t not in set(created)]
    check("f: every created id has exactly one transaction_created event", not wrong, *wrong[:10])
    check("f: transaction_updated/deleted/restored events = successful PATCH/DELETE/restore calls",
          by_action.get("transaction_updated", 0) == calls["update"]
          and by_action.get("transaction_deleted", 0) == calls["delete"]
          and by_action.get("transaction_restored", 0) == calls["restore"],
          f"events {dict(by_action)}", f"calls {dict(calls)}")

    # Per transaction, the events chain: each one's "before" is the previous
    # one's "after", and the last "after" is the row as it is now.
    chains = collections.defaultdict(list)
    for e in events:
        chains[e["details"].get("transaction_id")].append(e)
    broken = []
    for tid, evs in chains.items():
        prev = None
        for e in evs:
            d, act = e["details"], e["action"]
            b, a = d.get("before"), d.get("after")
            if act == "transaction_created":
                if b is not None or prev is not None:
                    broken.append(f"{tid} seq {e['seq']}: created with before={b}, after an event")
            elif b != prev:
                broken.append(f"{tid} seq {e['seq']} {act}: before {b} != previous after {prev}")
            if a is None or a.get("id") != tid:
                broken.append(f"{tid} seq {e['seq']} {act}: after is {a}")
            elif act == "transaction_deleted" and (a["deleted_at"] is None
                                                   or (b or {}).get("deleted_at") is not None):
                broken.append(f"{tid} seq {e['seq']}: delete {b and b['deleted_at']} -> {a['deleted_at']}")
            elif act == "transaction_restored" and (a["deleted_at"] is not None
                                                    or (b or {}).get("deleted_at") is None):
                broken.append(f"{tid} seq {e['seq']}: restore {b and b['deleted_at']} -> {a['deleted_at']}")
            elif act == "transaction_updated" and (a["deleted_at"] is not None
                                                   or (b or {}).get("deleted_at") is not None):
                broken.append(f"{tid} seq {e['seq']}: an update of a deleted row")
            prev = a
        if tid in db and prev != db[tid]:
            broken.append(f"{tid}: last after {prev} != row {db[tid]}")
    check("f: audit before/after chain per transaction and end at the row in PostgreSQL",
          not broken, *broken[:10])
    n_shared = sum(1 for e in chains.get(shared["id"], []) if e["action"] == "transaction_updated")
    note(f"f: the shared row was updated {n_shared} times concurrently")


# ----------------------------------------------------------------- main


# ------------------------------------------- g: sums beyond JSON's safe range

SAFE = 9007199254740991


def check_huge_sums():
    # One amount is at most 2^53 - 1, but 1,100 of them sum past 2^63:
    # the summary must still answer exact JSON integers (docs/api-notes.md),
    # never strings, never a rounded float.
    token, uid = new_user("huge")
    psql(f"""
INSERT INTO transactions (user_id, amount, currency, category, occurred_on)
SELECT {lit(uid)}, CASE WHEN g <= 3 THEN {SAFE} ELSE -{SAFE} END, 'EUR',
    CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, date '2026-03-01' + (g % 2)
FROM generate_series(1, 1100) g""")
    r = call("GET", "/transactions/summary", token)
    j = json.loads(r.body, parse_int=int, parse_float=lambda x: ("float", x)) \
        if r.status == 200 else {}
    tot = (j.get("currency_totals") or [{}])[0]
    want = {"currency": "EUR", "income": 3 * SAFE, "expense": 1097 * SAFE,
            "net": -1094 * SAFE, "count": 1100}
    check("g: 1,100 amounts of ±(2^53 - 1): the summary's totals are the exact "
          f"integers, past 2^63 too ({want['expense']})",
          r.status == 200 and tot == want
          and all(isinstance(v, int) for e in j["by_category"] + j["by_month"]
                  for k, v in e.items() if k not in ("currency", "category", "month")),
          f"got {tot}", f"want {want}", repr(r)[:400])


def run(name, fn, *args):
    try:
        return fn(*args)
    except Fatal as e:
        not_ok(f"{name}: could not run", str(e))
    except Exception as e:          # a bug here must not hide the others
        not_ok(f"{name}: the check itself failed", f"{type(e).__name__}: {e}")
    return None


def main():
    walked = run("a", check_walk)
    if walked is not None:
        _, uid, ids, mid = walked
        if mid is None:
            not_ok("b: no cursor from the walk to explain")
        else:
            run("b", check_explain, uid, ids, mid)
    run("c", check_idempotency_race)
    run("d", check_cache_workers)
    run("e", check_redis_down)
    run("e", check_redis_snapshot)
    run("f", check_concurrency)
    run("g", check_huge_sums)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
