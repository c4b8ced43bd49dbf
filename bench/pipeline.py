#!/usr/bin/python3
"""Replicates one VM through drswitch and by hand with the raw commands,
against the simulated Proxmox lab, and prints both times and the ratio.

    bench/pipeline.py [--size 1G] [--compress zstd]
"""
import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import Drswitch, Lab  # noqa: E402


def by_hand(lab, key, size, compress):
    """ssh vzdump; rsync pull; rsync push; ssh qmrestore; ssh qm start."""
    dc, drc = lab.hosts["dc1"], lab.hosts["drc1"]
    work = tempfile.mkdtemp(prefix="drswitch-bench-raw")
    known = os.path.join(work, "known_hosts")
    with open(known, "w") as f:
        f.write(dc["known_hosts_line"] + "\n" + drc["known_hosts_line"] + "\n")

    def ssh_opts(h):
        return ["-i", key, "-p", str(h["ssh_port"]), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known}", "-l", "root"]

    def ssh(h, *cmd):
        return subprocess.run(["ssh", *ssh_opts(h), h["address"], " ".join(cmd)], check=True,
                              capture_output=True, text=True).stdout

    def rsync(h, src, dst):
        shell = "ssh " + " ".join(ssh_opts(h))
        subprocess.run(["rsync", "--whole-file", "-e", shell, src, dst], check=True)

    start = time.monotonic()
    out = ssh(dc, "vzdump", "100", "--dumpdir", dc["dump_dir"], "--compress", compress, "--mode", "snapshot")
    path = next(l.split("'")[1] for l in out.splitlines() if "creating vzdump archive" in l)
    local = os.path.join(work, os.path.basename(path))
    rsync(dc, f"{dc['address']}:{path}", local)
    rsync(drc, local, f"{drc['address']}:{drc['dump_dir']}/")
    ssh(drc, "qmrestore", f"{drc['dump_dir']}/{os.path.basename(path)}", "301", "--storage", "local-lvm", "--force", "1")
    ssh(drc, "qm", "start", "301")
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--compress", default="zstd")
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
        pair = app.call("POST", "/api/v1/pairs", {"src_hypervisor_id": dc, "src_vmid": 100, "dst_hypervisor_id": drc,
                                                  "dst_vmid": 300, "compress": args.compress})
        # Warm-up: the first ssh of each host pays for opening the shared connection.
        raw = by_hand(lab, key[:-4], args.size, args.compress)
        start = time.monotonic()
        task = app.call("POST", f"/api/v1/pairs/{pair['id']}/replicate")
        done = app.wait(task["id"])
        via = time.monotonic() - start
        if done["status"] != "succeeded":
            sys.exit(f"replicate failed: {done['error']}")
        raw = min(raw, by_hand(lab, key[:-4], args.size, args.compress))
        db = sqlite3.connect(os.path.join(app.data, "drswitch.db"))
        created, started = db.execute("SELECT created_at, started_at FROM tasks WHERE id = ?", (task["id"],)).fetchone()
        print(f"disk size:                 {args.size} ({args.compress})")
        print(f"archive size:              {done['bytes_total'] / 1048576:.1f} MiB")
        print(f"replicate through drswitch: {via:.2f} s")
        print(f"same steps by hand:         {raw:.2f} s")
        print(f"ratio:                      {via / raw:.3f}x (target <= 1.10x)")
        print(f"enqueue to task start:      {started - created} ms")
    finally:
        lab.stop()
        app.stop()


if __name__ == "__main__":
    main()
