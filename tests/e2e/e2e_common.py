#
# tests/e2e/e2e_common.py: what the *_check.py scripts share -- the
# "ok N - ..." / "not ok N - ..." reporting, a response type, HTTP through
# urllib, psql, tests/harness/stack, redis-cli and the workers' log.
# Imported by ratelimits_check.py, transactions_check.py and chaos_check.py
# from their own directory.  Python 3 standard library only.
#
# Settings come from the environment when a function runs, not at import:
# ratelimits_check.py starts its stacks itself and has no DATABASE_URL or
# FIN_STACK_DIR of its own.
import concurrent.futures
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

# ------------------------------------------------------------ reporting

n_checks = 0
n_failed = 0
# chaos_check.py reports from several threads; a line is never split.
out_lock = threading.Lock()


def ok(desc):
    global n_checks
    with out_lock:
        n_checks += 1
        print(f"ok {n_checks} - {desc}", flush=True)


def not_ok(desc, *diag):
    """A failed check; each line of each diag on a "#   " line."""
    global n_checks, n_failed
    with out_lock:
        n_checks += 1
        n_failed += 1
        print(f"not ok {n_checks} - {desc}", flush=True)
        for d in diag:
            for line in str(d).splitlines() or [""]:
                print(f"#   {line}", flush=True)


def check(desc, cond, *diag):
    if cond:
        ok(desc)
    else:
        not_ok(desc, *diag)
    return bool(cond)


def note(msg):
    with out_lock:
        print(f"# {msg}", flush=True)


def finish(totals=False):
    """Prints the plan "1..N", then "P passed, F failed" with totals, else
    a "# F of N checks failed" line when one failed; returns the exit code."""
    print(f"1..{n_checks}", flush=True)
    if totals:
        print(f"{n_checks - n_failed} passed, {n_failed} failed", flush=True)
    elif n_failed:
        print(f"# {n_failed} of {n_checks} checks failed", flush=True)
    return 1 if n_failed else 0


class Fatal(Exception):
    """A step the following checks depend on failed: skip the rest of the
    group (reported as one failed check)."""


# ----------------------------------------------------------------- http


class Resp:
    """An answer: status 0 when there was none (err says why when the
    caller timed it from t0 to t1).  headers: a dict or (name, value)
    pairs; names are looked up case-insensitively."""

    def __init__(self, status, headers, body, rid=None, t0=None, t1=None,
                 err=None):
        self.status = status
        self.headers = {k.lower(): v for k, v in dict(headers or {}).items()}
        self.body = body
        self.rid = rid
        self.t0 = t0
        self.t1 = t1
        self.err = err

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, AttributeError):
            return None

    def header(self, name):
        return self.headers.get(name.lower())

    def code(self):
        j = self.json()
        return j.get("code") if isinstance(j, dict) else None

    def __repr__(self):
        if self.err is not None:
            return f"no answer after {self.t1 - self.t0:.2f}s: {self.err}"
        return f"{self.status} {self.body[:300]!r}"


def http_call(method, url, token=None, body=None, headers=None, timeout=20,
              rid=None, resp=Resp):
    """One request with urllib; never raises (status 0: no answer).  body
    is sent as is when bytes, else as JSON; rid goes in X-Request-Id."""
    h = {}
    data = None
    if rid is not None:
        h["X-Request-Id"] = rid
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    elif method in ("POST", "PATCH", "PUT"):
        data = b""
    if token is not None:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return resp(r.status, dict(r.headers), r.read(), rid)
    except urllib.error.HTTPError as e:
        return resp(e.code, dict(e.headers or {}), e.read(), rid)
    except (urllib.error.URLError, OSError) as e:
        return resp(0, {}, f"no answer: {e}".encode(), rid)


# ------------------------------------------------------- sql and services


def in_pairs(fn, n):
    """fn() n times, two at a time, the results in order.  Idle workers
    take requests last in, first out, so one client's requests one after
    another all go to one worker; two at once keep both busy, which is what
    a check that is about every worker needs."""
    out = []
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        for i in range(0, n, 2):
            out += [f.result() for f in [ex.submit(fn) for _ in range(min(2, n - i))]]
    return out


def psql(sql, timeout=120):
    """The rows psql prints for sql against DATABASE_URL; Fatal on error."""
    p = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-d", os.environ["DATABASE_URL"], "-c", sql],
        capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise Fatal(f"psql failed: {p.stderr.strip()}\n  SQL: {sql[:500]}")
    return p.stdout.strip()


def psql_json(sql):
    out = psql(sql)
    return json.loads(out) if out else None


def lit(s):
    """s as an SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def stack(cmd, stack_dir=None, timeout=120):
    """tests/harness/stack CMD on stack_dir (default FIN_STACK_DIR): its
    output; Fatal when it fails."""
    p = subprocess.run(["bash", os.environ["FIN_STACK"], cmd,
                        stack_dir or os.environ["FIN_STACK_DIR"]],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise Fatal(f"stack {cmd} failed: {p.stderr.strip()}")
    return p.stdout


def redis_cli(port, *args):
    """redis-cli's answer to args on 127.0.0.1:port, None if it failed."""
    if shutil.which("redis-cli") is None:
        return None
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
                       + list(args), capture_output=True, text=True,
                       timeout=30)
    return p.stdout.strip() if p.returncode == 0 else None


def redis_keys(port, pattern):
    """The keys matching pattern (SCAN, not KEYS), None if redis-cli failed."""
    out = redis_cli(port, "--scan", "--pattern", pattern)
    return out.split() if out is not None else None


# ------------------------------------------------------ the workers' log


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_since(path, offset):
    """The text of the log at path from byte offset on ("" if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_events(path, offset=0):
    """The JSON objects of the log's lines from offset on."""
    out = []
    for line in log_since(path, offset).splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict):
            out.append(o)
    return out


def pids_of(path, rids, secs=3.0):
    """{request_id: pid} from the workers' request log lines.  A worker
    writes its line just after the response, so wait for them a little."""
    want = set(rids)
    found = {}
    for _ in range(int(secs / 0.1) + 1):
        for o in log_events(path):
            if o.get("event") == "request" and o.get("request_id") in want:
                found[o["request_id"]] = o.get("pid")
        if len(found) == len(want):
            break
        time.sleep(0.1)
    return found
