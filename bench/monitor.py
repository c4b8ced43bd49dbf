#!/usr/bin/python3
"""Monitor figures:
 1. detection time: from a DC host losing power (lab `power-off`) to the
    first `host_down` `alert.opened` webhook a local HTTP server receives,
    (a) with a shortened setting (MONITOR_INTERVAL_SECS=5,
    FAILOVER_TOLERANCE_SECS=15, MONITOR_PROBE_TIMEOUT_SECS=3), several runs
    (power-on and the `alert.resolved` notice between them, the power cut at
    a random moment of the monitor's cycle), and (b) once with the defaults
    (60/120/10), unless --quick;
 2. probe round time with 50 hosts of which 10 hang (a listener accepts TCP
    connections on their ssh and API ports and never sends a byte),
    MONITOR_INTERVAL_SECS=10, MONITOR_PROBE_TIMEOUT_SECS=5: the
    `monitor round done` debug lines of drswitch.log, against the interval;
 3. database growth, from the same run: raw sample rows and the bytes they
    take in SQLite (dbstat: table and primary-key index), per sample, per
    host and day at the default 60 s interval, and per host in the steady
    state (48 h raw + 90 days of 15-minute averages).

    cargo build --release
    /usr/bin/python3 bench/monitor.py [--quick] [--runs 3] [--rounds 6] [--only detection|rounds]

--quick skips the run with the default settings (~2.5 of the ~5 min).
DRSWITCH_BIN=path runs another build (see common.py). Everything (lab, drswitch, listeners, temp dirs) is cleaned up on exit,
also on Ctrl-C.
"""
import argparse
import contextlib
import http.server
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import Drswitch, Lab  # noqa: E402

SHORT = {"MONITOR_INTERVAL_SECS": 5, "FAILOVER_TOLERANCE_SECS": 15, "MONITOR_PROBE_TIMEOUT_SECS": 3}
DEFAULTS = {"MONITOR_INTERVAL_SECS": 60, "FAILOVER_TOLERANCE_SECS": 120, "MONITOR_PROBE_TIMEOUT_SECS": 10}
ROUNDS_ENV = {"MONITOR_INTERVAL_SECS": 10, "MONITOR_PROBE_TIMEOUT_SECS": 5}
LOG_ENV = {"RUST_LOG": "warn,drswitch::monitor=debug"}
ROUND_RE = re.compile(r"monitor round done.*?hosts=(\d+).*?probed_ms=(\d+).*?total_ms=(\d+)")
LEVEL_RE = re.compile(r"^\S+\s+(WARN|ERROR)\s+(\S+?):\s+(.*?)(?:\s+\w+=.*)?$")
# Raw samples per host: one a minute for 48 h, then 15-minute averages for 90 days.
RAW_PER_DAY = 86_400 // 60
STEADY_RAW, STEADY_AVG = 48 * 60, 90 * 96


def fmt_s(values):
    return "min {:.1f} s, median {:.1f} s, max {:.1f} s".format(min(values), statistics.median(values), max(values))


def kib(n):
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


class Hooks:
    """A webhook receiver on loopback: keeps every JSON body it gets with
    the time it arrived."""

    def __init__(self):
        self.got = []
        self.cond = threading.Condition()
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                at = time.time()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    notice = json.loads(body)
                except ValueError:
                    notice = {}
                notice.setdefault("event", self.headers.get("X-Drswitch-Event"))
                with hooks.cond:
                    hooks.got.append((at, notice))
                    hooks.cond.notify_all()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, event, kind, name, after, timeout):
        """The arrival time of the first notice `event` of an alert `kind`
        about `name` that came after `after`, or None after `timeout`."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for at, n in self.got:
                    a = n.get("alert") or {}
                    if (at > after and n.get("event") == event and a.get("kind") == kind
                            and (a.get("subject") or {}).get("name") == name):
                        return at
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class HungHosts:
    """Hosts that hang: on each address, two ports (ssh, API) that accept a
    TCP connection and never send a byte. What a client sends is read and
    dropped; a connection stays open until the client closes it."""

    def __init__(self, addrs):
        self.sel = selectors.DefaultSelector()
        self.hosts = []
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.stopping = False
        for addr in addrs:
            ports = []
            for _ in ("ssh", "api"):
                s = socket.socket()
                s.bind((addr, 0))
                s.listen(128)
                s.setblocking(False)
                self.sel.register(s, selectors.EVENT_READ, "listen")
                ports.append(s.getsockname()[1])
            self.hosts.append((addr, ports[0], ports[1]))
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            for key, _ in self.sel.select(0.2):
                sock = key.fileobj
                if key.data == "listen":
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    self.sel.register(conn, selectors.EVENT_READ, "conn")
                    self.accepted += 1
                    self.open += 1
                    self.max_open = max(self.max_open, self.open)
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(sock)
                    sock.close()
                    self.open -= 1

    def close(self):
        self.stopping = True
        self.thread.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def log_path(app):
    return os.path.join(app.work, "drswitch.log")


def log_complaints(app):
    """WARN/ERROR lines of drswitch.log, counted by level, target and message."""
    counts = {}
    with open(log_path(app), errors="replace") as f:
        for line in f:
            m = LEVEL_RE.match(line.strip())
            if m:
                key = f"{m.group(1)} {m.group(2)}: {m.group(3)}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def print_complaints(app, label):
    counts = log_complaints(app)
    if not counts:
        print(f"    drswitch.log ({label}): no WARN/ERROR lines")
        return
    print(f"    drswitch.log ({label}): WARN/ERROR lines:")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"      {n:5d} × {key}")


def host_status(app, hid):
    return app.call("GET", f"/api/v1/hypervisors/{hid}/status")


def health(app, hid):
    """(last_probe_at, last_good_at) in seconds, from the database: the API
    gives whole seconds only."""
    con = sqlite3.connect(f"file:{os.path.join(app.data, 'drswitch.db')}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT last_probe_at, last_good_at FROM host_health WHERE hypervisor_id = ?",
                          (str(hid),)).fetchone()
    finally:
        con.close()
    return (row[0] / 1000, row[1] / 1000 if row[1] is not None else None) if row else (None, None)


def wait_probed_up(app, hid, since, timeout):
    """Waits for a good probe of the host that ended after `since`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, good = health(app, hid)
        if good is not None and good > since:
            return
        time.sleep(0.2)
    sys.exit(f"host {hid} was not probed up within {timeout} s: {host_status(app, hid)}")


def one_detection(app, lab, hooks, hid, name, cfg, delay):
    """Powers `name` off `delay` s after a fresh good probe; returns (seconds
    to the alert.opened webhook, age of the last good probe at power-off)."""
    wait_probed_up(app, hid, time.time() - cfg["MONITOR_INTERVAL_SECS"] * 3, cfg["MONITOR_INTERVAL_SECS"] * 3 + 30)
    time.sleep(delay)
    _, last_good = health(app, hid)
    t0 = time.time()
    lab.power_off(name)
    bound = cfg["FAILOVER_TOLERANCE_SECS"] + cfg["MONITOR_INTERVAL_SECS"] + cfg["MONITOR_PROBE_TIMEOUT_SECS"]
    at = hooks.wait("alert.opened", "host_down", name, t0, bound + 60)
    if at is None:
        sys.exit(f"no host_down alert.opened webhook within {bound + 60} s of the power-off")
    return at - t0, t0 - last_good


def restore(app, lab, hooks, name, cfg):
    """Power back on and wait for the alert.resolved notice."""
    t = time.time()
    lab.power_on(name)
    timeout = cfg["MONITOR_INTERVAL_SECS"] * 6 + 60
    at = hooks.wait("alert.resolved", "host_down", name, t, timeout)
    if at is None:
        sys.exit(f"no host_down alert.resolved webhook within {timeout} s of the power-on")
    return at - t


def detection(args, stack):
    print("1. Detection time: DC host dc1 powered off → first host_down alert.opened webhook received")
    work = tempfile.mkdtemp(prefix="drswitch-bench")
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    hooks = Hooks()
    stack.callback(hooks.close)
    app = Drswitch(work, {**{k: str(v) for k, v in SHORT.items()}, **LOG_ENV})
    key = app.pubkey()
    app.start()
    stack.callback(app.stop)
    lab = Lab(["dc1", "drc1"], key)
    stack.callback(lab.stop)
    dc = app.register(lab.hosts["dc1"], "dc")
    app.register(lab.hosts["drc1"], "drc")
    app.call("POST", "/api/v1/notification-targets", {"name": "hook", "kind": "webhook", "url": hooks.url})

    cfg = SHORT
    bound = sum(cfg.values())
    times, ages, resolved = [], [], []
    for i in range(args.runs):
        delay = random.uniform(0, cfg["MONITOR_INTERVAL_SECS"])
        took, age = one_detection(app, lab, hooks, dc, "dc1", cfg, delay)
        times.append(took)
        ages.append(age)
        print(f"    (a) run {i + 1}: {took:.1f} s (last good probe {age:.1f} s before the power cut, "
              f"so silent for {took + age:.1f} s when the alert came)")
        resolved.append(restore(app, lab, hooks, "dc1", cfg))
    print(f"(a) interval {cfg['MONITOR_INTERVAL_SECS']} s, tolerance {cfg['FAILOVER_TOLERANCE_SECS']} s, "
          f"probe timeout {cfg['MONITOR_PROBE_TIMEOUT_SECS']} s, {len(times)} runs: {fmt_s(times)}; "
          f"bound tolerance + interval + probe timeout = {bound} s "
          f"(expected: tolerance − time since the last good probe, rounded up to the next round)")
    print(f"    power-on → host_down alert.resolved webhook: {fmt_s(resolved)}")

    if not args.quick:
        cfg = DEFAULTS
        bound = sum(cfg.values())
        app.stop()
        for k in SHORT:
            app.env.pop(k, None)  # the built-in defaults, not values we set
        restarted = time.time()
        app.start()
        # Powered off right after the first probe of the restarted monitor:
        # the last good probe is as fresh as it gets, so this is close to
        # the slowest case (a whole interval after the tolerance ran out).
        wait_probed_up(app, dc, restarted, 60)
        took, age = one_detection(app, lab, hooks, dc, "dc1", cfg, 0)
        print(f"(b) defaults: interval {cfg['MONITOR_INTERVAL_SECS']} s, tolerance {cfg['FAILOVER_TOLERANCE_SECS']} s, "
              f"probe timeout {cfg['MONITOR_PROBE_TIMEOUT_SECS']} s: {took:.1f} s "
              f"(last good probe {age:.1f} s before the power cut); bound {bound} s")
    print_complaints(app, "detection runs")


def pin_dummy_key(db, ids, work):
    key_file = os.path.join(work, "dummy_host_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", key_file], check=True)
    with open(key_file + ".pub") as f:
        key = " ".join(f.read().split()[:2])
    fp = subprocess.run(["ssh-keygen", "-l", "-f", key_file + ".pub"], check=True, capture_output=True,
                        text=True).stdout.split()[1]
    con = sqlite3.connect(db, timeout=30)
    with con:
        con.executemany("UPDATE hypervisors SET host_key = ?, host_key_fingerprint = ? WHERE id = ?",
                        [(key, fp, str(i)) for i in ids])
    con.close()


def read_rounds(app):
    out = []
    with open(log_path(app), errors="replace") as f:
        for line in f:
            m = ROUND_RE.search(line)
            if m:
                out.append(tuple(int(x) for x in m.groups()))
    return out


SAMPLES_BTREES = "SELECT name FROM sqlite_master WHERE tbl_name = 'host_samples'"


def samples_bytes(con, path):
    """Bytes the host_samples b-trees (table and its primary-key autoindex)
    take: dbstat's page sizes, else the file size their rows free (on a
    throwaway copy only: it deletes them)."""
    try:
        return con.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({SAMPLES_BTREES})").fetchone()[0], "dbstat"
    except sqlite3.OperationalError:
        con.execute("VACUUM")
        before = os.path.getsize(path)
        con.execute("DELETE FROM host_samples")
        con.commit()
        con.execute("VACUUM")
        return before - os.path.getsize(path), "file size freed after VACUUM"


def db_growth(db, tmp):
    """Measured rows and bytes of the run, then the same hosts' samples
    synthesised for a day and for the steady state, written round by round
    as the monitor writes them (no VACUUM)."""
    out = {}
    copy = os.path.join(tmp, "copy.db")
    src = sqlite3.connect(db)

    def fresh():
        if os.path.exists(copy):
            os.remove(copy)
        con = sqlite3.connect(copy)
        src.backup(con)
        return con

    con = fresh()
    dead = "SELECT id FROM hypervisors WHERE name LIKE 'hung%'"
    out["raw"], out["avg"], out["live"] = con.execute(
        f"SELECT SUM(span_secs = 0), SUM(span_secs > 0), SUM(hypervisor_id NOT IN ({dead})) FROM host_samples").fetchone()
    out["bytes"], out["how"] = samples_bytes(con, copy)
    con.close()
    con = fresh()
    con.execute("VACUUM")
    out["bytes_vacuumed"], _ = samples_bytes(con, copy)
    con.close()

    # Templates: the newest raw sample of each live host.
    con = fresh()
    con.executescript(f"""
        CREATE TABLE tpl AS SELECT s.* FROM host_samples s WHERE s.span_secs = 0
            AND s.hypervisor_id NOT IN ({dead})
            AND s.at = (SELECT MAX(at) FROM host_samples x WHERE x.hypervisor_id = s.hypervisor_id AND x.span_secs = 0);
        DELETE FROM host_samples;
    """)
    hosts = con.execute("SELECT COUNT(*) FROM tpl").fetchone()[0]
    base = 1_700_000_000_000
    cols = "t.cpu_pct{f}, t.mem_pct{f}, CAST(t.mem_free_bytes{f} AS INTEGER), t.disk_pct{f}, t.backup_pct{f}"

    def insert(n, step_ms, start, span, up, figures, services):
        con.executescript(f"""
            WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {n})
            INSERT INTO host_samples SELECT t.hypervisor_id, {start} + k.n * {step_ms}, {span}, {up}, {up},
                {figures}, {services} FROM k, tpl t ORDER BY k.n, t.hypervisor_id;
        """)

    insert(RAW_PER_DAY, 60_000, base, 0, "t.api_up", cols.format(f=""), "t.services")
    out["day_rows"] = RAW_PER_DAY * hosts
    out["day_bytes"], _ = samples_bytes(con, copy)
    try:
        out["day_index"] = con.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
            "(SELECT name FROM sqlite_master WHERE tbl_name = 'host_samples' AND type = 'index')").fetchone()[0]
    except sqlite3.OperationalError:
        out["day_index"] = None
    con.execute("DELETE FROM host_samples")
    con.commit()
    # Steady state: 48 h raw, and 90 days of 15-minute averages (fractions,
    # no service states) before them, the averages written as compaction
    # writes them: a few buckets of every host each hour.
    insert(STEADY_AVG, 900_000, base - 90 * 86_400_000, 900, "0.9833",
           cols.format(f=" * 1.000123"), "NULL")
    out["avg_bytes"], _ = samples_bytes(con, copy)
    insert(STEADY_RAW, 60_000, base, 0, "t.api_up", cols.format(f=""), "t.services")
    out["steady_bytes"], _ = samples_bytes(con, copy)
    out["hosts"] = hosts
    con.close()
    src.close()
    return out


def rounds(args, stack):
    live_names = [f"h{i:02d}" for i in range(1, args.live + 1)]
    interval = ROUNDS_ENV["MONITOR_INTERVAL_SECS"]
    print(f"2. Probe rounds: {args.live} live + {args.dead} hung hosts, interval {interval} s, "
          f"probe timeout {ROUNDS_ENV['MONITOR_PROBE_TIMEOUT_SECS']} s")
    work = tempfile.mkdtemp(prefix="drswitch-bench")
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    app = Drswitch(work, {**{k: str(v) for k, v in ROUNDS_ENV.items()}, **LOG_ENV})
    key = app.pubkey()
    app.start()
    stack.callback(app.stop)
    t = time.time()
    lab = Lab(live_names, key)
    stack.callback(lab.stop)
    hung = HungHosts([f"127.0.2.{i}" for i in range(1, args.dead + 1)])
    stack.callback(hung.close)
    print(f"    lab of {args.live} hosts up in {time.time() - t:.1f} s")
    t = time.time()
    for n in live_names:
        app.register(lab.hosts[n], "dc")
    template = lab.hosts[live_names[0]]
    dead_ids = []
    for i, (addr, ssh_port, api_port) in enumerate(hung.hosts, 1):
        h = app.call("POST", "/api/v1/hypervisors", {
            "name": f"hung{i:02d}", "host": addr, "ssh_port": ssh_port, "node": f"hung{i:02d}", "role": "dc",
            "api_port": api_port, "api_token_id": template["api_token_id"],
            "api_token_secret": template["api_token_secret"], "tls_fingerprint": template["tls_fingerprint"],
            "dump_dir": template["dump_dir"]})
        dead_ids.append(h["id"])
    db = os.path.join(app.data, "drswitch.db")
    pin_dummy_key(db, dead_ids, work)
    total = args.live + args.dead
    print(f"    registered and pinned {total} hosts in {time.time() - t:.1f} s")

    deadline = time.time() + (args.rounds + 3) * (interval + 2 * ROUNDS_ENV["MONITOR_PROBE_TIMEOUT_SECS"] + 1) + 30
    full = []
    while time.time() < deadline:
        full = [r for r in read_rounds(app) if r[0] == total]
        if len(full) >= args.rounds:
            break
        time.sleep(1)
    if not full:
        sys.exit("no monitor round with all hosts in drswitch.log")
    full = full[:args.rounds]
    probed = [r[1] for r in full]
    totals = [r[2] for r in full]
    worst = max(totals)
    if worst < interval * 1000:
        verdict = f"PASS: every round under the {interval} s interval"
    else:
        verdict = f"FAIL: a round took {worst} ms, longer than the {interval} s interval"
    print(f"(2) hosts={total}, {len(full)} rounds: probed_ms min {min(probed)} / median {statistics.median(probed):.0f}"
          f" / max {max(probed)}; total_ms min {min(totals)} / median {statistics.median(totals):.0f} / max {worst}"
          f" — {verdict}")
    print(f"    per round ms (probed/total): {', '.join(f'{p}/{t}' for _, p, t in full)}")
    st = host_status(app, dead_ids[0])
    print(f"    a hung host: reachability {st['reachability']}, api: {st['health']['api_detail']!r}, "
          f"ssh: {st['health']['ssh_detail']!r}")
    print(f"    hung listeners: {hung.accepted} connections accepted, at most {hung.max_open} open at once, "
          f"{hung.open} still open")
    app.stop()
    print_complaints(app, "round runs")

    # 3. Database growth from the same run.
    tmp = tempfile.mkdtemp(prefix="drswitch-bench-db")
    stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    g = db_growth(db, tmp)
    n = g["hosts"]
    print(f"3. Database growth (SQLite; bytes of table host_samples + its primary-key index, {g['how']}):")
    print(f"    this run: {g['raw']} raw sample rows ({g['live']} of live hosts), {g['avg']} averages: "
          f"{kib(g['bytes'])} as written = {g['bytes'] / g['raw']:.0f} bytes per sample "
          f"({kib(g['bytes_vacuumed'])} = {g['bytes_vacuumed'] / g['raw']:.0f} bytes per sample after VACUUM)")
    per_raw = g["day_bytes"] / g["day_rows"]
    print(f"    one day at the default 60 s interval, the {n} live hosts' samples repeated round by round: "
          f"{g['day_rows']} rows, {kib(g['day_bytes'])} = {per_raw:.0f} bytes per sample"
          + (f" (primary-key index {g['day_index'] / g['day_rows']:.0f} of them); " if g["day_index"] else "; ") +
          f"per host per day ({RAW_PER_DAY} samples): {kib(g['day_bytes'] / n)}")
    per_avg = g["avg_bytes"] / (STEADY_AVG * n)
    print(f"    steady state per host ({STEADY_RAW} raw of 48 h + {STEADY_AVG} 15-minute averages of 90 days, "
          f"{per_avg:.0f} bytes per average): {kib(g['steady_bytes'] / n)}; "
          f"for 50 hosts: {kib(g['steady_bytes'] / n * 50)}")


def interrupted(*_):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the detection run with the default settings")
    ap.add_argument("--runs", type=int, default=3, help="detection runs with the shortened setting")
    ap.add_argument("--rounds", type=int, default=6, help="monitor rounds to time with all 50 hosts")
    ap.add_argument("--live", type=int, default=40)
    ap.add_argument("--dead", type=int, default=10)
    ap.add_argument("--only", choices=("detection", "rounds"))
    args = ap.parse_args()
    # SIGTERM cleans up like Ctrl-C.
    signal.signal(signal.SIGTERM, interrupted)
    started = time.time()
    try:
        if args.only in (None, "detection"):
            with contextlib.ExitStack() as stack:
                detection(args, stack)
        if args.only in (None, "rounds"):
            with contextlib.ExitStack() as stack:
                rounds(args, stack)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
