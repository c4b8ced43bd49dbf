"""Shared pieces of the drswitch benchmarks: start the lab and drswitch,
call the API. Standard library only."""
import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LAB = os.path.join(ROOT, "lab", "lab.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def binary():
    # DRSWITCH_BIN: a binary built elsewhere (e.g. from a clean checkout).
    if os.environ.get("DRSWITCH_BIN"):
        return os.environ["DRSWITCH_BIN"]
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "drswitch")
        if os.path.exists(path):
            return path
    sys.exit("build drswitch first: cargo build --release")


class Drswitch:
    def __init__(self, work, env=None):
        self.work = work
        self.data = os.path.join(work, "data")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, DATA_DIR=self.data, LISTEN=f"127.0.0.1:{self.port}",
                        ADMIN_USERNAME="admin", ADMIN_PASSWORD="bench-password-1",
                        SECRET_KEY="bench-secret-key-0123456789abcdef0123456789", RUST_LOG="warn")
        self.env.update(env or {})
        self.proc = None
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def pubkey(self):
        subprocess.run([binary(), "pubkey"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        return os.path.join(self.data, "ssh", "id_ed25519.pub")

    def start(self):
        log = open(os.path.join(self.work, "drswitch.log"), "a")
        self.proc = subprocess.Popen([binary(), "serve"], env=self.env, stdout=log, stderr=log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.call("GET", "/api/v1/health")
                break
            except OSError:
                time.sleep(0.05)
        self.call("POST", "/api/v1/auth/login", {"username": "admin", "password": "bench-password-1"})

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with self.opener.open(req, timeout=600) as r:
            text = r.read()
            return json.loads(text) if text else None

    def register(self, host, role):
        body = {"name": host["name"], "host": host["address"], "ssh_port": host["ssh_port"], "node": host["node"],
                "role": role, "api_port": host["api_port"], "api_token_id": host["api_token_id"],
                "api_token_secret": host["api_token_secret"], "tls_fingerprint": host["tls_fingerprint"],
                "dump_dir": host["dump_dir"]}
        h = self.call("POST", "/api/v1/hypervisors", body)
        report = self.call("POST", f"/api/v1/hypervisors/{h['id']}/check", {})
        if not report["ok"]:
            sys.exit(f"check of {host['name']} failed: {report}")
        return h["id"]

    def wait(self, task_id, poll=0.05):
        while True:
            t = self.call("GET", f"/api/v1/tasks/{task_id}")
            if t["status"] in ("succeeded", "failed", "cancelled"):
                return t
            time.sleep(poll)


class Lab:
    def __init__(self, names, pubkey, shapes=None):
        """shapes: {name: "rate=42mbit,delay=10ms"} puts those hosts behind a
        shaped link (lab.py run --shape); their JSON line then has `veth`."""
        self.dir = tempfile.mkdtemp(prefix="drswitch-bench-lab", dir="/tmp")
        args = ["/usr/bin/python3", LAB, "run", "--dir", self.dir, "--authorized-key", pubkey]
        for n in names:
            args += ["--host", n]
        for name, spec in (shapes or {}).items():
            args += ["--shape", f"{name}:{spec}"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hosts = {}
        ready = False
        for line in self.proc.stdout:
            line = line.strip()
            if line == "READY":
                ready = True
                break
            info = json.loads(line)
            self.hosts[info["name"]] = info
        if not ready:
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"the lab did not start (exit code {self.proc.returncode}; see its stderr above)")

    def lab(self, *args):
        return subprocess.run(["/usr/bin/python3", LAB, *args], check=True, capture_output=True, text=True).stdout.strip()

    def create_vm(self, host, vmid, size, onboot=False):
        root = self.hosts[host]["root"]
        self.lab("create-vm", "--root", root, "--node", host, "--vmid", str(vmid), "--disk-size", size, "--running",
                 *(["--onboot"] if onboot else []))

    def vm_status(self, host, vmid):
        """`running`, `stopped` or `missing` (lab.py vm-status, no ssh)."""
        return self.lab("vm-status", "--root", self.hosts[host]["root"], "--node", host, "--vmid", str(vmid))

    def _control(self, verb, name):
        """One control line on the lab's stdin; returns its answer line."""
        self.proc.stdin.write(f"{verb} {name}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer.startswith("OK "):
            raise RuntimeError(f"lab: {verb} {name}: {answer or 'no answer'}")
        return answer

    def power_off(self, name):
        """Pulls the plug of host `name` (see lab/README.md, Power loss)."""
        return self._control("power-off", name)

    def power_on(self, name):
        return self._control("power-on", name)

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:  # the lab already died (e.g. Ctrl-C reached it too)
            pass
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
