#!/usr/bin/python3
"""Scheduler figures:
 (a) N schedules (default 1000) due at the same second: time from the due
     instant until all N tasks are queued;
 (b) the seed's scenario: 4 VMs on one host scheduled at the same instant,
     run through the lab: the idle gap between consecutive tasks.

    bench/scheduler.py [--schedules 1000] [--disk-size 64M]   (0 skips that part)
"""
import argparse
import datetime
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import Drswitch, Lab  # noqa: E402


def cron_at(t):
    return f"{t.second} {t.minute} {t.hour} * * *"


def db_of(app):
    return sqlite3.connect(os.path.join(app.data, "drswitch.db"))


def many_schedules(n):
    work = tempfile.mkdtemp(prefix="drswitch-bench")
    app = Drswitch(work, {"SCHEDULE_SECONDS": "true", "WORKER_ENABLED": "false", "TZ": "UTC"})
    app.start()
    try:
        hv = lambda name, role: app.call("POST", "/api/v1/hypervisors",  # noqa: E731
                                         {"name": name, "host": "127.0.0.1", "node": name, "role": role})["id"]
        dc, drc = hv("dc1", "dc"), hv("drc1", "drc")
        pairs = [app.call("POST", "/api/v1/pairs", {"src_hypervisor_id": dc, "src_vmid": 100 + i,
                                                    "dst_hypervisor_id": drc, "dst_vmid": 100 + i})["id"]
                 for i in range(n)]
        # Due a few seconds after the last schedule exists.
        created = time.time()
        due = None
        for p in pairs:
            if due is None:
                # Creating n schedules takes roughly as long as creating n pairs did.
                due = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + \
                    datetime.timedelta(seconds=int(time.time() - created) + 15)
            app.call("POST", "/api/v1/schedules", {"pair_id": p, "cron": cron_at(due), "timezone": "UTC"})
        due_ms = int(due.timestamp() * 1000)
        if time.time() * 1000 > due_ms:
            sys.exit("creating the schedules took longer than planned; rerun")
        deadline = time.time() + 120
        while time.time() < deadline:
            (count, last), = db_of(app).execute("SELECT COUNT(*), MAX(created_at) FROM tasks").fetchall()
            if count >= n:
                break
            time.sleep(0.2)
        print(f"(a) {n} schedules due at {due.isoformat()}: all {count} tasks queued {last - due_ms} ms after the due time")
    finally:
        app.stop()
        shutil.rmtree(work, ignore_errors=True)


def seed_scenario(size):
    work = tempfile.mkdtemp(prefix="drswitch-bench")
    app = Drswitch(work, {"SCHEDULE_SECONDS": "true", "TZ": "UTC"})
    key = app.pubkey()
    app.start()
    lab = Lab(["dc1", "drc1"], key)
    try:
        dc = app.register(lab.hosts["dc1"], "dc")
        drc = app.register(lab.hosts["drc1"], "drc")
        pairs = []
        for i in range(4):
            lab.create_vm("dc1", 100 + i, size)
            pairs.append(app.call("POST", "/api/v1/pairs", {"src_hypervisor_id": dc, "src_vmid": 100 + i,
                                                            "dst_hypervisor_id": drc, "dst_vmid": 200 + i})["id"])
        due = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=4)
        for p in pairs:
            app.call("POST", "/api/v1/schedules", {"pair_id": p, "cron": cron_at(due), "timezone": "UTC"})
        deadline = time.time() + 600
        while time.time() < deadline:
            rows = db_of(app).execute("SELECT status, started_at, finished_at, created_at FROM tasks ORDER BY started_at").fetchall()
            if len(rows) == 4 and all(r[0] in ("succeeded", "failed") for r in rows):
                break
            time.sleep(0.2)
        if any(r[0] != "succeeded" for r in rows):
            sys.exit(f"a backup failed: {rows}")
        gaps = [rows[i + 1][1] - rows[i][2] for i in range(3)]
        durations = [(r[2] - r[1]) / 1000 for r in rows]
        due_ms = int(due.timestamp() * 1000)
        print(f"(b) 4 backups of {size} VMs on one host at the same instant: each took "
              f"{', '.join(f'{d:.2f}' for d in durations)} s; gaps between them {', '.join(f'{g} ms' for g in gaps)}; "
              f"first queued {min(r[3] for r in rows) - due_ms} ms and started {rows[0][1] - due_ms} ms after the due time, all done {(rows[-1][2] - due_ms) / 1000:.2f} s after it")
    finally:
        lab.stop()
        app.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--disk-size", default="64M")
    args = ap.parse_args()
    if args.schedules:
        many_schedules(args.schedules)
    if args.disk_size != "0":
        seed_scenario(args.disk_size)


if __name__ == "__main__":
    main()
