#!/usr/bin/python3
"""The seed's table (backup and restore time per VM size over a 42 Mbit/s
link, and 4 scheduled VMs one after another) reproduced on shaped lab links,
through drswitch (`staged` and `streaming` transfer) and by hand with the raw
commands, plus the middleware's memory during a streamed replicate.

    bench/transfer.py [--sizes 32M,64M,128M] [--rate 42mbit] [--delay 10ms] [--runs 1]
                      [--compress none] [--parallel-size 64M] [--big-size 1G]
                      [--skip-memory] [--skip-parallel] [--skip-piped] [--quick]

The lab puts dc1 and drc1 (and dc2..dc4 for the parallel part) each behind
its own shaped link (`lab.py run --shape NAME:rate=…,delay=…`: tbf at both
ends of a veth pair, the delay one way per direction, so the middleware's
round trip to a host is twice the delay). The root-side veth's counters
(/sys/class/net/<veth>/statistics/{rx,tx}_bytes) give the bytes that crossed
each link: rx = host → middleware, tx = middleware → host.

For every size, one VM on dc1 is replicated to a fresh VMID on drc1:
 (a) drswitch, transfer `staged` (vzdump to a file; rsync pull; rsync push;
     qmrestore; qm start, with the sha256 checks);
 (b) drswitch, transfer `streaming` (vzdump --stdout read over ssh, stored on
     the middleware and forwarded to drc1 at once; qmrestore; qm start);
 (c) by hand, one after another: ssh vzdump to a file; rsync pull; rsync
     push; ssh qmrestore; ssh qm start (bench/pipeline.py's way);
 (d) by hand, piped: ssh vzdump --stdout | tee local file | ssh 'cat > …';
     ssh qmrestore; ssh qm start: the best a stream by hand could do.
The drswitch task is polled every --poll seconds (default 0.1); the phase
changes seen and the veth counters read at each poll give each hop's time
and bytes (so a phase boundary is known to ± one poll).

Backup = dump + pull (staged), the stream (streaming, piped); restore = push +
qmrestore + start (staged, by hand), the DRC host's checksum + qmrestore +
start (streaming), qmrestore + start (piped). Total = first command (POST) →
the end (drswitch: the task's finished_at, in ms from its database).

Link use of a hop = bytes / (link rate × hop time), with bytes either the
archive (payload: what the user moved) or what the veth counted in the data
direction (wire: Ethernet frames without FCS, which is what tbf's rate
counts, so TCP/IP/ssh headers are included and the ceiling is 100 %).

Standard library only; needs root (network namespaces), a release build
(cargo build --release; DRSWITCH_BIN overrides) and the lab's tools.
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from common import Drswitch, Lab, binary, ROOT  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled")
EXT = {"none": "vma", "zstd": "vma.zst", "lzo": "vma.lzo", "gzip": "vma.gz"}
VZDUMP_COMPRESS = {"none": "0", "zstd": "zstd", "lzo": "lzo", "gzip": "gzip"}
SEED = ("the seed (thesis, 42.36 Mbit/s link, VM 4 cores / 2 GB RAM): 2 GB used → 3.4 GB archive, backup 168.0 s, "
        "restore 165.0 s; 4 GB → 5.6 GB, 188.0 s, 183.0 s; 6 GB → 6.4 GB, 211.7 s, 205.0 s; transfer rate 42.0, "
        "42.0, 41.9 Mbit/s (\"99 % of the link\"); 1, 2, 3, 4 VMs scheduled at once: 257, 510, 765, 1000 s "
        "(one after another)")
WAYS = [("staged", "drswitch staged"), ("streaming", "drswitch streaming"),
        ("raw", "by hand, one after another"), ("piped", "by hand, piped")]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def mib(n):
    return f"{n / 1048576:.1f} MiB"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def new_pair(app, body):
    try:
        return app.call("POST", "/api/v1/pairs", body)["id"]
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"POST /api/v1/pairs {body}: {e.code} {e.read().decode(errors='replace')}") from None


# -- the links ----------------------------------------------------------------------

class Links:
    """The veth counters of the shaped hosts."""

    def __init__(self, hosts):
        self.veth = {n: h["veth"] for n, h in hosts.items() if h.get("veth")}
        self.rate = {n: h["link"]["rate_bits_per_sec"] for n, h in hosts.items() if h.get("veth")}

    def _read(self, veth, what):
        with open(f"/sys/class/net/{veth}/statistics/{what}_bytes") as f:
            return int(f.read())

    def snap(self):
        """(wall time, {host: (rx, tx)})."""
        counters = {n: (self._read(v, "rx"), self._read(v, "tx")) for n, v in self.veth.items()}
        return time.time(), counters

    def record(self, every=0.1):
        """Samples the counters in the background (for steady-state rates)."""
        self.series = []

        def loop():
            while True:
                try:
                    self.series.append(self.snap())
                except OSError:  # the lab is gone
                    return
                time.sleep(every)
        threading.Thread(target=loop, daemon=True).start()

    def steady(self, host, direction, t0, t1, skip_start=1.0, skip_end=0.5):
        """Bits/s on the link between t0 + skip_start and t1 - skip_end (the
        hop without its start and end), from the background samples."""
        points = [s for s in getattr(self, "series", []) if t0 + skip_start <= s[0] <= t1 - skip_end]
        if len(points) < 2 or points[-1][0] - points[0][0] < 1.0:
            return None
        return (points[-1][1][host][direction] - points[0][1][host][direction]) * 8 / (points[-1][0] - points[0][0])


def hop(links, host, what, s0, s1, payload):
    """One transfer over host's link between snapshots s0 and s1. Data to the
    middleware arrives as the veth's rx, data to the host leaves as its tx."""
    if host not in links.rate:  # an unshaped host: no veth of its own
        return {"host": host, "what": what, "secs": s1[0] - s0[0], "payload": payload, "wire": None, "back": None,
                "payload_pct": None, "wire_pct": None, "rate": None, "steady_pct": None, "extra": None}
    direction = 0 if what in ("pull", "stream from DC", "pipe from DC", "ssh cat") else 1
    secs = max(s1[0] - s0[0], 1e-6)
    wire = s1[1][host][direction] - s0[1][host][direction]
    back = s1[1][host][1 - direction] - s0[1][host][1 - direction]
    rate = links.rate[host]
    steady = links.steady(host, direction, s0[0], s1[0])
    return {"host": host, "what": what, "secs": secs, "payload": payload, "wire": wire, "back": back,
            "payload_pct": payload * 8 / (rate * secs) * 100 if payload else None,
            "wire_pct": wire * 8 / (rate * secs) * 100, "rate": rate,
            "steady_pct": steady / rate * 100 if steady is not None else None,
            # the hop's time beyond what its bytes need at the full link rate
            "extra": secs - wire * 8 / rate}


# -- drswitch -----------------------------------------------------------------------

def db_times(app, task_id):
    con = sqlite3.connect(f"file:{os.path.join(app.data, 'drswitch.db')}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT created_at, started_at, finished_at FROM tasks WHERE id = ?", (task_id,)).fetchone()
    finally:
        con.close()


def follow(app, links, task_ids, poll, timeout=3600):
    """Polls the tasks until all are final; returns {id: (task, timeline)},
    timeline = [(snapshot, phase or final status)] at every change seen."""
    timelines = {t: [] for t in task_ids}
    last = {t: None for t in task_ids}
    final = {}
    deadline = time.time() + timeout
    while len(final) < len(task_ids):
        if time.time() > deadline:
            raise RuntimeError(f"tasks {task_ids} not finished after {timeout} s")
        for tid in task_ids:
            if tid in final:
                continue
            t = app.call("GET", f"/api/v1/tasks/{tid}")
            s = links.snap()
            label = t["phase"] if t["status"] == "running" else t["status"]
            if label != last[tid]:
                timelines[tid].append((s, label))
                last[tid] = label
            if t["status"] in FINAL:
                final[tid] = t
        if len(final) < len(task_ids):
            time.sleep(poll)
    return {tid: (final[tid], timelines[tid]) for tid in task_ids}


def segments(timeline):
    """[(label, snapshot at start, snapshot at end)] between the changes seen."""
    return [(timeline[i][1], timeline[i][0], timeline[i + 1][0]) for i in range(len(timeline) - 1)]


def failure(task):
    lines = [f"task {task['id']} {task['status']}: {task.get('error')} (error_kind {task.get('error_kind')})"]
    lines += [f"    {l['at']} {l['line']}" for l in task.get("log", [])]
    return "\n".join(lines)


def drswitch_replicate(app, links, pair, transfer, dc, drc, poll):
    s_post = links.snap()
    task = app.call("POST", f"/api/v1/pairs/{pair}/replicate")
    (done, timeline), = follow(app, links, [task["id"]], poll).values()
    timeline.insert(0, (s_post, "posted"))
    result = {"timeline": [(round(s[0] - s_post[0], 2), label) for s, label in timeline]}
    if done["status"] != "succeeded":
        result["error"] = failure(done)
        return result
    _, _, finished_ms = db_times(app, task["id"])
    total = finished_ms / 1000 - s_post[0]
    archive = app.call("GET", f"/api/v1/pairs/{pair}/archives")[0]
    size = archive["size_bytes"]
    segs = segments(timeline)
    phase = {label: (a, b) for label, a, b in segs if label in ("dumping", "pulling", "pushing", "streaming")}
    hops, steps = [], {}
    if transfer == "staged":
        after_pull = False
        backup_end = None
        for label, a, _ in segs:
            if label == "pulling":
                after_pull = True
            elif after_pull and label != "verifying":
                backup_end = a[0]
                break
        for name in ("dumping", "pulling", "pushing"):
            if name in phase:
                steps[name] = phase[name][1][0] - phase[name][0][0]
        if "pulling" in phase:
            hops.append(hop(links, dc, "pull", *phase["pulling"], size))
        if "pushing" in phase:
            hops.append(hop(links, drc, "push", *phase["pushing"], size))
    else:
        backup_end = phase["streaming"][1][0] if "streaming" in phase else None
        if "streaming" in phase:
            steps["streaming"] = phase["streaming"][1][0] - phase["streaming"][0][0]
            hops.append(hop(links, dc, "stream from DC", *phase["streaming"], size))
            hops.append(hop(links, drc, "stream to DRC", *phase["streaming"], size))
    if backup_end is None:
        result["error"] = f"phase boundary not seen; timeline {result['timeline']}"
        return result
    backup = backup_end - s_post[0]
    result.update(total=total, backup=backup, restore=total - backup, archive=size, hops=hops, steps=steps,
                  log=[l["line"] for l in done.get("log", [])])
    return result


# -- by hand --------------------------------------------------------------------------

class ByHand:
    """The raw commands a person would type, with the drswitch key."""

    def __init__(self, lab, key, work, compress):
        self.key = key
        self.work = work
        self.compress = compress
        self.known = os.path.join(work, "known_hosts")
        with open(self.known, "w") as f:
            f.write("".join(h["known_hosts_line"] + "\n" for h in lab.hosts.values()))

    def ssh_opts(self, h):
        return ["-i", self.key, "-p", str(h["ssh_port"]), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known}", "-l", "root"]

    def ssh_argv(self, h, command):
        return ["ssh", *self.ssh_opts(h), h["address"], command]

    def ssh(self, h, command):
        r = subprocess.run(self.ssh_argv(h, command), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{h['name']}: {command} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def rsync(self, h, src, dst):
        shell = "ssh " + " ".join(self.ssh_opts(h))
        subprocess.run(["rsync", "--whole-file", "-e", shell, src, dst], check=True)

    def sequential(self, links, dc, drc, vmid, dst_vmid):
        """ssh vzdump; rsync pull; rsync push; ssh qmrestore; ssh qm start."""
        snaps = [links.snap()]
        out = self.ssh(dc, f"vzdump {vmid} --dumpdir {dc['dump_dir']} --compress {VZDUMP_COMPRESS[self.compress]} "
                           f"--mode snapshot")
        snaps.append(links.snap())
        path = next(l.split("'")[1] for l in out.splitlines() if "creating vzdump archive" in l)
        name = os.path.basename(path)
        local = os.path.join(self.work, name)
        self.rsync(dc, f"{dc['address']}:{path}", local)
        snaps.append(links.snap())
        self.rsync(drc, local, f"{drc['address']}:{drc['dump_dir']}/")
        snaps.append(links.snap())
        self.ssh(drc, f"qmrestore {drc['dump_dir']}/{name} {dst_vmid} --storage local-lvm --force 1")
        snaps.append(links.snap())
        self.ssh(drc, f"qm start {dst_vmid}")
        snaps.append(links.snap())
        size = os.path.getsize(local)
        self.cleanup(dc, drc, path, name, local)
        t = [s[0] for s in snaps]
        steps = {"vzdump": t[1] - t[0], "rsync pull": t[2] - t[1], "rsync push": t[3] - t[2],
                 "qmrestore": t[4] - t[3], "qm start": t[5] - t[4]}
        return {"total": t[5] - t[0], "backup": t[2] - t[0], "restore": t[5] - t[2], "archive": size,
                "steps": steps, "hops": [hop(links, dc["name"], "pull", snaps[1], snaps[2], size),
                                         hop(links, drc["name"], "push", snaps[2], snaps[3], size)]}

    def piped(self, links, dc, drc, vmid, dst_vmid):
        """ssh vzdump --stdout | tee local | ssh 'cat > …'; ssh qmrestore; ssh qm start."""
        name = f"vzdump-qemu-{vmid}-{time.strftime('%Y_%m_%d-%H_%M_%S')}.{EXT[self.compress]}"
        local = os.path.join(self.work, name)
        remote = f"{drc['dump_dir']}/{name}"
        errs = open(os.path.join(self.work, "piped.err"), "w+")
        s0 = links.snap()
        p1 = subprocess.Popen(self.ssh_argv(dc, f"vzdump {vmid} --stdout 1 --compress "
                                                f"{VZDUMP_COMPRESS[self.compress]} --mode snapshot"),
                              stdout=subprocess.PIPE, stderr=errs)
        p2 = subprocess.Popen(["tee", local], stdin=p1.stdout, stdout=subprocess.PIPE)
        p1.stdout.close()
        p3 = subprocess.Popen(self.ssh_argv(drc, f"cat > {remote}"), stdin=p2.stdout, stderr=errs)
        p2.stdout.close()
        codes = [p3.wait(), p2.wait(), p1.wait()]
        s1 = links.snap()
        if any(codes):
            errs.seek(0)
            raise RuntimeError(f"piped transfer failed {codes}: {errs.read()[-2000:]}")
        self.ssh(drc, f"qmrestore {remote} {dst_vmid} --storage local-lvm --force 1")
        s2 = links.snap()
        self.ssh(drc, f"qm start {dst_vmid}")
        s3 = links.snap()
        size = os.path.getsize(local)
        self.cleanup(dc, drc, None, name, local)
        return {"total": s3[0] - s0[0], "backup": s1[0] - s0[0], "restore": s3[0] - s1[0], "archive": size,
                "steps": {"pipe": s1[0] - s0[0], "qmrestore": s2[0] - s1[0], "qm start": s3[0] - s2[0]},
                "hops": [hop(links, dc["name"], "pipe from DC", s0, s1, size),
                         hop(links, drc["name"], "pipe to DRC", s0, s1, size)]}

    def cleanup(self, dc, drc, dc_path, name, local):
        """Not timed: the files the run left."""
        if dc_path:
            base = dc_path.rsplit(".vma", 1)[0]
            self.ssh(dc, f"rm -f {dc_path} {base}.log")
        else:
            self.ssh(dc, f"rm -f {dc['dump_dir']}/vzdump-qemu-*.log")
        self.ssh(drc, f"rm -f {drc['dump_dir']}/{name}")
        os.remove(local)

    def link_check(self, links, h, nbytes):
        """ssh HOST head -c N /dev/zero: the payload one ssh stream gets over the link."""
        s0 = links.snap()
        r = subprocess.run(self.ssh_argv(h, f"head -c {nbytes} /dev/zero"), stdout=subprocess.PIPE, check=True)
        s1 = links.snap()
        assert len(r.stdout) == nbytes
        return hop(links, h["name"], "ssh cat", s0, s1, nbytes)


# -- memory ---------------------------------------------------------------------------

def proc_status(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


class RssSampler(threading.Thread):
    def __init__(self, pid, every=0.02):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stop_flag = pid, every, 0, threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            except OSError:
                return
            time.sleep(self.every)


# -- output ---------------------------------------------------------------------------

def pct(v):
    return "–" if v is None else f"{v:.1f} %"


def secs(v):
    return "–" if v is None else f"{v:.2f} s"


def summarize(results, runs):
    """Medians per (size, way)."""
    out = {}
    for key, rs in results.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            out[key] = {"error": rs[0]["error"] if rs else "no run", "runs": len(rs)}
            continue
        hop_names = [(h["host"], h["what"]) for h in ok[0]["hops"]]
        hops = []
        for i, (host, what) in enumerate(hop_names):
            hs = [r["hops"][i] for r in ok if len(r["hops"]) > i]
            hops.append({"host": host, "what": what, "secs": med([h["secs"] for h in hs]),
                         "payload_pct": med([h["payload_pct"] for h in hs]),
                         "wire_pct": med([h["wire_pct"] for h in hs]),
                         "steady_pct": med([h["steady_pct"] for h in hs]), "extra": med([h["extra"] for h in hs]),
                         "wire": med([h["wire"] for h in hs]), "payload": med([h["payload"] for h in hs])})
        out[key] = {"total": med([r["total"] for r in ok]), "backup": med([r["backup"] for r in ok]),
                    "restore": med([r["restore"] for r in ok]), "archive": med([r["archive"] for r in ok]),
                    "totals": [r["total"] for r in ok], "hops": hops, "runs": len(ok),
                    "failed": len(rs) - len(ok),
                    "steps": {k: med([r["steps"].get(k) for r in ok]) for k in ok[0]["steps"]}}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32M,64M,128M", help="VM disk sizes (lab create-vm), comma-separated")
    ap.add_argument("--rate", default="42mbit")
    ap.add_argument("--delay", default="10ms", help="one-way delay of each link (0 = none)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--compress", default="none", choices=sorted(EXT))
    ap.add_argument("--parallel-size", default="64M")
    ap.add_argument("--big-size", default="1G", help="disk of the memory run (unshaped links)")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between task polls")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-parallel", action="store_true")
    ap.add_argument("--skip-piped", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every part")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.parallel_size, args.big_size = "4M,8M", "8M", "64M"
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    spec = f"rate={args.rate}" + (f",delay={args.delay}" if args.delay not in ("0", "0ms", "") else "")

    def stop_on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)

    began = time.time()
    load0 = os.getloadavg()
    work = tempfile.mkdtemp(prefix="drswitch-bench-transfer")
    app = Drswitch(work, {"WORKER_CONCURRENCY": "4", "MONITOR_ENABLED": "false"})
    lab = None
    try:
        key = app.pubkey()
        app.start()
        dcs = ["dc1"] + ([] if args.skip_parallel else ["dc2", "dc3", "dc4"])
        names = dcs + ["drc1"] + ([] if args.skip_memory else ["dcbig", "drcbig"])
        shapes = {n: spec for n in dcs + ["drc1"]}
        log(f"lab: {', '.join(names)}; shaped {', '.join(shapes)} with {spec}")
        lab = Lab(names, key, shapes)
        links = Links(lab.hosts)
        links.record()
        hv = {n: app.register(lab.hosts[n], "drc" if n.startswith("drc") else "dc") for n in names}
        hand = ByHand(lab, key[:-4], work, args.compress)
        H = lab.hosts
        print(f"# Transfer bench: {', '.join(sizes)} disks, links {spec}, compress {args.compress}, "
              f"{args.runs} run(s)\n")
        print(f"binary: {binary()} (modified {time.strftime('%Y-%m-%d %H:%M', time.localtime(os.path.getmtime(binary())))}); "
              f"git {subprocess.run(['git', '-C', ROOT, 'describe', '--always', '--dirty'], capture_output=True, text=True).stdout.strip()}; "
              f"{os.cpu_count()} cores, load average at start {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}\n")
        rate_bits = links.rate["dc1"]
        goals = []

        # -- the middleware's memory: first, so the process is fresh ---------------------
        mem = None
        if not args.skip_memory:
            log(f"memory: creating a {args.big_size} VM on dcbig")
            lab.create_vm("dcbig", 900, args.big_size)
            pair = new_pair(app, {
                "src_hypervisor_id": hv["dcbig"], "src_vmid": 900, "dst_hypervisor_id": hv["drcbig"],
                "dst_vmid": 900, "compress": args.compress, "keep_last": 2, "transfer": "streaming",
                "start_after_restore": True})
            time.sleep(1)
            idle = proc_status(app.proc.pid)
            sampler = RssSampler(app.proc.pid)
            sampler.start()
            log("memory: streamed replicate dcbig → drcbig (unshaped)")
            r = drswitch_replicate(app, links, pair, "streaming", "dcbig", "drcbig", args.poll)
            sampler.stop_flag.set()
            sampler.join()
            after = proc_status(app.proc.pid)
            mem = {"idle": idle, "peak_sampled": sampler.peak, "hwm": after["VmHWM"], "after": after["VmRSS"],
                   "run": r}
            if "error" in r:
                log(r["error"])

        # -- the table ------------------------------------------------------------------------
        check_hop = hand.link_check(links, H["dc1"], parse_size(sizes[0]))
        results = {}
        dst_vmid = 1000
        for i, size in enumerate(sizes):
            vmid = 101 + i
            lab.create_vm("dc1", vmid, size)
            for run in range(args.runs):
                for way, label in WAYS:
                    if way == "piped" and args.skip_piped:
                        continue
                    dst_vmid += 1
                    log(f"{size} run {run + 1}/{args.runs}: {label} → VM {dst_vmid}")
                    try:
                        if way in ("staged", "streaming"):
                            pair = new_pair(app, {
                                "src_hypervisor_id": hv["dc1"], "src_vmid": vmid, "dst_hypervisor_id": hv["drc1"],
                                "dst_vmid": dst_vmid, "compress": args.compress, "keep_last": 2,
                                "transfer": way, "start_after_restore": True})
                            r = drswitch_replicate(app, links, pair, way, "dc1", "drc1", args.poll)
                        elif way == "raw":
                            r = hand.sequential(links, H["dc1"], H["drc1"], vmid, dst_vmid)
                        else:
                            r = hand.piped(links, H["dc1"], H["drc1"], vmid, dst_vmid)
                    except Exception as exc:  # a broken run is reported, the others go on
                        r = {"error": f"{type(exc).__name__}: {exc}"}
                    if "error" in r:
                        log(f"  FAILED:\n{r['error']}")
                    else:
                        log(f"  total {r['total']:.2f} s (backup {r['backup']:.2f}, restore {r['restore']:.2f}), "
                            f"archive {mib(r['archive'])}; "
                            + "; ".join(f"{h['host']} {h['what']} {h['secs']:.2f} s wire {h['wire_pct']:.1f} % "
                                        f"(steady {pct(h['steady_pct'])}) payload {h['payload_pct']:.1f} %" for h in r["hops"]))
                    results.setdefault((size, way), []).append(r)
        table = summarize(results, args.runs)

        # -- parallel: 4 DC hosts, 4 backups at once ------------------------------------
        par = None
        if not args.skip_parallel:
            pairs = []
            for n, dc in enumerate(dcs):
                lab.create_vm(dc, 200 + n, args.parallel_size)
                pairs.append(new_pair(app, {
                    "src_hypervisor_id": hv[dc], "src_vmid": 200 + n, "dst_hypervisor_id": hv["drc1"],
                    "dst_vmid": 300 + n, "compress": args.compress, "keep_last": 2, "transfer": "staged"}))
            alone, together, per_task, errors = [], [], [], []
            for run in range(args.runs):
                log(f"parallel run {run + 1}/{args.runs}: one backup alone (dc1)")
                t0 = time.time()
                task = app.call("POST", f"/api/v1/pairs/{pairs[0]}/backup")
                (done, _), = follow(app, links, [task["id"]], args.poll).values()
                if done["status"] != "succeeded":
                    errors.append(failure(done))
                    continue
                alone.append(db_times(app, task["id"])[2] / 1000 - t0)
                log(f"  {alone[-1]:.2f} s; now {len(pairs)} at once")
                s0 = links.snap()
                ids = [app.call("POST", f"/api/v1/pairs/{p}/backup")["id"] for p in pairs]
                followed = follow(app, links, ids, args.poll)
                bad = [failure(t) for t, _ in followed.values() if t["status"] != "succeeded"]
                if bad:
                    errors += bad
                    continue
                ends = [db_times(app, t)[2] / 1000 for t in ids]
                starts = [db_times(app, t)[1] / 1000 for t in ids]
                together.append(max(ends) - s0[0])
                rows = []
                for n, tid in enumerate(ids):
                    _, tl = followed[tid]
                    pull = [(a, b) for label, a, b in segments(tl) if label == "pulling"]
                    arch = app.call("GET", f"/api/v1/pairs/{pairs[n]}/archives")[0]["size_bytes"]
                    h = hop(links, dcs[n], "pull", *pull[0], arch) if pull else None
                    rows.append({"dc": dcs[n], "start": starts[n] - s0[0], "end": ends[n] - s0[0], "hop": h})
                per_task.append(rows)
                log(f"  {together[-1]:.2f} s for all {len(pairs)}")
            par = {"alone": alone, "together": together, "per_task": per_task, "errors": errors}

        # -- print -----------------------------------------------------------------------------
        print(f"Seed, for comparison: {SEED}.\n")
        print(f"Links: {spec} each for dc1 and drc1 ({rate_bits / 1e6:g} Mbit/s of Ethernet frames, as tbf "
              f"counts); compress {args.compress}; medians of {args.runs} run(s).\n")
        print(f"Link check (ssh dc1 head -c {sizes[0]} /dev/zero, one ssh stream): {check_hop['secs']:.2f} s, "
              f"payload {pct(check_hop['payload_pct'])}, wire {pct(check_hop['wire_pct'])} (steady state "
              f"{pct(check_hop['steady_pct'])}, time beyond the link's {secs(check_hop['extra'])}) of "
              f"{rate_bits / 1e6:g} Mbit/s\n")
        print("| VM disk | archive | way | backup | restore | total | vs. by hand one after another |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for size in sizes:
            raw = table.get((size, "raw"), {}).get("total")
            for way, label in WAYS:
                row = table.get((size, way))
                if row is None:
                    continue
                if "error" in row:
                    print(f"| {size} | – | {label} | FAILED | | | |")
                    continue
                ratio = f"{row['total'] / raw:.2f}×" if raw else "–"
                print(f"| {size} | {mib(row['archive'])} | {label} | {secs(row['backup'])} | {secs(row['restore'])} "
                      f"| {secs(row['total'])} | {ratio} |")
        print()
        print("Transfers (hop time; link use = bytes × 8 / (rate × hop time); payload = archive bytes, "
              "wire = bytes the host's veth counted in the data direction; steady state = wire rate from 1 s "
              "after the hop's start to 0.5 s before its end, from counters sampled every 0.1 s; time beyond "
              "the link's = hop time − wire bytes × 8 / rate):\n")
        print("| VM disk | way | link | hop | time | payload | wire | wire, steady state | time beyond the link's | "
              "wire bytes / archive |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for size in sizes:
            for way, label in WAYS:
                row = table.get((size, way))
                if not row or "error" in row:
                    continue
                for h in row["hops"]:
                    over = f"{h['wire'] / h['payload']:.3f}" if h["payload"] else "–"
                    print(f"| {size} | {label} | {h['host']} | {h['what']} | {secs(h['secs'])} | {pct(h['payload_pct'])} "
                          f"| {pct(h['wire_pct'])} | {pct(h['steady_pct'])} | {secs(h['extra'])} | {over} |")
        print()
        print("Steps (medians):\n")
        for size in sizes:
            for way, label in WAYS:
                row = table.get((size, way))
                if row and "error" not in row:
                    print(f"- {size} {label}: " + ", ".join(f"{k} {secs(v)}" for k, v in row["steps"].items()))
        print()

        # -- goals -------------------------------------------------------------------------------
        def goal(ok, text):
            goals.append(("PASS" if ok else "FAIL", text))

        for size in sizes:
            raw = table.get((size, "raw"), {})
            for way, limit in (("staged", 1.05), ("streaming", 0.60)):
                row = table.get((size, way), {})
                if "total" not in row or "total" not in raw:
                    goal(False, f"{size}: {way} total ≤ {limit:.2f} × by hand: no figure "
                                f"({row.get('error') or raw.get('error') or 'missing'})".split("\n")[0])
                    continue
                ratio = row["total"] / raw["total"]
                goal(ratio <= limit, f"{size}: {way} total ≤ {limit:.2f} × by hand one after another: "
                                     f"{row['total']:.2f} s / {raw['total']:.2f} s = {ratio:.3f}×")
        for kind in ("wire", "payload"):
            figures = []
            for size in sizes:
                for way in ("staged", "streaming"):
                    row = table.get((size, way), {})
                    for h in row.get("hops", []):
                        figures.append((h[f"{kind}_pct"], f"{size} {way} {h['host']} {h['what']}"))
            if figures:
                worst = min(figures)
                goal(worst[0] >= 95.0, f"every drswitch transfer ≥ 95 % of the link rate ({kind} bytes): "
                                       f"lowest {worst[0]:.1f} % ({worst[1]}), highest {max(figures)[0]:.1f} %")
            else:
                goal(False, f"every drswitch transfer ≥ 95 % of the link rate ({kind} bytes): no figure")
        if par is not None:
            if par["alone"] and par["together"]:
                a, t = med(par["alone"]), med(par["together"])
                goal(t <= 1.2 * a, f"{len(dcs)} staged backups on {len(dcs)} DC hosts at once (WORKER_CONCURRENCY=4) "
                                   f"≤ 1.2 × one alone: {t:.2f} s / {a:.2f} s = {t / a:.3f}×")
            else:
                goal(False, f"parallel backups: no figure ({(par['errors'] or ['?'])[0].splitlines()[0]})")
        if mem is not None:
            peak = max(mem["hwm"], mem["peak_sampled"])
            goal(peak < 64 * 1048576 and "error" not in mem["run"],
                 f"middleware RSS during a streamed replicate of a {args.big_size} VM < 64 MiB: "
                 f"peak {mib(peak)} (VmHWM {mib(mem['hwm'])}, sampled VmRSS max {mib(mem['peak_sampled'])}), "
                 f"idle {mib(mem['idle']['VmRSS'])}" + (" — the run FAILED" if "error" in mem["run"] else ""))

        if par is not None:
            print(f"Parallel ({len(dcs)} pairs dc1..dc{len(dcs)} → drc1, each DC host behind its own {spec} link, "
                  f"drc1 shaped too but not used by backups; staged backups of {args.parallel_size} VMs, "
                  f"WORKER_CONCURRENCY=4): one alone {', '.join(f'{x:.2f} s' for x in par['alone'])}; "
                  f"all at once {', '.join(f'{x:.2f} s' for x in par['together'])}\n")
            for rows in par["per_task"]:
                for row in rows:
                    h = row["hop"]
                    print(f"- {row['dc']}: started +{row['start']:.2f} s, finished +{row['end']:.2f} s"
                          + (f", pull {h['secs']:.2f} s, wire {pct(h['wire_pct'])} (steady state "
                             f"{pct(h['steady_pct'])}), payload {pct(h['payload_pct'])}"
                             if h else ""))
            for e in par["errors"]:
                print("\n```\n" + e + "\n```")
            print()
        if mem is not None:
            r = mem["run"]
            print(f"Memory (`drswitch serve`, /proc/<pid>/status): idle VmRSS {mib(mem['idle']['VmRSS'])}, "
                  f"during the streamed replicate of a {args.big_size} VM (dcbig → drcbig, unshaped): sampled VmRSS "
                  f"max {mib(mem['peak_sampled'])}, VmHWM {mib(mem['hwm'])}; after it {mib(mem['after'])}"
                  + (f"; replicate {r['total']:.2f} s, archive {mib(r['archive'])}" if "total" in r else "") + "\n")
            if "error" in r:
                print("```\n" + r["error"] + "\n```\n")
        for key, rs in sorted(results.items()):
            for r in rs:
                if "error" in r:
                    print(f"{key[0]} {dict(WAYS)[key[1]]} FAILED:\n```\n{r['error']}\n```\n")
        end = proc_status(app.proc.pid)
        load1 = os.getloadavg()
        print(f"drswitch serve at the end: VmRSS {mib(end['VmRSS'])}, VmHWM {mib(end['VmHWM'])}; "
              f"load average at the end {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}; "
              f"bench took {time.time() - began:.0f} s\n")
        print("Goals:\n")
        for verdict, text in goals:
            print(f"- {verdict}: {text}")
        if os.environ.get("TRANSFER_BENCH_JSON"):
            with open(os.environ["TRANSFER_BENCH_JSON"], "w") as f:
                json.dump({"results": {f"{k[0]} {k[1]}": v for k, v in results.items()}, "parallel": par,
                           "memory": mem, "goals": goals}, f, indent=1, default=str)
        return 0 if all(v == "PASS" for v, _ in goals) else 1
    finally:
        if lab is not None:
            lab.stop()
        app.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
