#!/usr/bin/env python3
#
# tests/e2e/chaos_check.py: the stack under chaos (issue 8, section 4
# "Faults"), run by tests/e2e/chaos.sh against a stack it started (the env
# of tests/harness/stack, plus FIN_STACK, the path of the stack script).
# Python 3 standard library only; psql and redis-cli for the ground truth.
#
#   1  a worker SIGKILLed every 200 ms for 10 s under a write load: every
#      201 is in PostgreSQL exactly once, every answer is a 2xx or nginx's
#      JSON 502, the workers are back within 1 s, 20 requests then succeed
#   2  Redis stopped for 5 s under load: no 5xx, rate limits fail open,
#      sessions fall back to PostgreSQL, the cache is bypassed; Redis back
#      (from a snapshot taken before the outage): everything works without
#      a restart and a session revoked during the outage stays revoked
#   3  PostgreSQL stopped for 2 s under load: 503 SERVICE_UNAVAILABLE with
#      Retry-After (never 500), /health 200 throughout, full recovery
#      within 2 s, no worker restart, no acknowledged write lost
#   4  slow clients (a byte a second; a client that never reads a large
#      response): nginx absorbs them, /health keeps >= 50 % of its rate
#   5  10,000 random requests (seeded): every answer < 500, no crash,
#      nothing written that a valid request did not legitimately write
#
# Prints "ok N - ..." / "not ok N - ..." (diagnostics as "#   ..."), then
# "1..N" and "P passed, F failed"; exits 1 when a check failed.  Every
# address is 127.0.0.1; every loop is bounded in count and in time.
import base64
import collections
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid

# The shared helpers sit next to this file; no .pyc is left in the source
# tree (read-only under make distcheck).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
from e2e_common import (Fatal, Resp, check, finish, lit,  # noqa: E402
                        log_since, log_size, not_ok, note, psql, psql_json,
                        redis_cli, redis_keys, stack)

BASE_URL = os.environ["FIN_BASE_URL"]
HOST = "127.0.0.1"
PORT = int(urllib.parse.urlsplit(BASE_URL).port)
STACK_DIR = os.environ["FIN_STACK_DIR"]
FIN_LOG = os.environ["FIN_LOG"]
NGINX_LOGS = os.environ["FIN_NGINX_LOG_DIR"]
REDIS_PORT = os.environ["REDIS_PORT"]
MASTER = int(os.environ["FIN_MASTER_PID"])
NWORKERS = int(os.environ["FIN_WORKERS"])
JWT_SECRET = os.environ["JWT_SECRET"].encode()
LOGIN_EMAIL_LIMIT = int(os.environ["RATE_LIMIT_LOGIN_EMAIL_PER_15MIN"])
SEED = int(os.environ.get("CHAOS_SEED") or "20261124")
FUZZ_REQUESTS = int(os.environ.get("CHAOS_FUZZ_REQUESTS", "10000"))
PASSWORD = "chaos monkey wrench 42"
API = "/api/v1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ----------------------------------------------------------------- http


def call(method, path, token=None, body=None, headers=None, timeout=5.0):
    """One request on a fresh connection; never raises (status 0: no
    answer within timeout, or the connection failed)."""
    h = {}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token is not None:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        if not path.startswith(("/api/", "/metrics")):
            path = API + path
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        b = r.read()
        return Resp(r.status, r.getheaders(), b, t0=t0, t1=time.monotonic())
    except (OSError, http.client.HTTPException) as e:
        return Resp(0, [], b"", t0=t0, t1=time.monotonic(),
                    err=f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def new_user(tag, logins=1):
    email = f"chaos-{tag}-{uuid.uuid4().hex[:12]}@example.com"
    r = call("POST", "/auth/signup", body={"email": email, "name": tag, "password": PASSWORD})
    if r.status != 201:
        raise Fatal(f"signup of {email}: {r!r}")
    uid = r.json()["user"]["id"]
    tokens = []
    for _ in range(logins):
        r = call("POST", "/auth/login", body={"email": email, "password": PASSWORD})
        if r.status != 200:
            raise Fatal(f"login of {email}: {r!r}")
        tokens.append(r.json()["access_token"])
    return email, uid, tokens


def jwt_claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt_sign(claims, alg="HS256", secret=JWT_SECRET):
    head = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64u(json.dumps(claims).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64u(sig)}"


# ------------------------------------------------------------------ sql


def counts():
    return psql_json("""SELECT json_build_object(
        'users', (SELECT count(*) FROM users),
        'sessions', (SELECT count(*) FROM sessions),
        'transactions', (SELECT count(*) FROM transactions),
        'refresh_tokens', (SELECT count(*) FROM refresh_tokens),
        'audit_events', (SELECT count(*) FROM audit_events))""")


def metric(name):
    r = call("GET", "/metrics")
    for line in r.body.decode("utf-8", "replace").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# ------------------------------------------------------------ processes


def worker_procs():
    """{pid: start time in clock ticks since boot} of the master's live
    children, read from /proc (cheap enough for a 200 ms loop)."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        if int(rest[1]) == MASTER and rest[0] not in ("Z", "X", "x"):
            found[int(d)] = int(rest[19])
    return found


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return False
    return s[s.rindex(")") + 2:].split()[0] not in ("Z", "X", "x")


def stack_workers():
    return sorted(int(p) for p in stack("workers").split())


def processes():
    return (MASTER, alive(MASTER), stack_workers())


# ------------------------------------------------------------- the load


class Load:
    """Client threads calling fn(k, i) -> (kind, Resp, extra) in a loop
    until stop() or max_s seconds, at most max_n calls each."""

    def __init__(self, fns, max_s=60.0, max_n=100000, pause=0.0):
        self.fns = fns
        self.results = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.deadline = time.monotonic() + max_s
        self.max_n = max_n
        self.pause = pause
        self.threads = [threading.Thread(target=self.run, args=(k, fn), daemon=True)
                        for k, fn in enumerate(fns)]

    def run(self, k, fn):
        for i in range(self.max_n):
            if self.stop_ev.is_set() or time.monotonic() > self.deadline:
                return
            res = fn(k, i)
            with self.lock:
                self.results.append(res)
            if self.pause:
                time.sleep(self.pause)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self, join_s=15.0):
        self.stop_ev.set()
        end = time.monotonic() + join_s
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)


def bad_gateway(r):
    return r.status == 502 and r.code() == "BAD_GATEWAY"


def unavailable(r):
    return (r.status == 503 and r.code() == "SERVICE_UNAVAILABLE"
            and (r.header("Retry-After") or "").isdigit())


# ===================================================== 1: workers killed

KILL_EVERY = 0.2
KILL_FOR = 10.0
# The master respawns a worker that lived less than a second with a
# growing backoff (crash-loop protection: 100 ms doubling to 5 s).  The
# killer takes the oldest worker, and only one that has run for more than
# that second, so what is measured is the respawn itself, not the backoff:
# with NWORKERS=8 and a kill every 200 ms each worker lives ~1.6 s.
KILL_MIN_AGE = 1.05


def check_kill():
    _, uid, (token,) = new_user("kill")
    run = uuid.uuid4().hex[:8]
    before_master = alive(MASTER)

    def writer(k, i):
        desc = f"chaos-kill {run} t{k} n{i}"
        r = call("POST", "/transactions", token,
                 {"amount": -(i + 1), "currency": "EUR", "description": desc},
                 timeout=5.0)
        return desc, r

    load = Load([writer] * 4, max_s=KILL_FOR + 5).start()
    time.sleep(0.3)
    kills, skipped = [], 0
    t_end = time.monotonic() + KILL_FOR
    nxt = time.monotonic()
    for _ in range(int(KILL_FOR / KILL_EVERY) + 1):
        if time.monotonic() >= t_end:
            break
        procs = worker_procs()
        if procs:
            pid = min(procs, key=lambda p: procs[p])
            age = uptime() - procs[pid] / CLK_TCK
            if age >= KILL_MIN_AGE:
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append((pid, age))
                except ProcessLookupError:
                    skipped += 1
            else:
                skipped += 1
        else:
            skipped += 1
        nxt += KILL_EVERY
        time.sleep(max(0.0, nxt - time.monotonic()))
    last_kill = time.monotonic()
    # Back within 1 s of the last kill: polled from /proc every 20 ms.
    back_after = None
    for _ in range(200):
        if len(worker_procs()) == NWORKERS:
            back_after = time.monotonic() - last_kill
            break
        if time.monotonic() - last_kill > 3:
            break
        time.sleep(0.02)
    listed = stack_workers()
    stopped = load.stop()
    results = list(load.results)

    note(f"1: {len(kills)} workers killed (ages {min(a for _, a in kills) if kills else 0:.2f}"
         f"-{max(a for _, a in kills) if kills else 0:.2f} s), {skipped} rounds skipped, "
         f"{len(results)} POSTs")
    check(f"1: a worker was SIGKILLed every {int(KILL_EVERY * 1000)} ms for "
          f"{KILL_FOR:.0f} s ({len(kills)} kills)",
          # Rounds whose oldest worker is younger than 1 s are skipped (the
          # respawn, not the backoff, is under test): on a loaded machine
          # a few are.
          len(kills) >= int(KILL_FOR / KILL_EVERY) * 0.7 and before_master and alive(MASTER),
          f"kills {len(kills)}, skipped {skipped}, master alive {alive(MASTER)}")
    check("1: the 4 writer threads stopped (no request hung past its timeout)", stopped)
    by = collections.Counter()
    bad = []
    for desc, r in results:
        if 200 <= r.status < 300:
            by[r.status] += 1
        elif bad_gateway(r):
            by["502 BAD_GATEWAY"] += 1
        else:
            by[r.status] += 1
            bad.append(f"{desc}: {r!r}")
    note(f"1: answers {dict(by)}")
    check("1: every answer during the kills is a 2xx or nginx's JSON 502 BAD_GATEWAY "
          "(no 500, no other 5xx, nothing past the 5 s timeout)",
          not bad and by[201] > 0, *bad[:10], f"answers: {dict(by)}")
    check(f"1: the {NWORKERS} workers are back within 1 s of the last kill "
          f"(stack workers lists {len(listed)})",
          back_after is not None and back_after <= 1.0 and len(listed) == NWORKERS,
          f"back after: {back_after}", f"stack workers: {listed}")

    after = []
    for i in range(20):
        desc = f"chaos-kill {run} after n{i}"
        r = call("POST", "/transactions", token,
                 {"amount": -1, "currency": "EUR", "description": desc}, timeout=5.0)
        after.append((desc, r))
    check("1: then 20 requests in a row succeed (201)",
          all(r.status == 201 for _, r in after),
          *[f"{d}: {r!r}" for d, r in after if r.status != 201][:5])
    results += after

    rows = psql_json(f"SELECT json_agg(json_build_object('id', id, 'description', description))"
                     f" FROM transactions WHERE user_id = {lit(uid)}") or []
    db_by_id = {row["id"]: row["description"] for row in rows}
    desc_count = collections.Counter(row["description"] for row in rows)
    acked = {}
    problems = []
    for desc, r in results:
        if r.status != 201:
            continue
        t = (r.json() or {}).get("transaction") or {}
        if t.get("description") != desc:
            problems.append(f"{desc}: the 201 body says {t.get('description')!r}")
        acked[desc] = t.get("id")
        if t.get("id") not in db_by_id:
            problems.append(f"{desc}: 201 with id {t.get('id')}, not in PostgreSQL")
        elif db_by_id[t["id"]] != desc:
            problems.append(f"{desc}: id {t['id']} holds {db_by_id[t['id']]!r} in PostgreSQL")
        elif desc_count[desc] != 1:
            problems.append(f"{desc}: {desc_count[desc]} rows")
    check(f"1: every 201 ({len(acked)}) is in PostgreSQL exactly once, by its id and "
          f"its description", not problems and acked, *problems[:10])
    dups = [d for d, c in desc_count.items() if c > 1]
    check("1: no row appears twice (descriptions are distinct)", not dups, *dups[:10])
    sent = {desc: r for desc, r in results}
    unacked = [d for d in desc_count if d not in acked]
    strange = [f"{d}: {sent[d]!r}" if d in sent else f"{d}: never sent" for d in unacked
               if d not in sent or not bad_gateway(sent[d])]
    note(f"1: {len(unacked)} rows without a 201 (the worker died after COMMIT, before "
         f"answering: allowed when the answer was a 502)")
    check("1: every row without a 201 belongs to a request that got a 502", not strange,
          *strange[:10])


# ======================================================= 2: Redis stopped

REDIS_DOWN_S = 5.0


def mirror_keys(sid):
    return redis_keys(REDIS_PORT, f"fin:s:*:{sid}") or []


def check_redis():
    _, _, (tok_r,) = new_user("redis-load")
    _, _, (tok_c,) = new_user("redis-cache")
    _, _, toks_v = new_user("redis-revoke", logins=3)
    sids = [jwt_claims(t)["sid"] for t in toks_v]
    email_p, _, _ = new_user("redis-limit", logins=0)

    r = call("POST", "/transactions", tok_c, {"amount": -5, "currency": "EUR",
             "description": "cached before the outage", "occurred_on": "2026-01-10"})
    if r.status != 201:
        raise Fatal(f"create: {r!r}")
    hit = False
    for _ in range(30):
        if call("GET", "/transactions", tok_c).header("X-Cache") == "HIT":
            hit = True
            break
        time.sleep(0.05)
    check("2: before: the first page is cached (X-Cache: HIT)", hit)
    for t in toks_v:
        call("GET", "/auth/me", t)
    mirrored = [s for s in sids if mirror_keys(s)]
    check("2: before: the 3 sessions are mirrored in Redis", len(mirrored) == 3,
          f"mirrored: {mirrored} of {sids}")
    # The per-email login limit works while Redis is up...
    up_codes = [call("POST", "/auth/login", body={"email": email_p, "password": PASSWORD}).status
                for _ in range(LOGIN_EMAIL_LIMIT + 1)]
    check(f"2: before: the per-email login limit ({LOGIN_EMAIL_LIMIT}) answers 429 when "
          f"exceeded", up_codes[-1] == 429, f"statuses: {up_codes}")
    # ...and the snapshot Redis restarts from holds the mirrors and the
    # cache: nothing in it may bring a revoked session back or hide a write.
    check("2: before: Redis SAVE (the snapshot it restarts from)",
          redis_cli(REDIS_PORT, "SAVE") == "OK")
    fail_open_before = metric("ratelimit_fail_open_total")
    before = processes()

    def writer(k, i):
        r = call("POST", "/transactions", tok_r, {"amount": -(i + 1), "currency": "EUR",
                 "description": f"redis load w{k} n{i}"})
        return "write", r

    reads = ("/transactions", "/transactions/summary", "/auth/me", "/sessions",
             "/transactions?limit=5&q=load", "/health", "/export/me")

    def reader(k, i):
        return "read", call("GET", reads[(i + k) % len(reads)], tok_r)

    load = Load([writer, writer, reader, reader], max_s=30, pause=0.01).start()
    try:
        time.sleep(1.0)
        stack("redis-stop")
        t_down = time.monotonic()
        probes = {}
        ready = call("GET", "/ready")
        probes["ready"] = ready
        # Rate limits fail open: more logins than the limit, all 200.
        logins = [call("POST", "/auth/login", body={"email": email_p, "password": PASSWORD})
                  for _ in range(LOGIN_EMAIL_LIMIT + 3)]
        new_tok = (logins[-1].json() or {}).get("access_token")
        probes["me with a session made while Redis is down"] = call("GET", "/auth/me", new_tok)
        # Revocations while Redis is down.
        probes["logout of session 1"] = call("POST", "/auth/logout", toks_v[0])
        probes["revoke session 2 from session 3"] = call("DELETE", f"/sessions/{sids[1]}",
                                                         toks_v[2])
        dead_down = [call("GET", "/auth/me", toks_v[j]).status for j in (0, 1) for _ in range(4)]
        probes["session 3 still works"] = call("GET", "/auth/me", toks_v[2])
        # Cache bypassed: a write is in the very next read.
        created = call("POST", "/transactions", tok_c, {"amount": -6, "currency": "EUR",
                       "description": "written during the outage", "occurred_on": "2026-01-20"})
        probes["create during the outage"] = created
        lists = [call("GET", "/transactions", tok_c) for _ in range(4)]
        time.sleep(max(0.0, t_down + REDIS_DOWN_S - time.monotonic()))
        t_up0 = time.monotonic()
        stack("redis-start")
        t_up = time.monotonic()
    except BaseException:
        load.stop()
        raise

    check("2: Redis down: /ready answers 503 naming redis",
          ready.status == 503 and "redis" in (ready.json() or {}).get("error", ""), repr(ready))
    check(f"2: Redis down: rate limits fail open ({len(logins)} logins of one email, over "
          f"the limit of {LOGIN_EMAIL_LIMIT}, all 200)",
          all(r.status == 200 for r in logins), *[repr(r) for r in logins if r.status != 200][:3])
    want = {"me with a session made while Redis is down": 200, "logout of session 1": 204,
            "revoke session 2 from session 3": 204, "session 3 still works": 200,
            "create during the outage": 201}
    check("2: Redis down: sessions fall back to PostgreSQL (login, /auth/me, logout, "
          "DELETE /sessions/{id} answer as usual)",
          all(probes[k].status == v for k, v in want.items()),
          *[f"{k}: {probes[k]!r}" for k, v in want.items() if probes[k].status != v])
    check("2: Redis down: the revoked sessions' tokens get 401 at once", set(dead_down) == {401},
          f"statuses: {dead_down}")
    cid = ((created.json() or {}).get("transaction") or {}).get("id")
    firsts = [((r.json() or {}).get("data") or [{}])[0].get("id") for r in lists]
    check("2: Redis down: the cache is bypassed (no X-Cache: HIT, the write just made is "
          "the first row of every read)",
          cid and all(r.status == 200 and r.header("X-Cache") != "HIT" for r in lists)
          and all(f == cid for f in firsts),
          *[f"{r.status} X-Cache={r.header('X-Cache')} first={f}" for r, f in zip(lists, firsts)],
          f"created {cid}")

    # Redis is back (restarted from the snapshot taken before the outage).
    hit_after, seen = None, []
    for _ in range(50):
        r = call("GET", "/transactions", tok_c)
        first = ((r.json() or {}).get("data") or [{}])[0].get("id")
        seen.append((r.status, r.header("X-Cache"), first))
        if r.status == 200 and r.header("X-Cache") == "HIT" and first == cid:
            hit_after = time.monotonic() - t_up
            break
        time.sleep(0.1)
    check("2: Redis back: the cache works again (X-Cache: HIT) without a restart",
          hit_after is not None, f"last reads: {seen[-5:]}")
    note(f"2: first cache HIT {hit_after if hit_after is None else round(hit_after, 2)} s "
         f"after redis-start returned")
    check("2: Redis back: no read shows the snapshot's stale first page (the outage write "
          "is the first row every time)", all(s[0] == 200 and s[2] == cid for s in seen),
          *[str(s) for s in seen if s[2] != cid][:5])
    dead_up = [call("GET", "/auth/me", toks_v[j]).status for j in (0, 1) for _ in range(10)]
    check("2: Redis back (from a snapshot that mirrored them as alive): the sessions "
          "revoked during the outage stay revoked (401)", set(dead_up) == {401},
          f"statuses: {dead_up}")
    r = call("GET", "/auth/me", toks_v[2])
    check("2: Redis back: the session that was not revoked still works", r.status == 200, repr(r))
    up_again = False
    for _ in range(30):
        if mirror_keys(sids[2]):
            up_again = True
            break
        call("GET", "/auth/me", toks_v[2])
        time.sleep(0.1)
    check("2: Redis back: sessions are mirrored in Redis again", up_again)
    email_q, _, _ = new_user("redis-limit2", logins=0)
    codes = [call("POST", "/auth/login", body={"email": email_q, "password": PASSWORD}).status
             for _ in range(LOGIN_EMAIL_LIMIT + 1)]
    check("2: Redis back: rate limits apply again (429 past the per-email login limit)",
          codes[-1] == 429, f"statuses: {codes}")

    time.sleep(max(0.0, t_up + 2.0 - time.monotonic()))
    stopped = load.stop()
    res = list(load.results)
    in_window = [(k, r) for k, r in res if t_down <= r.t0 <= t_up0]
    bad = [f"{k} at {r.t0 - t_down:+.2f}s: {r!r}" for k, r in res
           if r.status >= 500 or r.status == 0 or r.status == 429]
    kinds = collections.Counter(k for k, _ in in_window)
    note(f"2: {len(res)} load requests, {dict(kinds)} while Redis was down; statuses "
         f"{dict(collections.Counter(r.status for _, r in res))}")
    check("2: no 5xx (and no 429, no timeout) for reads and writes during the whole window",
          stopped and not bad and kinds["read"] > 0 and kinds["write"] > 0,
          *bad[:10], f"during the outage: {dict(kinds)}")
    after_open = metric("ratelimit_fail_open_total")
    check("2: /metrics counted the requests let through (ratelimit_fail_open_total grew)",
          fail_open_before is not None and after_open is not None
          and after_open > fail_open_before, f"{fail_open_before} -> {after_open}")
    r = call("GET", "/ready")
    check("2: Redis back: /ready answers 200", r.status == 200, repr(r))
    after = processes()
    check("2: the master and its workers are the same processes (no restart)",
          before == after, f"before {before}", f"after {after}")
    try:
        os.unlink(os.path.join(STACK_DIR, "redis", "dump.rdb"))
    except OSError:
        pass


# =================================================== 3: PostgreSQL stopped

PG_DOWN_S = 2.0


def check_pg():
    _, uid, (token,) = new_user("pg")
    # Warm this user's cache and session mirror: reads may be answered from
    # Redis while PostgreSQL is down, which is fine.
    call("GET", "/transactions?limit=5", token)
    before = processes()
    run = uuid.uuid4().hex[:8]

    def writer(k, i):
        desc = f"chaos-pg {run} w{k} n{i}"
        return "write", call("POST", "/transactions", token,
                             {"amount": -(i + 1), "currency": "EUR", "description": desc})

    reads = ("/auth/me", "/transactions?limit=5", "/transactions/summary", "/sessions")

    def reader(k, i):
        return "read", call("GET", reads[i % len(reads)], token)

    def health(k, i):
        r = call("GET", "/health")
        time.sleep(0.02)
        return "health", r

    load = Load([writer, writer, reader, health], max_s=40, pause=0.01).start()
    try:
        time.sleep(1.0)
        t_stop0 = time.monotonic()
        stack("pg-stop")
        t_down = time.monotonic()
        ready_down = call("GET", "/ready")
        time.sleep(max(0.0, t_down + PG_DOWN_S - time.monotonic()))
        t_start0 = time.monotonic()
        stack("pg-start")
        t_up = time.monotonic()
        # Bounded polling: a write and /ready, every 50 ms, for 2 s.
        recovered = None
        polls = []
        while time.monotonic() - t_up < 2.0:
            w = call("POST", "/transactions", token, {"amount": -1, "currency": "EUR",
                     "description": f"chaos-pg {run} poll {len(polls)}"})
            rd = call("GET", "/ready")
            polls.append((round(time.monotonic() - t_up, 2), w.status, rd.status))
            if w.status == 201 and rd.status == 200:
                recovered = time.monotonic() - t_up
                break
            time.sleep(0.05)
        time.sleep(max(0.0, t_up + 3.0 - time.monotonic()))
    finally:
        stopped = load.stop()
    res = list(load.results)
    note(f"3: pg-stop took {t_down - t_stop0:.2f}s, down {t_start0 - t_down:.2f}s, "
         f"pg-start took {t_up - t_start0:.2f}s; {len(res)} load requests")
    check("3: PostgreSQL down: /ready answers 503 naming postgres",
          ready_down.status == 503 and "postgres" in (ready_down.json() or {}).get("error", ""),
          repr(ready_down))
    down = [(k, r) for k, r in res if t_down <= r.t0 and r.t1 <= t_start0]
    bad = [f"{k} at {r.t0 - t_stop0:+.2f}s: {r!r} Retry-After={r.header('Retry-After')}"
           for k, r in res if k != "health" and not (200 <= r.status < 300 or unavailable(r))]
    n503 = sum(1 for k, r in down if unavailable(r))
    wrote_down = [r for k, r in down if k == "write" and r.status == 201]
    note(f"3: while down: {dict(collections.Counter((k, r.status) for k, r in down))}")
    check("3: every answer is a 2xx or 503 SERVICE_UNAVAILABLE with Retry-After "
          "(never 500, 502 or a timeout)", stopped and not bad, *bad[:10])
    check("3: while PostgreSQL is down, the requests that need it get 503 (and no write "
          "answers 201)", n503 > 0 and not wrote_down,
          f"503s while down: {n503}", *[repr(r) for r in wrote_down[:3]])
    hb = [r for k, r in res if k == "health"]
    hbad = [f"at {r.t0 - t_stop0:+.2f}s: {r!r}" for r in hb if r.status != 200]
    check(f"3: /health answers 200 throughout ({len(hb)} requests)", hb and not hbad, *hbad[:5])
    check("3: full recovery within 2 s of PostgreSQL coming back (a write 201 and /ready 200)",
          recovered is not None, f"polls (s after pg-start, write, ready): {polls}")
    note(f"3: recovered {recovered if recovered is None else round(recovered, 2)} s after "
         f"pg-start returned")
    late = [f"{k} at {r.t0 - t_up:+.2f}s after pg-start: {r!r}" for k, r in res
            if r.t0 >= t_up + 2.0 and not 200 <= r.status < 300]
    check("3: every request that started 2 s after PostgreSQL came back succeeded",
          not late and any(r.t0 >= t_up + 2.0 for _, r in res), *late[:5])
    after = processes()
    check("3: no worker restart (the same master and worker pids)", before == after,
          f"before {before}", f"after {after}")
    acked = {}
    for k, r in res:
        if k == "write" and r.status == 201:
            t = (r.json() or {}).get("transaction") or {}
            acked[t.get("id")] = t.get("description")
    rows = psql_json(f"SELECT json_object_agg(id, description) FROM transactions"
                     f" WHERE user_id = {lit(uid)}") or {}
    lost = [f"{i} {d!r}: {'missing' if i not in rows else 'holds ' + repr(rows[i])}"
            for i, d in acked.items() if rows.get(i) != d]
    check(f"3: no acknowledged write lost (all {len(acked)} 201 ids are in PostgreSQL)",
          acked and not lost, *lost[:10])


# ======================================================== 4: slow clients

HEALTH_N = 300


def health_rate(n=HEALTH_N):
    """Requests per second of n sequential GET /health on one keep-alive
    connection (a new one if nginx closes it); None if one failed."""
    conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
    t0 = time.monotonic()
    try:
        for _ in range(n):
            conn.request("GET", API + "/health")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                return None
            if time.monotonic() - t0 > 30:
                return None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return n / (time.monotonic() - t0)


def raw_request(method, path, headers, body=b""):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{PORT}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


SLOW_FOR = 12.0
# The last moment (after they open) to sample /health with the slow
# clients all still open: nginx cuts the slow headers at 10 s.
SAMPLE_UNTIL = 8.0


def check_slow():
    _, uid, (token,) = new_user("slow")
    _, _, (token2,) = new_user("slow-other")
    psql(f"""INSERT INTO transactions (user_id, amount, currency, description, category,
             occurred_on) SELECT {lit(uid)}, -g, 'EUR', 'slow row ' || g || ' ' ||
             repeat('x', 450), 'slow', date '2026-03-01' + (g % 30)
             FROM generate_series(1, 200) g""")
    r = call("GET", "/transactions?limit=200", token, timeout=10)
    size = len(r.body)
    check("4: the user's GET /transactions?limit=200 is a large-ish response",
          r.status == 200 and len((r.json() or {}).get("data", [])) == 200 and size > 100000,
          f"{r.status}, {size} bytes")
    before = processes()
    rows_before = psql(f"SELECT count(*) FROM transactions WHERE user_id = {lit(uid)}")
    rate_before = max((health_rate() or 0.0) for _ in range(2))

    n = NWORKERS + 2
    stop = threading.Event()
    hdr_closed = {}
    body_state = {}
    lock = threading.Lock()

    def slow_header(k):
        req = raw_request("GET", API + "/health", {"X-Request-Id": f"chaos-slowhdr-{k}"})
        s = socket.create_connection((HOST, PORT), timeout=5)
        t0 = time.monotonic()
        try:
            for i in range(len(req)):
                if time.monotonic() - t0 > SLOW_FOR or stop.is_set():
                    break
                try:
                    s.send(req[i:i + 1])
                except OSError:
                    with lock:
                        hdr_closed[k] = (time.monotonic() - t0, "send failed")
                    return
                rd, _, _ = select.select([s], [], [], 1.0)
                if rd:
                    try:
                        got = s.recv(4096)
                    except OSError as e:
                        got = f"{type(e).__name__}".encode()
                    with lock:
                        hdr_closed[k] = (time.monotonic() - t0, got[:40])
                    return
        finally:
            s.close()

    def slow_body(k):
        body = json.dumps({"amount": -1, "currency": "EUR",
                           "description": f"slow body {k} never finished"}).encode()
        head = raw_request("POST", API + "/transactions",
                           {"Authorization": "Bearer " + token,
                            "Content-Type": "application/json",
                            "Content-Length": str(len(body)),
                            "X-Request-Id": f"chaos-slowbody-{k}"})
        s = socket.create_connection((HOST, PORT), timeout=5)
        t0 = time.monotonic()
        try:
            s.sendall(head)
            for i in range(len(body) - 1):	# never the last byte
                if time.monotonic() - t0 > SLOW_FOR or stop.is_set():
                    break
                s.send(body[i:i + 1])
                if select.select([s], [], [], 1.0)[0]:
                    with lock:
                        body_state[k] = f"answered or closed after {time.monotonic() - t0:.1f}s"
                    return
            with lock:
                body_state[k] = "open"
        except OSError as e:
            with lock:
                body_state[k] = f"{type(e).__name__} after {time.monotonic() - t0:.1f}s"
        finally:
            s.close()

    readers = []
    log_off = log_size(FIN_LOG)
    threads = [threading.Thread(target=slow_header, args=(k,), daemon=True) for k in range(n)]
    threads += [threading.Thread(target=slow_body, args=(k,), daemon=True) for k in range(n)]
    t_open = time.monotonic()
    for t in threads:
        t.start()
    try:
        for k in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            s.settimeout(5)
            s.connect((HOST, PORT))
            s.sendall(raw_request("GET", API + "/transactions?limit=200",
                                  {"Authorization": "Bearer " + token,
                                   "X-Request-Id": f"chaos-noread-{k}"}))
            readers.append(s)
        time.sleep(1.0)
        # Pinned workers would hold the rate down for the whole window the
        # slow clients stay open; a neighbour test on the same two cores
        # only for a while.  So keep sampling until one sample makes it or
        # the window is nearly gone.
        rates = []
        while True:
            rates.append(health_rate() or 0.0)
            if rates[-1] >= 0.5 * rate_before or time.monotonic() - t_open > SAMPLE_UNTIL:
                break
            time.sleep(0.25)
        rate_during = max(rates)
        me = call("GET", "/auth/me", token2)
        # The workers answered the readers that do not read, and are free.
        answered = set()
        for _ in range(30):
            for line in log_since(FIN_LOG, log_off).splitlines():
                for k in range(n):
                    if f'"request_id":"chaos-noread-{k}"' in line and '"status":200' in line:
                        answered.add(k)
            if len(answered) == n:
                break
            time.sleep(0.1)
        during_s = time.monotonic() - t_open
        # Slow headers: nginx cuts them at client_header_timeout (10 s).
        for t in threads[:n]:
            t.join(max(0.0, t_open + SLOW_FOR + 2 - time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join(3)
        for s in readers:
            s.close()

    # The suite runs beside other tests (make -j2, sanitizers), so the
    # machine may have slowed down since rate_before.  When the rate
    # during looks low, the rate once the slow clients are gone says what
    # the machine does now: pinned workers would show as a low rate during
    # and a normal one after.
    rate_ref = rate_before
    rate_after = None
    if rate_during < 0.5 * rate_before:
        rate_after = max((health_rate() or 0.0) for _ in range(2))
        rate_ref = min(rate_before, rate_after)
    note(f"4: /health {rate_before:.0f} req/s before, {rate_during:.0f} req/s during "
         f"({n} slow-header, {n} slow-body and {n} non-reading clients on {NWORKERS} "
         f"workers), measured {during_s:.1f} s after they opened"
         + (f", {rate_after:.0f} req/s after they closed" if rate_after is not None else ""))
    check("4: with the slow clients open, /health keeps at least 50 % of its rate",
          rate_ref > 0 and rate_during >= 0.5 * rate_ref,
          f"before {rate_before:.0f}/s, during {rates}, after {rate_after}")
    check("4: ... and a request that needs PostgreSQL answers (200)", me.status == 200, repr(me))
    check(f"4: the workers answered all {n} clients that never read their response "
          f"(nginx holds the bytes)", len(answered) == n,
          f"answered: {sorted(answered)}")
    cut = {k: v for k, v in hdr_closed.items() if 8.5 <= v[0] <= SLOW_FOR + 1}
    check(f"4: nginx cut the {n} one-byte-a-second headers after ~10 s "
          f"(client_header_timeout)", len(cut) == n,
          f"closed: {dict(sorted(hdr_closed.items()))}")
    check(f"4: the {n} one-byte-a-second bodies stayed with nginx until the client gave up",
          len(body_state) == n and all(v == "open" for v in body_state.values()),
          f"{body_state}")
    seen = log_since(FIN_LOG, log_off)
    leaked = [k for k in range(n)
              if f'"request_id":"chaos-slowbody-{k}"' in seen
              or f'"request_id":"chaos-slowhdr-{k}"' in seen]
    rows_after = psql(f"SELECT count(*) FROM transactions WHERE user_id = {lit(uid)}")
    check("4: no worker ever saw an unfinished request (none in the log, no row written)",
          not leaked and rows_before == rows_after,
          f"in the log: {leaked}", f"rows {rows_before} -> {rows_after}")
    after = processes()
    check("4: the same master and workers", before == after, f"before {before}",
          f"after {after}")


# ===================================================== 5: random requests

FUZZ_THREADS = 4
FUZZ_SECONDS = 60.0

METHODS = ["GET"] * 5 + ["POST"] * 4 + ["PUT", "PATCH", "PATCH", "DELETE", "DELETE",
                                        "OPTIONS", "HEAD", "HEAD", "FOO"]
# The route table of src/routes.c (less /debug/sleep, which sleeps on
# demand): path and the methods it answers.
ROUTES = {"/health": "GET", "/ready": "GET", "/auth/signup": "POST",
          "/auth/login": "POST", "/auth/refresh": "POST", "/auth/logout": "POST",
          "/auth/me": "GET DELETE", "/auth/password": "POST", "/sessions": "GET DELETE",
          "/sessions/{id}": "DELETE", "/audit": "GET", "/transactions": "GET POST",
          "/transactions/summary": "GET", "/transactions/{id}": "GET PATCH DELETE",
          "/transactions/{id}/restore": "POST", "/export/transactions.csv": "GET",
          "/export/transactions.pdf": "GET", "/export/me": "GET", "/flags": "GET",
          "/admin/flags": "GET", "/admin/flags/{key}": "PUT", "/admin/audit": "GET",
          "/admin/users/{id}/restore": "POST"}
PREFIXES = ["/api/v1"] * 12 + ["/api/v2", "/api/v0", "/api", "/api/V1", "/api/v1/",
                               "//api/v1", "/api/v1/.", "/api/v1/../v1", "/api/%76%31",
                               "/api/v1%2F", "/api/v99999999999999999999", "", "/API/v1"]
FIELDS = ["email", "name", "password", "refresh_token", "current_password",
          "new_password", "amount", "currency", "description", "category",
          "occurred_on", "enabled", "rollout_percent", "id", "user_id", "role",
          "deleted_at", "__proto__", "", "a" * 70]
QUERY_KEYS = ["limit", "cursor", "from", "to", "category", "q", "deleted", "x", "",
              "limit[]", "LIMIT"]
CONTENT_TYPES = [None, None, "application/json", "application/json",
                 "application/json; charset=utf-8", "application/json;charset=UTF-8",
                 "APPLICATION/JSON", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=xyz", "application/json; charset=latin1",
                 "application/jsonx", "", "*/*", "application/json, text/plain",
                 "application/merge-patch+json"]


def rand_text(r, maxlen=40):
    kind = r.random()
    n = r.randint(0, maxlen)
    if kind < 0.4:
        return "".join(chr(r.randint(0x20, 0x7e)) for _ in range(n))
    if kind < 0.6:
        return "".join(chr(r.choice([r.randint(0, 0x1f), r.randint(0x80, 0x7ff),
                                     r.randint(0x800, 0xd7ff), r.randint(0xd800, 0xdfff),
                                     r.randint(0x10000, 0x10ffff), 0x2028, 0xfeff]))
                       for _ in range(n))
    return r.choice(["", " ", "EUR", "eur", "XXX", "€", "2026-02-29", "2026-13-01",
                     "9999-12-31", "0000-00-00", "not-an-email", "@", "a@b",
                     "x@example.com", "' OR 1=1 --", "%", "_", "\\", "null", "true",
                     "\u0000", "a" * 501, "a" * 129, "password", "Bearer", "-0",
                     str(uuid.UUID(int=r.getrandbits(128))), "=1+2", "../../etc/passwd"])


def rand_value(r, depth=0):
    x = r.random()
    if depth < 4 and x < 0.12:
        return {r.choice(FIELDS) if r.random() < 0.7 else rand_text(r, 10):
                rand_value(r, depth + 1) for _ in range(r.randint(0, 5))}
    if depth < 4 and x < 0.2:
        return [rand_value(r, depth + 1) for _ in range(r.randint(0, 5))]
    if x < 0.45:
        return rand_text(r)
    if x < 0.7:
        return r.choice([0, -1, 1, 9007199254740991, 9007199254740992, -9007199254740992,
                         2 ** 63, -2 ** 63 - 1, 10 ** 30, r.randint(-10 ** 9, 10 ** 9)])
    if x < 0.8:
        return r.choice([1.5, -0.0, 1e308, 1e-300, 100.0, float("inf")])
    return r.choice([True, False, None])


def rand_json(r):
    x = r.random()
    if x < 0.6:
        obj = {r.choice(FIELDS): rand_value(r) for _ in range(r.randint(0, 6))}
    else:
        obj = rand_value(r)
    try:
        text = json.dumps(obj, ensure_ascii=r.random() < 0.5)
    except ValueError:
        text = "{}"
    y = r.random()
    if y < 0.05:
        text = text[:r.randint(0, len(text))]
    elif y < 0.1:
        text = '{"amount": 1, "amount": 2, "currency": "EUR"}'
    elif y < 0.13:
        d = r.randint(10, 3000)
        text = "[" * d + "]" * d
    elif y < 0.16:
        text = text + r.choice([" x", "}", ",", "\x00", "{}"])
    elif y < 0.18:
        text = "\ufeff" + text
    data = text.encode("utf-8", "surrogatepass")
    if r.random() < 0.05:
        i = r.randint(0, len(data))
        data = data[:i] + bytes([r.choice([0x80, 0xc0, 0xff, 0xed, 0x00])]) + data[i:]
    return data


def pct(r, s):
    """Percent-encodes some characters of s at random (all that need it)."""
    out = []
    for ch in s:
        b = ch.encode("utf-8", "surrogatepass")
        if len(b) > 1 or ord(ch) <= 0x20 or ord(ch) >= 0x7f or ch in "?#%" or r.random() < 0.05:
            out.append("".join(f"%{c:02X}" for c in b))
        else:
            out.append(ch)
    return "".join(out)


class FuzzCtx:
    def __init__(self, token, ids, sids, tampered, crafted, revoked):
        self.token = token
        self.ids = ids
        self.sids = sids
        self.tampered = tampered
        self.crafted = crafted
        self.revoked = revoked


def rand_segment(r, ctx):
    x = r.random()
    if x < 0.25 and ctx.ids:
        return r.choice(ctx.ids + ctx.sids)
    if x < 0.45:
        return str(uuid.UUID(int=r.getrandbits(128)))
    if x < 0.55:
        return r.choice(["%00", "%ff", "%2e%2e", "%2F", "..", ".", "", "%", "%zz", "%u0041",
                         "{id}", "pdf_export", "summary", "restore", "%C3%28", "%E2%80%AE"])
    if x < 0.6:
        return "a" * r.choice([100, 1000, 5000, 9000])
    return pct(r, rand_text(r, 30))


def rand_path(r, ctx, tmpl):
    if r.random() < 0.05:
        return "/" + pct(r, rand_text(r, 60))
    if r.random() < 0.03:
        return r.choice(["/metrics", "/", "/api/", "/api/v1", "/api/v1/", "*",
                         "/api/v1/health/../../../metrics", "/api/v1/%2e%2e/%2e%2e/metrics",
                         "/.env", "/api/v1/health?"])
    path = r.choice(PREFIXES) + tmpl
    while "{id}" in path or "{key}" in path:
        seg = rand_segment(r, ctx) if r.random() < 0.9 else pct(r, "pdf_export")
        path = path.replace("{id}" if "{id}" in path else "{key}", seg, 1)
    y = r.random()
    if y < 0.05:
        path += "/"
    elif y < 0.08:
        path += "/" + rand_segment(r, ctx)
    elif y < 0.1:
        path = path.replace("/", "//", 1)
    elif y < 0.12:
        path = path.upper()
    elif y < 0.16:
        path = "".join(f"%{ord(c):02X}" if c.isalpha() and r.random() < 0.3 else c
                       for c in path)
    if r.random() < 0.45:
        params = []
        for _ in range(r.randint(1, 6)):
            k = r.choice(QUERY_KEYS)
            v = r.choice([
                str(r.choice([-1, 0, 1, 50, 200, 201, 10 ** 20])), "abc", "",
                "2026-01-01", "2026-02-30", "9999-99-99", "include", "only", "exclude",
                rand_text(r, 20), base64.urlsafe_b64encode(r.randbytes(r.randint(0, 60))).decode(),
                "%", "_", "\\", "%00", "1e3", " 5", "5 "])
            params.append(pct(r, k) + ("" if r.random() < 0.05 else "=" + pct(r, v)))
        path += "?" + "&".join(params) + r.choice(["", "", "&", "&&", "#frag"])
    return path


def rand_auth(r, ctx, method):
    x = r.random()
    if x < 0.3:
        return None
    if x < 0.55 and method in ("GET", "HEAD"):
        return "Bearer " + ctx.token
    return r.choice([
        "Bearer", "Bearer ", "Bearer  " + ctx.tampered, "bearer " + ctx.tampered,
        "Basic dXNlcjpwYXNz", "Bearer " + latin1(r, 60),
        "Bearer " + ctx.tampered, "Bearer " + r.choice(ctx.crafted),
        "Bearer " + ctx.revoked, "Bearer " + ctx.revoked + "x",
        "Bearer a.b.c", "Bearer ..", "Bearer " + "A" * 5000,
        "Bearer " + ctx.token[:-20], "Token " + ctx.token[::-1]])


def latin1(r, n):
    return "".join(chr(r.choice([r.randint(0x21, 0x7e), r.randint(0xa0, 0xff), 0x09, 0x20]))
                   for _ in range(r.randint(0, n)))


def gen_request(i, ctx):
    """Request i of the run, from its own seeded generator: (method,
    path, headers, body, chunked)."""
    r = random.Random(SEED * 1000003 + i)
    tmpl = r.choice(sorted(ROUTES))
    # Half the time a method the route answers, so that the request gets
    # past routing to the gate, the validation and the handlers.
    method = r.choice(ROUTES[tmpl].split()) if r.random() < 0.5 else r.choice(METHODS)
    path = rand_path(r, ctx, tmpl)
    headers = {}
    ct = r.choice(CONTENT_TYPES)
    if ct is not None:
        headers["Content-Type"] = ct
    auth = rand_auth(r, ctx, method)
    if auth is not None:
        headers["Authorization"] = auth
    if r.random() < 0.5:
        headers["X-Request-Id"] = r.choice([
            f"fuzz-{i}", latin1(r, 80), "a" * 65, "a" * 64, "", "../x", "x y",
            "fuzz.%d_%d-ok" % (SEED, i)])
    if r.random() < 0.3:
        headers["Idempotency-Key"] = r.choice([uuid.uuid4().hex, latin1(r, 300), "", "k" * 256,
                                               "k" * 255, "same-key"])
    for _ in range(r.randint(0, 4)):
        name = r.choice(["Accept", "If-None-Match", "Origin", "X-Forwarded-For", "Range",
                         "Cookie", "User-Agent", "Accept-Encoding", "X-Real-IP", "Forwarded",
                         "Access-Control-Request-Method", "Access-Control-Request-Headers",
                         "If-Modified-Since", "Referer", "X-" + "".join(
                             r.choice("abcdefghijklmnopqrstuvwxyz-") for _ in range(8))])
        headers[name] = r.choice([latin1(r, 100), "*", "W/\"abc\"", "http://evil.example",
                                  "1.2.3.4, 127.0.0.1", "bytes=0-1", "a" * 4000])
    if r.random() < 0.02:
        headers["Connection"] = "close"
    if r.random() < 0.01:
        headers["Expect"] = "100-continue"
    body = None
    x = r.random()
    if method in ("GET", "HEAD", "OPTIONS") and x < 0.8:
        body = None
    elif x < 0.15:
        body = None
    elif x < 0.45:
        body = r.randbytes(r.randint(0, 2048))
    elif x < 0.985:
        body = rand_json(r)
    elif x < 0.997:
        body = json.dumps({"description": "d" * r.randint(100000, 300000)}).encode()
    else:
        body = b"{" + b" " * (1024 * 1024 + r.randint(1, 5000)) + b"}"
    chunked = body is not None and r.random() < 0.03
    return method, path, headers, body, chunked


def fuzz_worker(k, ctx, indices, deadline, out):
    conn = None
    for i in indices:
        if time.monotonic() > deadline:
            out["unsent"] += 1
            continue
        method, path, headers, body, chunked = gen_request(i, ctx)
        res = None
        for attempt in range(2):
            fresh = conn is None
            if conn is None:
                conn = http.client.HTTPConnection(HOST, PORT, timeout=20)
            try:
                if chunked:
                    data = body
                    conn.request(method, path, body=iter([data[j:j + 7000]
                                 for j in range(0, len(data), 7000)]),
                                 headers=headers, encode_chunked=True)
                else:
                    conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                rb = resp.read()
                res = (resp.status, rb, resp.getheader("Content-Type"))
                if resp.will_close:
                    conn.close()
                    conn = None
                break
            except (http.client.InvalidURL, ValueError, UnicodeEncodeError) as e:
                # The client refused to send it: not a request at all.
                res = ("skipped", str(e).encode(), None)
                conn.close()
                conn = None
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = None
                if fresh or attempt == 1:
                    res = (0, f"{type(e).__name__}: {e}".encode(), None)
                    break
        status = res[0]
        with out["lock"]:
            out["statuses"][status] += 1
            if status == "skipped":
                out["skipped"].append((i, res[1]))
                continue
            if status == 0 or status >= 500:
                out["bad"].append((i, method, path, headers, body, chunked, status, res[1]))
            if method not in ("GET", "HEAD", "OPTIONS") and 200 <= status < 300:
                # What a write that succeeded created, by its answer (the
                # path may be percent-encoded).
                try:
                    j = json.loads(res[1])
                except ValueError:
                    j = None
                kind = "other"
                if isinstance(j, dict) and "access_token" in j:
                    kind = "session"
                elif isinstance(j, dict) and "transaction" in j and status == 201:
                    kind = "transaction"
                elif isinstance(j, dict) and "user" in j and status == 201:
                    kind = "user"
                out["created"][kind] += 1
                out["post_ok"].append((i, method, path[:80], status, kind))
    if conn is not None:
        conn.close()


def fmt_request(i, method, path, headers, body, chunked):
    h = "".join(f"\n  {k}: {v!r}" for k, v in headers.items())
    b = "" if body is None else f"\n  body ({len(body)} bytes{', chunked' if chunked else ''}): {body[:200]!r}"
    return f"request {i}: {method} {path[:300]!r}{h}{b}"


def origin(body):
    """Who made an error answer: nginx's own HTML page, a JSON error
    (nginx's error_page or a worker: the code says), or no body (HEAD)."""
    if not body:
        return "(no body: HEAD or dropped)"
    if b"<center>nginx</center>" in body:
        return "nginx's default HTML page"
    try:
        return "JSON " + str(json.loads(body).get("code"))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return f"body {body[:60]!r}"


def raw_exchange(data, timeout=5.0):
    """Sends data on a new connection, half-closes it and returns what
    came back (at most 64 KiB, within timeout)."""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        end = time.monotonic() + timeout
        while len(got) < 65536 and time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
    except OSError as e:
        return f"{type(e).__name__}: {e}".encode()
    finally:
        s.close()


# Requests nginx refuses before it has a URI: API.md wants its JSON error
# shape for them, as for every error nginx makes itself.
MALFORMED = [
    ("a bad percent-encoding in the path", b"GET /api/v1/health%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("%00 in the path", b"GET /api/v1/health%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("a path above the root", b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("the request target *", b"PUT * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("a 9,000-byte path", b"GET /api/v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
]


def check_malformed():
    for what, data, want in MALFORMED:
        got = raw_exchange(data)
        head, _, body = got.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/1.1 ") else "?"
        try:
            j = json.loads(body)
        except ValueError:
            j = None
        check(f"5: {what} gets nginx's JSON {want} (not a 5xx)",
              status == str(want) and isinstance(j, dict) and j.get("code")
              and j.get("request_id"),
              f"request: {data[:60]!r}", f"answer: {got[:200]!r}")


def check_fuzz():
    _, uid, (token, revoked) = new_user("fuzz", logins=2)
    ids = []
    for j in range(5):
        r = call("POST", "/transactions", token, {"amount": -j - 1, "currency": "EUR",
                 "description": f"fuzz row {j}"})
        if r.status == 201:
            ids.append(r.json()["transaction"]["id"])
    sids = [jwt_claims(token)["sid"], jwt_claims(revoked)["sid"]]
    r = call("POST", "/auth/logout", revoked)
    if r.status != 204:
        raise Fatal(f"logout: {r!r}")
    head, payload, sig = token.split(".")
    mid = len(sig) // 2
    tampered = f"{head}.{payload}.{sig[:mid]}{'A' if sig[mid] != 'A' else 'B'}{sig[mid + 1:]}"
    c = jwt_claims(token)
    now = int(time.time())
    crafted = [
        jwt_sign(dict(c, sid=str(uuid.uuid4()))),                      # no such session
        jwt_sign(dict(c, sub=str(uuid.uuid4()), sid=str(uuid.uuid4()))),
        jwt_sign(dict(c, iat=now - 7200, exp=now - 3600)),             # expired (past
                                                                       # the 30 s leeway)
        jwt_sign(dict(c, aud="someone-else", sid=str(uuid.uuid4()))),
        jwt_sign(dict(c), alg="none"),                                 # alg none
        jwt_sign(dict(c), alg="HS512"),
        jwt_sign(dict(c), secret=b"not the secret at all, 32 bytes long!!"),
        jwt_sign(dict(c, sid=sids[1])),                                # revoked session
    ]
    ctx = FuzzCtx(token, ids, sids, tampered, crafted, revoked)
    before_counts = counts()
    before = processes()
    log_off = log_size(FIN_LOG)
    nginx_off = log_size(os.path.join(NGINX_LOGS, "error.log"))
    out = {"lock": threading.Lock(), "statuses": collections.Counter(),
           "created": collections.Counter(), "bad": [], "skipped": [],
           "post_ok": [], "unsent": 0}
    t0 = time.monotonic()
    deadline = t0 + FUZZ_SECONDS
    threads = [threading.Thread(target=fuzz_worker, daemon=True,
                                args=(k, ctx, range(k, FUZZ_REQUESTS, FUZZ_THREADS),
                                      deadline, out)) for k in range(FUZZ_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline + 30 - time.monotonic()))
    elapsed = time.monotonic() - t0
    hung = any(t.is_alive() for t in threads)
    st = out["statuses"]
    sent = sum(v for k, v in st.items() if k != "skipped")
    note(f"5: {sent} requests in {elapsed:.1f} s ({len(out['skipped'])} refused by the "
         f"client library, {out['unsent']} not sent in time); statuses "
         f"{dict(sorted(st.items(), key=lambda kv: str(kv[0])))}")
    check(f"5: {FUZZ_REQUESTS} random requests sent within {FUZZ_SECONDS:.0f} s "
          f"({FUZZ_THREADS} threads, seed {SEED})",
          not hung and out["unsent"] == 0 and sent == FUZZ_REQUESTS,
          f"sent {sent}, skipped {len(out['skipped'])}, unsent {out['unsent']}, hung {hung}",
          *[f"skipped {i}: {e[:100]!r}" for i, e in out["skipped"][:3]])
    bad = out["bad"]
    origins = collections.Counter((b[6], origin(b[7])) for b in bad)
    diag = [f"{n} x {st} {o}" for (st, o), n in origins.most_common()]
    nginx_errors = collections.Counter()
    for line in log_since(os.path.join(NGINX_LOGS, "error.log"), nginx_off).splitlines():
        m = re.search(r"\[(error|crit|alert|emerg)\] \d+#\d+: \*\d+ (.*?)(, client:|$)", line)
        if m:
            nginx_errors[re.sub(r'"[^"]*"', '"..."', m.group(2))] += 1
    diag += [f"nginx error.log: {n} x {msg}" for msg, n in nginx_errors.most_common(5)]
    worker_5xx = [line for line in log_since(FIN_LOG, log_off).splitlines()
                  if re.search(r'"status":5\d\d', line)]
    diag += [f"{len(worker_5xx)} 5xx answered by the workers"] + worker_5xx[:3]
    for i, method, path, headers, body, chunked, status, rb in bad[:6]:
        diag.append(fmt_request(i, method, path, headers, body, chunked))
        diag.append(f"  -> {status} {rb[:200]!r}")
    check("5: every answer is < 500 (no 5xx, no connection dropped without an answer)",
          not bad, f"{len(bad)} bad answers; CHAOS_SEED={SEED}", *diag)
    after = processes()
    check("5: the master and workers are the same pids at the end (no crash)",
          before == after, f"before {before}", f"after {after}")
    log = log_since(FIN_LOG, log_off)
    crashes = [line for line in log.splitlines()
               if '"worker_died"' in line or '"worker_exited"' in line
               or "Sanitizer" in line or "runtime error:" in line]
    check("5: no worker death or sanitizer report in the log", not crashes, *crashes[:5])
    after_counts = counts()
    made = out["created"]
    d = {k: after_counts[k] - before_counts[k] for k in before_counts}
    note(f"5: row count changes {d}; 2xx answers to writes: {dict(made)} "
         f"{out['post_ok'][:5]}")
    check("5: nothing written but what valid requests created: transactions unchanged, "
          "users = signups answered 201, sessions = logins answered 200, no other write "
          "answered 2xx",
          d["transactions"] == 0 and made["transaction"] == 0 and made["other"] == 0
          and d["users"] == made["user"] and d["sessions"] == made["session"],
          f"changes {d}", f"2xx answers to writes: {dict(made)}", *out["post_ok"][:10])
    r = call("GET", "/auth/me", token)
    check("5: the fuzz user's token still works afterwards", r.status == 200, repr(r))


# ----------------------------------------------------------------- main


def run(name, fn):
    t0 = time.monotonic()
    try:
        fn()
    except Fatal as e:
        not_ok(f"{name}: could not run", str(e))
    except Exception as e:          # a bug here must not hide the others
        import traceback
        not_ok(f"{name}: the check itself failed", f"{type(e).__name__}: {e}",
               traceback.format_exc())
    note(f"{name}: {time.monotonic() - t0:.1f} s")


def main():
    # CHAOS_ONLY=2,5 runs only those checks (when debugging one).
    only = set(os.environ.get("CHAOS_ONLY", "1,2,3,4,5").split(","))
    for n, name, fn in (("1", "1 (workers killed)", check_kill),
                        ("2", "2 (Redis down)", check_redis),
                        ("3", "3 (PostgreSQL down)", check_pg),
                        ("4", "4 (slow clients)", check_slow),
                        ("5", "5 (random requests)", check_fuzz),
                        ("5", "5 (malformed request lines)", check_malformed)):
        if n in only:
            run(name, fn)
    return finish(totals=True)


if __name__ == "__main__":
    sys.exit(main())
