"""Test helpers: start `lab.py run` as a child (stdin pipe), talk to its hosts
over real ssh with a throwaway key and strict host-key checking."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

LAB_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
REPO = os.path.dirname(LAB_DIR)
LAB_PY = os.path.join(LAB_DIR, "lab.py")
PYTHON = "/usr/bin/python3"
MIB = 1 << 20


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def lab_cli(*args, check=True):
    """Run a lab.py subcommand (create-vm, disk-path, vm-status, hook)."""
    result = subprocess.run([PYTHON, LAB_PY, *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"lab.py {args} failed: {result.stderr}")
    return result.stdout.strip()


class Lab:
    def __init__(self, *host_specs, shapes=()):
        """host_specs: `NAME[:ADDR]` (default dc1 and drc1:127.0.0.2); shapes:
        `NAME:rate=…[,delay=…][,loss=…]` for hosts behind a shaped link."""
        self.tmp = tempfile.mkdtemp(prefix="pvesim-test-")
        self.key = os.path.join(self.tmp, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
        self.stderr = open(os.path.join(self.tmp, "lab.stderr"), "w")
        argv = [PYTHON, LAB_PY, "run", "--dir", os.path.join(self.tmp, "lab"),
                "--authorized-key", self.key + ".pub"]
        for spec in host_specs or ("dc1", "drc1:127.0.0.2"):
            argv += ["--host", spec]
        for shape in shapes:
            argv += ["--shape", shape]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.hosts = self._read_until_ready(timeout=30)
        self.known_hosts = os.path.join(self.tmp, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.write("".join(h["known_hosts_line"] + "\n" for h in self.hosts.values()))

    def _read_until_ready(self, timeout):
        """JSON lines until READY; a watchdog kills a lab that hangs."""
        hosts = {}
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.start()
        try:
            for line in self.proc.stdout:
                if line.strip() == "READY":
                    return hosts
                info = json.loads(line)
                hosts[info["name"]] = info
        finally:
            watchdog.cancel()
        with open(self.stderr.name) as f:
            log = f.read()
        self.close()
        raise AssertionError(f"lab did not get ready:\n{log}")

    def control(self, line, timeout=60):
        """Send one control line on the lab's stdin; return its answer line
        (`OK …` or `ERR …`). A watchdog kills a lab that does not answer."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.start()
        try:
            answer = self.proc.stdout.readline()
        finally:
            watchdog.cancel()
        if not answer:
            raise AssertionError(f"lab ended instead of answering {line!r}")
        return answer.rstrip("\n")

    def power_off(self, host):
        return self.control(f"power-off {host}")

    def power_on(self, host):
        return self.control(f"power-on {host}")

    def drop_ssh(self, host):
        return self.control(f"drop-ssh {host}")

    def shape(self, host, spec):
        return self.control(f"shape {host} {spec}")

    def link_bytes(self, host):
        """(bytes into the host, bytes out of the host) that crossed its shaped
        link: the root-side veth's tx and rx counters."""
        base = f"/sys/class/net/{self.hosts[host]['veth']}/statistics"
        with open(f"{base}/tx_bytes") as tx, open(f"{base}/rx_bytes") as rx:
            return int(tx.read()), int(rx.read())

    def ssh_argv(self, host):
        info = self.hosts[host]
        return ["ssh", "-i", self.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-p", str(info["ssh_port"]),
                f"root@{info['address']}"]

    def ssh(self, host, command, timeout=120):
        return subprocess.run(self.ssh_argv(host) + [command], capture_output=True, text=True,
                              timeout=timeout)

    def ssh_popen(self, host, command):
        return subprocess.Popen(self.ssh_argv(host) + [command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def rsync_rsh(self, host):
        return " ".join(self.ssh_argv(host)[:-1])

    def root(self, host):
        return self.hosts[host]["root"]

    def create_vm(self, host, vmid, *extra):
        return lab_cli("create-vm", "--root", self.root(host), "--node", host, "--vmid", vmid, *extra)

    def disk_path(self, host, vmid, disk="scsi0"):
        return lab_cli("disk-path", "--root", self.root(host), "--node", host, "--vmid", vmid, "--disk", disk)

    def vm_status(self, host, vmid):
        return lab_cli("vm-status", "--root", self.root(host), "--node", host, "--vmid", vmid)

    def hook(self, host, name, value=None):
        lab_cli("hook", "--root", self.root(host), name, *([value] if value is not None else []))

    def clear_hook(self, host, name):
        lab_cli("hook", "--root", self.root(host), "--clear", name)

    def dump_files(self, host):
        return sorted(os.listdir(self.hosts[host]["dump_dir_real"]))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=20)
        self.proc.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_for(condition, timeout=10.0, interval=0.05):
    """Poll a condition (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
