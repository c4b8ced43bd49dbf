#!/usr/bin/python3
"""200 concurrent API clients against `drswitch serve` for 60 s while its
worker replicates a VM over and over through the lab: requests per second,
p99 latency, errors, and whether every task queued meanwhile ended well.

    bench/load.py [--db sqlite|mariadb|both] [--clients 200] [--secs 60]

Needs wrk (apt-get install wrk). Uses target/release/drswitch if built.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import ROOT, Drswitch, Lab  # noqa: E402


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return rps, total, float(p99.group(1)) * scale, errors


def one(db, clients, secs):
    work = tempfile.mkdtemp(prefix="drswitch-load-")
    env = {"WORKER_CONCURRENCY": "2", "MONITOR_ENABLED": "true", "MONITOR_INTERVAL_SECS": "10",
           "FAILOVER_TOLERANCE_SECS": "60"}
    mdb = None
    if db == "mariadb":
        mdb = os.path.join(work, "mariadb")
        out = subprocess.run(["bash", "scripts/mariadb.sh", "start", mdb], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        url = next(l.split("=", 1)[1] for l in out.splitlines() if l.startswith("DRSWITCH_TEST_MYSQL_URL="))
        subprocess.run(["mariadb", "--no-defaults", f"--socket={mdb}/sock", "-uroot", "-e",
                        "CREATE DATABASE drswitch_load"], check=True)
        env["DATABASE_URL"] = url + "/drswitch_load"
    else:
        env["DATABASE_URL"] = f"sqlite://{work}/drswitch.db"
    d = Drswitch(work, env)
    lab = None
    try:
        lab = Lab(["dc1", "drc1"], d.pubkey())
        d.start()
        dc, drc = d.register(lab.hosts["dc1"], "dc"), d.register(lab.hosts["drc1"], "drc")
        lab.create_vm("dc1", 100, "8M")
        pair = d.call("POST", "/api/v1/pairs", {"src_hypervisor_id": dc, "src_vmid": 100,
                                                "dst_hypervisor_id": drc, "dst_vmid": 200})["id"]
        token = d.call("POST", "/api/v1/tokens", {"name": "load"})["token"]
        first = d.call("POST", f"/api/v1/pairs/{pair}/replicate", {})
        d.wait(first["id"])
        queued, stop = [], threading.Event()

        def keep_busy():
            while not stop.is_set():
                t = d.call("POST", f"/api/v1/pairs/{pair}/replicate", {})
                queued.append(t["id"])
                d.wait(t["id"], poll=0.2)

        worker = threading.Thread(target=keep_busy)
        worker.start()
        paths = " ".join([f"/api/v1/tasks?limit=50", "/api/v1/pairs", "/api/v1/hypervisors", f"/api/v1/tasks/{first['id']}",
                          f"/api/v1/pairs/{pair}", "/api/v1/health", f"/api/v1/pairs/{pair}/archives",
                          f"/api/v1/hypervisors/{dc}/status", "/api/v1/alerts"])
        wrk_env = dict(os.environ, DRSWITCH_TOKEN=token, DRSWITCH_PATHS=paths)
        out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{secs}s", "--latency", "--timeout", "10s",
                              "-s", os.path.join(ROOT, "bench", "load.lua"), d.base], env=wrk_env,
                             capture_output=True, text=True, check=True).stdout
        stop.set()
        worker.join()
        ended = [d.wait(t) for t in queued]
        bad = [t for t in ended if t["status"] != "succeeded"]
        rps, total, p99, errors = parse_wrk(out)
        rss = 0
        with open(f"/proc/{d.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) // 1024
        return {"db": db, "rps": rps, "total": total, "p99_ms": p99, "errors": errors, "tasks": len(ended),
                "tasks_bad": len(bad), "peak_rss_mib": rss}
    finally:
        d.stop()
        if lab:
            lab.stop()
        if mdb:
            subprocess.run(["bash", "scripts/mariadb.sh", "stop", mdb], cwd=ROOT)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="both", choices=["sqlite", "mariadb", "both"])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--secs", type=int, default=60)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install wrk")
    dbs = ["sqlite", "mariadb"] if args.db == "both" else [args.db]
    print(f"| database | clients | seconds | requests | requests/s | p99 latency | errors | tasks during the run "
          f"| tasks lost or failed | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for db in dbs:
        r = one(db, args.clients, args.secs)
        ok = ok and r["errors"] == 0 and r["tasks_bad"] == 0
        print(f"| {r['db']} | {args.clients} | {args.secs} | {r['total']} | {r['rps']:.0f} | {r['p99_ms']:.1f} ms "
              f"| {r['errors']} | {r['tasks']} | {r['tasks_bad']} | {r['peak_rss_mib']} MiB |", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
