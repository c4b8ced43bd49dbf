#!/usr/bin/python3
"""Switch figures (RTO = from the DC host's death to the replica running):
 1. automatic failover: a pair with `auto_failover: true` and
    `start_after_restore: false` (the replica stays stopped until the
    failover), its DC VM of 64M (`onboot`, running) on dc1; dc1 loses power
    (lab `power-off`) at a random moment of the monitor's cycle, a fresh
    good probe before; measured: power-off → the replica VM running on
    drc1 (`lab.py vm-status` every 0.1 s), split into detection (power-off
    → the failover task's `created_at`), queueing (→ `started_at`) and
    execution (→ `finished_at`, from the database, in ms), with the event's
    steps. Cases: (a) the replica is current (one replicate before),
    (b) the replica needs a restore (one replicate, then one more backup,
    so the newest archive is newer than the replica); each --runs times
    with a shortened setting (MONITOR_INTERVAL_SECS=5,
    FAILOVER_TOLERANCE_SECS=15, MONITOR_PROBE_TIMEOUT_SECS=3), and case (a)
    once with the defaults (60/120/10, powered off right after a good
    probe: the slow end) unless --quick. A new VMID and pair per run; dc1
    is powered on again between runs, and the next cut waits until its
    host_down alert is resolved;
 2. manual failover with the DC alive: fencing (FENCE_SHUTDOWN_SECS
    default; the lab's `qm shutdown` is instant) and start of a current
    replica, `POST /api/v1/pairs/{id}/failover` → task finished;
 3. DR drill with DRILL_BOOT_SECS=10, `POST /api/v1/pairs/{id}/drill` →
    task finished, with the event's measured RTO and steps, for a 64M and
    a 512M disk.

    cargo build --release
    /usr/bin/python3 bench/switch.py [--quick] [--runs 3] [--only auto|manual|drill]

--quick skips the failover with the default settings (~4 of the ~8 min).
DRSWITCH_BIN=path runs another build (see common.py). Everything (lab,
drswitch, temp dirs) is cleaned up on exit, also on Ctrl-C.
"""
import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import Drswitch, Lab  # noqa: E402

SHORT = {"MONITOR_INTERVAL_SECS": 5, "FAILOVER_TOLERANCE_SECS": 15, "MONITOR_PROBE_TIMEOUT_SECS": 3}
DEFAULTS = {"MONITOR_INTERVAL_SECS": 60, "FAILOVER_TOLERANCE_SECS": 120, "MONITOR_PROBE_TIMEOUT_SECS": 10}
DRILL_ENV = {"DRILL_BOOT_SECS": 10}
LEVEL_RE = re.compile(r"^\S+\s+(WARN|ERROR)\s+(\S+?):\s+(.*?)(?:\s+\w+=.*)?$")
POLL = 0.1


def env(cfg):
    return {k: str(v) for k, v in cfg.items()}


def fmt_s(values):
    return "min {:.2f} s, median {:.2f} s, max {:.2f} s".format(min(values), statistics.median(values), max(values))


def query(app, sql, args=()):
    """Rows from drswitch's SQLite database, read-only."""
    con = sqlite3.connect(f"file:{os.path.join(app.data, 'drswitch.db')}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def last_good(app, hid):
    """The last good probe of the host (s since the epoch), or None."""
    rows = query(app, "SELECT last_good_at FROM host_health WHERE hypervisor_id = ?", (str(hid),))
    return rows[0][0] / 1000 if rows and rows[0][0] is not None else None


def wait_probed_up(app, hid, since, timeout):
    """Waits for a good probe of the host that ended after `since`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        good = last_good(app, hid)
        if good is not None and good > since:
            return good
        time.sleep(0.2)
    sys.exit(f"host {hid} was not probed up within {timeout} s")


def log_complaints(app):
    """WARN/ERROR lines of drswitch.log: count and first line, by level,
    target and message."""
    counts, first = {}, {}
    with open(os.path.join(app.work, "drswitch.log"), errors="replace") as f:
        for line in f:
            m = LEVEL_RE.match(line.strip())
            if m:
                key = f"{m.group(1)} {m.group(2)}: {m.group(3)}"
                counts[key] = counts.get(key, 0) + 1
                first.setdefault(key, line.strip())
    return counts, first


def print_alerts(app, label):
    """How many alerts of each kind and message start drswitch opened."""
    tally = {}
    for a in app.call("GET", "/api/v1/alerts?limit=500"):
        key = f"{a['kind']}: {' '.join(a['message'].split()[:6])} …"
        tally[key] = tally.get(key, 0) + 1
    print(f"    alerts ({label}): " + "; ".join(f"{n} × {k}" for k, n in sorted(tally.items())))


def print_complaints(app, label):
    counts, first = log_complaints(app)
    if not counts:
        print(f"    drswitch.log ({label}): no WARN/ERROR lines")
        return
    print(f"    drswitch.log ({label}): WARN/ERROR lines:")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"      {n:5d} × {key}")
        print(f"              first: {first[key][:400]}")


def setup(stack, cfg):
    """drswitch with `cfg` and a lab of dc1 and drc1, both registered."""
    work = tempfile.mkdtemp(prefix="drswitch-bench")
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    app = Drswitch(work, env(cfg))
    key = app.pubkey()
    app.start()
    stack.callback(app.stop)
    lab = Lab(["dc1", "drc1"], key)
    stack.callback(lab.stop)
    dc = app.register(lab.hosts["dc1"], "dc")
    drc = app.register(lab.hosts["drc1"], "drc")
    return app, lab, dc, drc


def new_pair(app, dc, drc, vmid, dst_vmid, **extra):
    body = {"name": f"bench-{vmid}", "src_hypervisor_id": dc, "src_vmid": vmid, "dst_hypervisor_id": drc,
            "dst_vmid": dst_vmid, "start_after_restore": False, "keep_last": 2}
    body.update(extra)
    return app.call("POST", "/api/v1/pairs", body)


def run_task(app, pair, kind, body=None):
    task = app.call("POST", f"/api/v1/pairs/{pair['id']}/{kind}", body)
    done = app.wait(task["id"])
    if done["status"] != "succeeded":
        sys.exit(f"{kind} of {pair['name']} {done['status']}: {done.get('error')}")
    return done


def task_times(app, task_id):
    """(created_at, started_at, finished_at) in ms from the database."""
    return query(app, "SELECT created_at, started_at, finished_at FROM tasks WHERE id = ?", (task_id,))[0]


def event_of(app, pair, task_id):
    """The event of the task: as the API shows it, with its steps' times
    in ms from the database (the API gives whole seconds)."""
    events = app.call("GET", f"/api/v1/events?pair_id={pair['id']}")
    ev = next((e for e in events if e["task_id"] == task_id), None)
    if ev is None:
        return None, []
    row = query(app, "SELECT steps FROM events WHERE id = ?", (ev["id"],))
    raw = json.loads(row[0][0]) if row else []
    return ev, raw


def print_event(ev, raw, indent="      "):
    if ev is None:
        print(f"{indent}(no event)")
        return
    rto = f"{ev['rto_secs']:.3f} s" if ev.get("rto_secs") is not None else "none"
    print(f"{indent}event {ev['kind']} {ev['status']}, rto_secs {rto}, forced {ev['forced']}: {ev['summary']}")
    for api_step, s in zip(ev["steps"], raw):
        ms = s["finished_at"] - s["started_at"]
        print(f"{indent}  {api_step['name']:<26} {ms:6d} ms {'ok  ' if s['ok'] else 'FAIL'} {s['detail']}")


def failover_task(app, pair_id, after_ms):
    rows = query(app, "SELECT id, status FROM tasks WHERE pair_id = ? AND kind = 'failover' AND created_at >= ? "
                      "ORDER BY created_at", (pair_id, after_ms))
    return rows[0] if rows else None


def returned_alert(app, pair, timeout):
    """(time seen, message) of the open alert that the pair's source VM
    runs again, or None after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for a in app.call("GET", "/api/v1/alerts?state=open"):
            if a["kind"] == "failover" and a["subject"]["name"] == pair["name"] and "runs again" in a["message"]:
                return time.time(), a["message"]
        time.sleep(0.2)
    return None


def delete_pair(app, pair):
    try:
        app.call("DELETE", f"/api/v1/pairs/{pair['id']}")
    except urllib.error.HTTPError as e:
        print(f"      (pair {pair['name']} not deleted: {e.code} {e.read().decode(errors='replace')})")


def one_auto(app, lab, dc, drc, cfg, case, vmid, delay, settle=True):
    """One automatic failover; returns its figures (s)."""
    dst = vmid + 100
    lab.create_vm("dc1", vmid, "64M", onboot=True)
    pair = new_pair(app, dc, drc, vmid, dst, auto_failover=True)
    run_task(app, pair, "replicate")
    if case == "b":
        run_task(app, pair, "backup")
    before = lab.vm_status("drc1", dst)
    if before != "stopped":
        sys.exit(f"replica VM {dst} is {before} before the power cut, not stopped")
    interval = cfg["MONITOR_INTERVAL_SECS"]
    wait_probed_up(app, dc, time.time(), interval * 3 + 30)  # a round that began after the set-up
    time.sleep(delay)
    good = last_good(app, dc)
    t0 = time.time()
    lab.power_off("dc1")
    t_off = time.time()
    bound = sum(cfg.values()) + 120
    seen = None
    while time.time() < t0 + bound:
        t = time.time()
        if lab.vm_status("drc1", dst) == "running":
            seen = time.time()  # the end of the poll that saw it
            break
        time.sleep(max(0.0, t + POLL - time.time()))
    if seen is None:
        row = failover_task(app, pair["id"], int(t0 * 1000))
        sys.exit(f"replica VM {dst} not running {bound} s after the power cut (failover task: {row})")
    row = None
    while row is None or row[1] in ("queued", "running"):
        row = failover_task(app, pair["id"], int(t0 * 1000))
        time.sleep(0.05)
    task_id, status = row
    created, started, finished = task_times(app, task_id)
    ev, raw = event_of(app, pair, task_id)
    state = app.call("GET", f"/api/v1/pairs/{pair['id']}")["state"]
    f = {"rto": seen - t0, "detect": created / 1000 - t0, "queue": (started - created) / 1000,
         "exec": (finished - started) / 1000, "age": t0 - good, "off": t_off - t0,
         "ev_rto": ev.get("rto_secs") if ev else None}
    print(f"    ({case}) VM {vmid} → replica {dst}: RTO {f['rto']:.2f} s = detection {f['detect']:.2f} s "
          f"+ queue {f['queue'] * 1000:.0f} ms + execution {f['exec']:.2f} s "
          f"(+ ≤{POLL:.1f} s poll; task {status}, pair {state}); "
          f"last good probe {f['age']:.1f} s before the cut; power-off answered in {f['off'] * 1000:.0f} ms")
    print_event(ev, raw)
    t = time.time()
    lab.power_on("dc1")
    wait_probed_up(app, dc, t, interval * 6 + 60)
    up = time.time() - t
    src = lab.vm_status("dc1", vmid)
    alert = returned_alert(app, pair, interval * 2 + 10)
    print(f"      dc1 back on and probed up after {up:.1f} s; DC VM {vmid} is {src} (onboot kept: a forced "
          f"failover cannot fence); " + (f"alert after {alert[0] - t:.1f} s: {alert[1]}" if alert
                                         else "no alert about the returned source VM"))
    if settle:
        # The next power cut comes after a full recovery: the host_down
        # alert is resolved only after several good samples.
        while any(a["kind"] == "host_down" for a in app.call("GET", "/api/v1/alerts?state=open")):
            if time.time() > t + interval * 6 + 60:
                sys.exit("the host_down alert of dc1 was not resolved")
            time.sleep(0.2)
        print(f"      host_down alert resolved {time.time() - t:.1f} s after the power-on")
    delete_pair(app, pair)
    return f


def auto(args, stack):
    print("1. Automatic failover: dc1 powered off → replica VM running on drc1 (64M disk)")
    cfg = SHORT
    app, lab, dc, drc = setup(stack, cfg)
    results = {"a": [], "b": []}
    vmid = 100
    for i in range(args.runs):
        for case in ("a", "b"):
            delay = random.uniform(0, cfg["MONITOR_INTERVAL_SECS"])
            results[case].append(one_auto(app, lab, dc, drc, cfg, case, vmid, delay))
            vmid += 1
    names = {"a": "replica current (start only)", "b": "replica needs a restore"}
    setting = "/".join(str(v) for v in cfg.values())
    for case, rs in results.items():
        print(f"({case}) {names[case]}, interval/tolerance/probe timeout {setting} s, {len(rs)} runs:")
        print(f"    RTO        {fmt_s([r['rto'] for r in rs])}")
        print(f"    detection  {fmt_s([r['detect'] for r in rs])}  (tolerance {cfg['FAILOVER_TOLERANCE_SECS']} s "
              f"− age of the last good probe, up to one interval later)")
        print(f"    queue      {fmt_s([r['queue'] for r in rs])}")
        print(f"    execution  {fmt_s([r['exec'] for r in rs])}")
        evr = [r["ev_rto"] for r in rs if r["ev_rto"] is not None]
        if evr:
            print(f"    event rto_secs (task start → copy ran) {fmt_s(evr)}")
    print_alerts(app, "shortened runs")
    print_complaints(app, "shortened runs")

    if not args.quick:
        cfg = DEFAULTS
        app.stop()
        for k in SHORT:
            app.env.pop(k, None)  # the built-in defaults, not values we set
        restarted = time.time()
        app.start()
        wait_probed_up(app, dc, restarted, 60)
        r = one_auto(app, lab, dc, drc, cfg, "a", vmid, 0, settle=False)
        print(f"(a) defaults 60/120/10 s, powered off right after a good probe: RTO {r['rto']:.2f} s = detection "
              f"{r['detect']:.2f} s + queue {r['queue'] * 1000:.0f} ms + execution {r['exec']:.2f} s")
        print_alerts(app, "all runs")
        print_complaints(app, "all runs")


def manual(args, stack):
    print("2. Manual failover, DC alive: POST /failover → task finished (fence + start of a current replica)")
    app, lab, dc, drc = setup(stack, {})
    totals, fences, db_totals = [], [], []
    for i in range(args.runs):
        vmid, dst = 300 + i, 400 + i
        lab.create_vm("dc1", vmid, "64M", onboot=True)
        pair = new_pair(app, dc, drc, vmid, dst)
        run_task(app, pair, "replicate")
        t0 = time.time()
        task = app.call("POST", f"/api/v1/pairs/{pair['id']}/failover", {"force": False})
        done = app.wait(task["id"])
        total = time.time() - t0
        if done["status"] != "succeeded":
            sys.exit(f"failover {done['status']}: {done.get('error')}")
        created, started, finished = task_times(app, task["id"])
        ev, raw = event_of(app, pair, task["id"])
        fence = next((s["finished_at"] - s["started_at"] for s in raw if s["name"] == "fence"), None)
        totals.append(total)
        db_totals.append((finished - created) / 1000)
        if fence is not None:
            fences.append(fence / 1000)
        print(f"    run {i + 1}: {total:.2f} s POST → finished seen (task created → finished {db_totals[-1]:.3f} s, "
              f"queue {started - created} ms); DC VM {vmid} {lab.vm_status('dc1', vmid)}, "
              f"replica {dst} {lab.vm_status('drc1', dst)}")
        print_event(ev, raw)
    print(f"(2) {len(totals)} runs: total {fmt_s(totals)}; task {fmt_s(db_totals)}; fence step {fmt_s(fences)} "
          f"(FENCE_SHUTDOWN_SECS default 60)")
    print_complaints(app, "manual failovers")


def drill(args, stack):
    print(f"3. DR drill, DRILL_BOOT_SECS={DRILL_ENV['DRILL_BOOT_SECS']}: POST /drill → task finished")
    app, lab, dc, drc = setup(stack, DRILL_ENV)
    for i, size in enumerate(("64M", "512M")):
        vmid, dst, dvm = 500 + i, 600 + i, 700 + i
        lab.create_vm("dc1", vmid, size)
        pair = new_pair(app, dc, drc, vmid, dst, drill_vmid=dvm)
        run_task(app, pair, "backup")
        t0 = time.time()
        task = app.call("POST", f"/api/v1/pairs/{pair['id']}/drill", {})
        done = app.wait(task["id"])
        total = time.time() - t0
        if done["status"] != "succeeded":
            sys.exit(f"drill {done['status']}: {done.get('error')}")
        created, started, finished = task_times(app, task["id"])
        ev, raw = event_of(app, pair, task["id"])
        left = lab.vm_status("drc1", dvm)
        print(f"(3) {size}: total {total:.2f} s (task created → finished {(finished - created) / 1000:.3f} s), "
              f"measured RTO {ev['rto_secs']:.3f} s; drill VM {dvm} afterwards: {left}")
        print_event(ev, raw)
    print_complaints(app, "drills")


def interrupted(*_):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the failover with the default settings")
    ap.add_argument("--runs", type=int, default=3, help="runs of each shortened case and of the manual failover")
    ap.add_argument("--only", choices=("auto", "manual", "drill"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    started = time.time()
    try:
        for name, part in (("auto", auto), ("manual", manual), ("drill", drill)):
            if args.only in (None, name):
                with contextlib.ExitStack() as stack:
                    part(args, stack)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
