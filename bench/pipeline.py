#!/usr/bin/python3
"""Replicates one VM through drswitch and by hand with the raw commands,
against the simulated Proxmox lab, and prints both times and the ratio.

    bench/pipeline.py [--size 1G] [--compress zstd|lzo|gzip|none] [--runs 3]

Each run replicates VM 100 to a fresh VMID through drswitch, then does the
same steps by hand to another fresh VMID; medians are compared.
"""
import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import Drswitch, Lab  # noqa: E402


def by_hand(lab, key, vmid, compress):
    """ssh vzdump; rsync pull; rsync push; ssh qmrestore; ssh qm start."""
    dc, drc = lab.hosts["dc1"], lab.hosts["drc1"]
    work = tempfile.mkdtemp(prefix="drswitch-bench-raw", dir=os.path.dirname(key))
    known = os.path.join(work, "known_hosts")
    with open(known, "w") as f:
        f.write(dc["known_hosts_line"] + "\n" + drc["known_hosts_line"] + "\n")

    def ssh_opts(h):
        return ["-i", key, "-p", str(h["ssh_port"]), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known}", "-l", "root"]

    def ssh(h, *cmd):
        r = subprocess.run(["ssh", *ssh_opts(h), h["address"], " ".join(cmd)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
        return r.stdout

    def rsync(h, src, dst):
        shell = "ssh " + " ".join(ssh_opts(h))
        subprocess.run(["rsync", "--whole-file", "-e", shell, src, dst], check=True)

    start = time.monotonic()
    out = ssh(dc, "vzdump", "100", "--dumpdir", dc["dump_dir"], "--compress", "0" if compress == "none" else compress, "--mode", "snapshot")
    path = next(l.split("'")[1] for l in out.splitlines() if "creating vzdump archive" in l)
    local = os.path.join(work, os.path.basename(path))
    rsync(dc, f"{dc['address']}:{path}", local)
    rsync(drc, local, f"{drc['address']}:{drc['dump_dir']}/")
    ssh(drc, "qmrestore", f"{drc['dump_dir']}/{os.path.basename(path)}", str(vmid), "--storage", "local-lvm", "--force", "1")
    ssh(drc, "qm", "start", str(vmid))
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--compress", default="zstd")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="drswitch-bench")
    app = Drswitch(work)
    key = app.pubkey()
    app.start()
    lab = Lab(["dc1", "drc1"], key)
    try:
        lab.create_vm("dc1", 100, args.size)
        dc = app.register(lab.hosts["dc1"], "dc")
        drc = app.register(lab.hosts["drc1"], "drc")
        by_hand(lab, key[:-4], 399, args.compress)  # warm-up: caches, first connections
        via_times, raw_times, delays = [], [], []
        for run in range(args.runs):
            pair = app.call("POST", "/api/v1/pairs", {"src_hypervisor_id": dc, "src_vmid": 100, "dst_hypervisor_id": drc,
                                                      "dst_vmid": 300 + run, "compress": args.compress, "keep_last": 2})
            start = time.monotonic()
            task = app.call("POST", f"/api/v1/pairs/{pair['id']}/replicate")
            done = app.wait(task["id"])
            via_times.append(time.monotonic() - start)
            if done["status"] != "succeeded":
                sys.exit(f"replicate failed: {done['error']}")
            raw_times.append(by_hand(lab, key[:-4], 400 + run, args.compress))
            db = sqlite3.connect(os.path.join(app.data, "drswitch.db"))
            created, started = db.execute("SELECT created_at, started_at FROM tasks WHERE id = ?", (task["id"],)).fetchone()
            delays.append(started - created)
        via, raw = statistics.median(via_times), statistics.median(raw_times)
        archive = app.call("GET", f"/api/v1/pairs/{pair['id']}/archives")[0]
        print(f"disk size:                 {args.size} ({args.compress})")
        print(f"archive size:              {archive['size_bytes'] / 1048576:.1f} MiB")
        print(f"replicate through drswitch: {via:.2f} s")
        print(f"same steps by hand:         {raw:.2f} s")
        print(f"ratio:                      {via / raw:.3f}x (target <= 1.10x)")
        print(f"runs:                       {args.runs} (medians; drswitch {', '.join(f'{t:.2f}' for t in via_times)};"
              f" by hand {', '.join(f'{t:.2f}' for t in raw_times)})")
        print(f"enqueue to task start:      {statistics.median(delays):.0f} ms (median; max {max(delays)} ms)")
    finally:
        lab.stop()
        app.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
