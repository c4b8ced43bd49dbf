"""One lab host: its keys, certificate, sshd and API server processes.

sshd runs in its own mount *and* pid namespace (`unshare --pid --fork
--kill-child`): the mounts give the host its own /etc/pve, /var/lib and /run,
and the pid namespace means that stopping the host kills every ssh session
and every job started through it, with no stray process left behind.

A host can also lose power and come back (`power_off` / `power_on`): all its
processes are killed at once, its /run (RAM) is emptied, and it boots again on
the same address and ports with the same keys, starting its `onboot` guests.

A shaped host (`link`, see labnet.py) also has its own network namespace:
sshd and the API server are started in it (nsenter) and listen on the
host-side address of its link; the lab's own port checks run in it too.
`drop_ssh` breaks every open ssh connection of the host at once.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

from pvesim import pct, qm
from pvesim.apidata import tls_fingerprint
from pvesim.common import TaskError
from pvesim.host import DUMP_DIR, Host

LAB_DIR = os.path.dirname(os.path.realpath(__file__))
SHIMS_DIR = os.path.join(LAB_DIR, "shims")
TOKEN_ID = "root@pam!drswitch"
START_ATTEMPTS = 5
START_TIMEOUT = 15.0

# Runs as pid 1 of the host's namespaces: mount the host's own dirs on the
# real Proxmox paths, then become sshd. The passwd copy gives root the host's
# own home (R/root), so the machine's real ~/.bashrc (which may prepend to
# PATH and is slow) does not run in the host's sessions.
NAMESPACE_SCRIPT = """set -e
mkdir -p /etc/pve
mount --bind "$1/run" /run
mount --bind "$1/var/lib" /var/lib
mount --bind "$1/etc/pve" /etc/pve
mount --bind "$1/etc/passwd" /etc/passwd
exec /usr/sbin/sshd -D -e -f "$1/etc/ssh/sshd_config"
"""

FORCE_COMMAND = """#!/bin/bash
# ForceCommand of simulated Proxmox node {node}: every ssh session (commands,
# rsync's server side, interactive logins) gets the pvesim shims first on PATH
# and learns which node it is on.
export PATH='{shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
export PVE_SIM_NODE='{node}' PVE_SIM_ROOT='{root}'
if [ -z "${{SSH_ORIGINAL_COMMAND-}}" ]; then
    exec /bin/bash --noprofile --norc -i
fi
if [ "$SSH_ORIGINAL_COMMAND" = sftp ]; then  # subsystem request (sftp, scp)
    exec /usr/lib/openssh/sftp-server
fi
exec /bin/bash -c "$SSH_ORIGINAL_COMMAND"
"""

SSHD_CONFIG = """# sshd of simulated Proxmox node {node} (written by lab.py)
ListenAddress {addr}
Port {port}
HostKey {root}/etc/ssh/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile {root}/etc/ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp /usr/lib/openssh/sftp-server
ForceCommand {root}/etc/ssh/force-command.sh
"""


class LabError(Exception):
    pass


def _die_with_parent():
    """In the child: die when lab.py dies, even by SIGKILL. SIGKILL because
    unshare blocks SIGTERM while it waits for its child; its --kill-child then
    takes the host's whole pid namespace down."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


SSHD_COMMS = ("sshd", "sshd-session", "sshd-auth")


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def _alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class LabHost:
    def __init__(self, lab_dir, name, addr, pubkey, link=None):
        self.name = name
        self.link = link  # a labnet.Link for a shaped host, already created
        self.addr = link.host_addr if link else addr
        self.pubkey = pubkey
        self.host = Host(os.path.join(lab_dir, name), name)
        self.root = self.host.root
        self.ssh_port = None
        self.api_port = None
        self.sshd = None
        self.api = None
        self.powered = False

    # -- one-time material (kept when the lab is restarted on the same dir) ------

    def prepare(self):
        host, root = self.host, self.root
        host.ensure_layout()
        for sub in ("etc/ssh", "log", "etc/pve/priv", "root"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.chmod(f"{root}/root", 0o700)
        self._write_passwd()
        key = f"{root}/etc/ssh/ssh_host_ed25519_key"
        if not os.path.exists(key):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.name}", "-f", key])
        node_dir = host.real(f"/etc/pve/nodes/{self.name}")
        if not os.path.exists(f"{node_dir}/pve-ssl.pem"):
            self._make_certificate(node_dir)
        token_file = host.real("/etc/pve/priv/sim-api-token")
        if not os.path.exists(token_file):
            _write(token_file, str(uuid.uuid4()) + "\n", 0o600)
        _write(f"{root}/etc/ssh/authorized_keys", self.pubkey + "\n", 0o600)
        _write(f"{root}/etc/ssh/force-command.sh",
               FORCE_COMMAND.format(node=self.name, root=root, shims=SHIMS_DIR), 0o755)

    def _write_passwd(self):
        with open("/etc/passwd") as f:
            lines = f.read().splitlines()
        for n, line in enumerate(lines):
            fields = line.split(":")
            if fields[0] == "root" and len(fields) == 7:
                fields[5] = f"{self.root}/root"
                lines[n] = ":".join(fields)
        _write(f"{self.root}/etc/passwd", "\n".join(lines) + "\n")

    def _make_certificate(self, node_dir):
        """Self-signed like pve-ssl.pem: RSA 2048, CN and SANs of the node."""
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
              "-keyout", f"{node_dir}/pve-ssl.key", "-out", f"{node_dir}/pve-ssl.pem",
              "-subj", f"/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN={self.name}",
              "-addext", f"subjectAltName=IP:{self.addr},DNS:{self.name},DNS:localhost"])
        os.chmod(f"{node_dir}/pve-ssl.key", 0o600)

    # -- sockets and processes in the host's network namespace ------------------

    def _socket(self):
        """A TCP socket in the host's network namespace (the root one unless shaped)."""
        return self.link.socket() if self.link else socket.socket()

    def _free_port(self):
        with self._socket() as s:
            s.bind((self.addr, 0))
            return s.getsockname()[1]

    def _port_bindable(self, port):
        """Whether a server (SO_REUSEADDR, as sshd and pve_api.py set it) could
        listen on the port now: false while anything else listens on it."""
        with self._socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.addr, port))
                return True
            except OSError:
                return False

    def _ns_prefix(self):
        return self.link.enter_argv() if self.link else []

    # -- processes ---------------------------------------------------------------

    def start(self):
        """First start: on free ports picked at random."""
        self.ssh_port, self.sshd = self._start_until_listening(self._spawn_sshd, banner=b"SSH-")
        self.api_port, self.api = self._start_until_listening(self._spawn_api, banner=None)
        self.powered = True

    def _spawn_sshd(self, port):
        _write(f"{self.root}/etc/ssh/sshd_config",
               SSHD_CONFIG.format(node=self.name, addr=self.addr, port=port, root=self.root))
        log = open(f"{self.root}/log/sshd.log", "ab")
        return subprocess.Popen(
            self._ns_prefix() + ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
             "--propagation", "private", "/bin/sh", "-c", NAMESPACE_SCRIPT, "pvesim-ns", self.root],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, preexec_fn=_die_with_parent)

    def _spawn_api(self, port):
        log = open(f"{self.root}/log/api.log", "ab")
        return subprocess.Popen(
            self._ns_prefix() + ["/usr/bin/python3", os.path.join(LAB_DIR, "pve_api.py"), "--root", self.root,
             "--node", self.name, "--addr", self.addr, "--port", str(port),
             "--token-file", self.host.real("/etc/pve/priv/sim-api-token")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, preexec_fn=_die_with_parent)

    def _start_until_listening(self, spawn, banner, port=None):
        """Start a server and wait until it answers; return (port, process).

        Without `port`: on a free port, and if another process grabbed it first
        (ours exits), again on a new one. With `port` (power-on: clients have
        it registered): on that port only, waiting while something else still
        holds it, for at most START_TIMEOUT."""
        if port is not None:
            return port, self._start_on_port(spawn, banner, port)
        for _ in range(START_ATTEMPTS):
            port = self._free_port()
            proc = spawn(port)
            if self._wait_listening(proc, port, banner):
                return port, proc
        raise LabError(f"{self.name}: could not start a server (see {self.root}/log/)")

    def _start_on_port(self, spawn, banner, port):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._port_bindable(port):
                proc = spawn(port)
                if self._wait_listening(proc, port, banner, deadline):
                    return proc
            time.sleep(0.1)  # still taken (or the server lost a race for it): try again
        raise LabError(f"{self.name}: port {self.addr}:{port} could not be bound again within "
                       f"{START_TIMEOUT:g} s (see {self.root}/log/)")

    def _wait_listening(self, proc, port, banner, deadline=None):
        if deadline is None:
            deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with self._socket() as conn:
                    conn.settimeout(1)
                    conn.connect((self.addr, port))
                    if banner is None or conn.recv(16).startswith(banner):
                        return True
            except OSError:
                time.sleep(0.02)  # not listening yet: poll again
        self._terminate(proc)
        return False

    @staticmethod
    def _terminate(proc, hard=False):
        """SIGTERM the process group (unshare itself blocks SIGTERM while its
        child runs; sshd as pid 1 of the namespace does not), then SIGKILL.
        `hard`: SIGKILL at once, nobody gets to clean up (a power loss)."""
        if proc is None or proc.poll() is not None:
            return
        steps = ((signal.SIGKILL, None),) if hard else ((signal.SIGTERM, 5), (signal.SIGKILL, None))
        for sig, grace in steps:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop(self):
        # When sshd, pid 1 of the host's pid namespace, exits, the kernel kills
        # every session and job of the host with it.
        self._terminate(self.sshd)
        self._terminate(self.api)

    # -- a network drop of every ssh connection ------------------------------------

    def drop_ssh(self):
        """Break every open ssh connection of the host at once, the way a network
        reset looks to the client: the server side of each established
        connection on the ssh port is reset (`ss -K`, the client reads RST), then
        every sshd session process (the listener's sshd children and their sshd
        children) gets SIGKILL. The listener stays, so new connections work at
        once. The commands the sessions ran are not killed: they lose their
        session as on a real drop (a vzdump or qmrestore notices and ends as on
        a signal). Returns the number of connections dropped."""
        if not self.powered:
            raise LabError(f"host '{self.name}' is off")
        sessions = []
        for listener in _children(self.sshd.pid):  # unshare's child: sshd, pid 1 of the host
            sessions += [pid for pid in _children(listener) if _comm(pid) in SSHD_COMMS]
        victims = []
        todo = list(sessions)
        while todo:  # the session's own sshd processes (privsep child), not its commands
            pid = todo.pop()
            victims.append(pid)
            todo += [c for c in _children(pid) if _comm(c) in SSHD_COMMS]
        subprocess.run(self._ns_prefix() + ["ss", "-K", "-t", "-n", "state", "established",
                                            "src", f"{self.addr}:{self.ssh_port}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + START_TIMEOUT
        while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(sessions)

    # -- power loss ------------------------------------------------------------------

    def power_off(self):
        """Pull the plug: SIGKILL sshd (pid 1 of the host's pid namespace, so
        every ssh session and job dies with it, with no time to clean up) and
        the API server, then lose the RAM (/run). Returns when every process of
        the host is gone and both ports refuse connections."""
        if not self.powered:
            raise LabError(f"host '{self.name}' is already off")
        ns_init = _children(self.sshd.pid) if self.sshd else []
        self._terminate(self.sshd, hard=True)
        self._terminate(self.api, hard=True)
        self.sshd = self.api = None
        self.powered = False
        # unshare (our child) may be reaped a moment before the namespace's
        # init: that one only turns zombie once the kernel has reaped every
        # other process of the namespace.
        deadline = time.monotonic() + START_TIMEOUT
        while any(_alive(pid) for pid in ns_init) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._clear_run()
        self._log("power off")

    def power_on(self):
        """Boot again: empty /run, start the `onboot` guests, then sshd and the
        API server on the same address and ports as before (same host key,
        certificate and token: they are files on "disk"). On failure the host
        is left off (everything it started is stopped again)."""
        if self.powered:
            raise LabError(f"host '{self.name}' is already on")
        self._clear_run()
        self._log("power on")
        self._start_onboot_guests()
        try:
            _, self.sshd = self._start_until_listening(self._spawn_sshd, b"SSH-", port=self.ssh_port)
            _, self.api = self._start_until_listening(self._spawn_api, None, port=self.api_port)
        except BaseException:
            self._terminate(self.sshd, hard=True)
            self._terminate(self.api, hard=True)
            self.sshd = self.api = None
            # The killed sshd's socket closes a moment after unshare is
            # reaped (pid 1 of its namespace goes last): "off" means closed.
            deadline = time.monotonic() + 5
            while not self._port_bindable(self.ssh_port) and time.monotonic() < deadline:
                time.sleep(0.02)
            self._clear_run()
            self._log("boot failed, off again")
            raise
        self.powered = True

    def _clear_run(self):
        """/run is a tmpfs: VM pid files (qemu-server, lxc), vzdump's lock and
        pid file and sshd's runtime dir do not survive a power loss."""
        run = self.host.real("/run")
        for entry in os.listdir(run):
            path = os.path.join(run, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        self.host.ensure_layout()

    def _start_onboot_guests(self):
        """Like pve-guests' startall at boot: every VM and container whose config
        says `onboot: 1`, in VMID order, templates skipped; one that cannot
        start (e.g. still `lock: backup` from the crash) stays stopped, as its
        start task fails on a real node. Each attempt goes to log/power.log."""
        for kind, tool in (("qemu-server", qm), ("lxc", pct)):
            for vmid in self.host.list_vmids(kind):
                try:
                    values = self.host.read_config(vmid, kind).values
                    if values.get("onboot", "0").lower() not in ("1", "yes", "on", "true"):
                        continue
                    if values.get("template") == "1":
                        continue
                    tool.cmd_start(self.host, {"vmid": str(vmid)}, {})
                    self._log(f"onboot: started {kind} {vmid}")
                except (TaskError, OSError, ValueError) as exc:
                    self._log(f"onboot: start of {kind} {vmid} failed: {exc}")

    def _log(self, message):
        with open(f"{self.root}/log/power.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    # -- what a client needs to know -----------------------------------------------

    def info(self):
        with open(f"{self.root}/etc/ssh/ssh_host_ed25519_key.pub") as f:
            key_type, key_b64 = f.read().split()[:2]
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", f"{self.root}/etc/ssh/ssh_host_ed25519_key.pub"],
            check=True, capture_output=True, text=True).stdout.split()[1]
        with open(self.host.real("/etc/pve/priv/sim-api-token")) as f:
            secret = f.read().strip()
        return {
            "name": self.name, "node": self.name, "address": self.addr,
            "ssh_port": self.ssh_port, "ssh_user": "root", "api_port": self.api_port,
            "root": self.root, "dump_dir": DUMP_DIR, "dump_dir_real": self.host.real(DUMP_DIR),
            "known_hosts_line": f"[{self.addr}]:{self.ssh_port} {key_type} {key_b64}",
            "host_key_sha256": fingerprint, "api_token_id": TOKEN_ID,
            "api_token_secret": secret, "tls_fingerprint": tls_fingerprint(self.host),
            **(self.link.info() if self.link else {}),
        }

