#!/usr/bin/python3
"""Web UI figures on a large installation (SQLite, release build):
time to first byte of the dashboard and the task list (median of N), their
page weight with every asset, and the SQL queries each page makes, on a
small and a large database (the count must not grow with the rows).

    cargo build --release && bench/ui.py [--pairs 200] [--hypervisors 50] [--tasks 10000] [--runs 50]
"""
import argparse
import http.client
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import Drswitch  # noqa: E402

PAGES = ["/", "/tasks"]


def seed(app, pairs, hypervisors, tasks):
    """Hypervisors and pairs through the API (so every rule applies), tasks
    and archives straight into the database (the API cannot backdate)."""
    half = max(1, hypervisors // 2)
    dcs, drcs = [], []
    for i in range(hypervisors):
        role = "dc" if i < half else "drc"
        h = app.call("POST", "/api/v1/hypervisors",
                     {"name": f"{role}{i}", "host": f"10.0.{i // 250}.{i % 250 + 1}", "node": f"pve{i}", "role": role})
        (dcs if role == "dc" else drcs).append(h["id"])
    pair_ids = []
    for i in range(pairs):
        p = app.call("POST", "/api/v1/pairs", {"name": f"vm{i}", "src_hypervisor_id": dcs[i % len(dcs)], "src_vmid": 100 + i,
                                               "dst_hypervisor_id": drcs[i % len(drcs)], "dst_vmid": 1000 + i})
        pair_ids.append(p["id"])
    db = sqlite3.connect(os.path.join(app.data, "drswitch.db"))
    now = int(time.time() * 1000)
    rows, archives = [], []
    for n in range(tasks):
        pair = pair_ids[n % len(pair_ids)]
        at = now - (tasks - n) * 60_000
        tid, aid = str(uuid.uuid4()), str(uuid.uuid4())
        rows.append((tid, "backup", pair, "succeeded", "succeeded", 100, 1 << 30, 1 << 30, aid, "scheduler", 1, 3,
                     at - 200_000, at - 200_000, at))
        if n >= tasks - 3 * len(pair_ids):
            archives.append((aid, pair, time.strftime("vzdump-qemu-100-%Y_%m_%d-%H_%M_%S.vma.zst", time.gmtime(at / 1000)) + f"{n}",
                             1 << 30, "ab" * 32, at, tid, at))
    db.executemany("INSERT INTO tasks (id, kind, pair_id, status, phase, progress, bytes_done, bytes_total, archive_id, "
                   "requested_by, attempt, max_attempts, created_at, started_at, finished_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO archives (id, pair_id, file_name, size_bytes, sha256, created_at, task_id, verified_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", archives)
    db.commit()
    db.close()


def page_login(app):
    """Logs in through the login form; returns the session cookie header."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port)
    conn.request("GET", "/login")
    r = conn.getresponse()
    cookie = r.getheader("set-cookie").split(";")[0]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', r.read().decode()).group(1)
    body = f"csrf={csrf}&username=admin&password=bench-password-1"
    conn.request("POST", "/login", body=body, headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    assert r.status == 303, r.status
    return r.getheader("set-cookie").split(";")[0]


def ttfb(app, cookie, path, runs):
    """Median and worst time to the first byte of `path` over `runs` requests."""
    times = []
    conn = http.client.HTTPConnection("127.0.0.1", app.port)
    for _ in range(runs):
        start = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie})
        r = conn.getresponse()
        r.read(1)
        times.append(time.perf_counter() - start)
        r.read()
    return statistics.median(times) * 1000, max(times) * 1000


def weight(app, cookie, path):
    """Bytes of the page and of every script and stylesheet it loads, as
    sent uncompressed and as sent with gzip (what a browser gets)."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port)

    def get(p, gzip):
        headers = {"Cookie": cookie, "Accept-Encoding": "gzip" if gzip else "identity"}
        conn.request("GET", p, headers=headers)
        return conn.getresponse().read()

    html = get(path, False)
    assets = set(re.findall(rb'(?:src|href)="(/static/[^"]+)"', html))
    raw = len(html) + sum(len(get(a.decode(), False)) for a in assets)
    gz = len(get(path, True)) + sum(len(get(a.decode(), True)) for a in assets)
    return len(html), raw, gz


def queries(app, cookie, path):
    """SQL statements one request of `path` runs (sqlx logs each one)."""
    log = os.path.join(app.work, "drswitch.log")
    before = open(log).read().count("sqlx::query")
    conn = http.client.HTTPConnection("127.0.0.1", app.port)
    conn.request("GET", path, headers={"Cookie": cookie})
    conn.getresponse().read()
    time.sleep(0.3)  # let the log writer flush; the count is what changed, not a timing
    return open(log).read().count("sqlx::query") - before


def measure(pairs, hypervisors, tasks, runs):
    work = tempfile.mkdtemp(prefix="drswitch-bench-ui")
    env = {"WORKER_ENABLED": "false", "SCHEDULER_ENABLED": "false", "RUST_LOG": "warn,sqlx::query=debug"}
    app = Drswitch(work, env)
    try:
        app.start()
        seed(app, pairs, hypervisors, tasks)
        cookie = page_login(app)
        out = {}
        for path in PAGES:
            out[path] = (ttfb(app, cookie, path, runs), weight(app, cookie, path), queries(app, cookie, path))
        return out
    finally:
        app.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--hypervisors", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    small = measure(2, 2, 10, 5)
    big = measure(a.pairs, a.hypervisors, a.tasks, a.runs)
    print(f"{a.pairs} pairs, {a.hypervisors} hypervisors, {a.tasks} tasks (SQLite), median of {a.runs}:")
    print("| page | TTFB median | TTFB worst | HTML | with all assets | gzip, as sent | SQL queries (2 pairs / large) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path in PAGES:
        (med, worst), (html, total, gz), q = big[path]
        print(f"| {path} | {med:.1f} ms | {worst:.1f} ms | {html / 1024:.1f} KiB | {total / 1024:.1f} KiB "
              f"| {gz / 1024:.1f} KiB | {small[path][2]} / {q} |")


if __name__ == "__main__":
    main()
