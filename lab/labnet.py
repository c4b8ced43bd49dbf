"""Shaped network links for lab hosts (`lab.py run --shape NAME:rate=…`).

A shaped host gets its own network namespace, joined to the root namespace
through a "wire" namespace:

    root ns                      wire ns  drswlab-<pid>-<n>-wire     host ns  drswlab-<pid>-<n>
    drswl<pid>-<n> (10.213.x.1) ══ wr ······(in-kernel or netwire.py)······ wh ══ eth0 (10.213.x.2)
      tbf: root → host            clsact egress: loss (BPF random drop)       tbf: host → root

* rate: `tbf` on the egress of both ends (the root-side veth and the host's
  eth0), as a real link of that rate, measured within 1 % at the frame level;
* loss: a classic-BPF `ld rand` filter (tc `bpf da`) on the egress of wr and
  wh inside the wire, so a lost frame was sent (counted by the sender's veth)
  but never arrives, in each direction with the given probability;
* delay: this kernel has no `netem` (and no `fq`/`etf`), so a delay is a small
  user-space delay line (netwire.py, AF_PACKET on wr/wh) in the wire
  namespace. Without a delay the wire is two `mirred` redirects, all in the
  kernel.

Only namespaces named `drswlab-<lab pid>-…` are ever created or removed; the
root namespace gets nothing but the root-side end of the veth pair (and its
tbf), which goes away with the namespaces.
"""
import ctypes
import fcntl
import ipaddress
import os
import re
import signal
import socket
import subprocess
import threading
import time

LAB_DIR = os.path.dirname(os.path.realpath(__file__))
NETWIRE = os.path.join(LAB_DIR, "netwire.py")
NETNS_DIR = "/run/netns"
PREFIX = "drswlab"
NETNS_RE = re.compile(rf"^{PREFIX}-(\d+)-(\d+)(-wire)?$")
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
LOCK_PATH = "/tmp/.drswitch-lab-net.lock"  # serialises subnet choice between labs
MAX_LINKS = 100  # root-side veth names must fit in 15 characters
HOST_IF = "eth0"
WIRE_ROOT_IF, WIRE_HOST_IF = "wr", "wh"
CLONE_NEWNET = 0x40000000
TBF_LATENCY_MS = 100  # queue limit of the tbf (bytes = rate * latency + burst)
GONE_TIMEOUT = 10.0

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class NetError(Exception):
    pass


# -- the spec: rate=42mbit[,delay=20ms][,loss=0.5%] -----------------------------------

_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
_DELAY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class LinkSpec:
    """rate in bits/s (as tc counts it: whole Ethernet frames), one-way delay
    in ms, loss in % per frame and direction."""

    def __init__(self, rate_bits, delay_ms=0.0, loss_pct=0.0):
        self.rate_bits = rate_bits
        self.delay_ms = delay_ms
        self.loss_pct = loss_pct

    @classmethod
    def parse(cls, text):
        values = {}
        for item in text.split(","):
            key, sep, value = item.strip().partition("=")
            key = key.strip().lower()
            if not sep or not value.strip():
                raise NetError(f"bad link spec '{text}': expected key=value items "
                               "(rate=42mbit[,delay=20ms][,loss=0.5%])")
            if key not in ("rate", "delay", "loss"):
                raise NetError(f"bad link spec '{text}': unknown key '{key}' (rate, delay, loss)")
            if key in values:
                raise NetError(f"bad link spec '{text}': '{key}' given twice")
            values[key] = value.strip().lower()
        if "rate" not in values:
            raise NetError(f"bad link spec '{text}': rate=… is required (e.g. rate=42mbit)")
        return cls(_parse_rate(values["rate"]), _parse_delay(values.get("delay", "0")),
                   _parse_loss(values.get("loss", "0")))

    def to_json(self):
        return {"rate_bits_per_sec": self.rate_bits, "delay_ms": _num(self.delay_ms),
                "loss_pct": _num(self.loss_pct)}

    def __str__(self):
        return f"rate={self.rate_bits}bit,delay={_num(self.delay_ms)}ms,loss={_num(self.loss_pct)}%"


def _num(value):
    return int(value) if float(value).is_integer() else value


def _parse_rate(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)?", text)
    if not match:
        raise NetError(f"bad rate '{text}' (e.g. 42mbit, 512kbit, 1gbit, 8000000bit)")
    bits = int(float(match.group(1)) * _RATE_UNITS[match.group(2) or "bit"])
    if not 64_000 <= bits <= 10 * 10**9:
        raise NetError(f"rate '{text}' out of range (64kbit … 10gbit)")
    return bits


def _parse_delay(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s)?", text)
    if not match:
        raise NetError(f"bad delay '{text}' (e.g. 20ms, 0.5ms, 1s)")
    ms = float(match.group(1)) * _DELAY_UNITS[match.group(2) or "ms"]
    if ms > 10_000:
        raise NetError(f"delay '{text}' out of range (at most 10s)")
    return ms


def _parse_loss(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%?", text)
    if not match or float(match.group(1)) > 100:
        raise NetError(f"bad loss '{text}' (a percentage 0 … 100, e.g. 0.5%)")
    return float(match.group(1))


def parse_shape_arg(text):
    """`NAME:rate=…` of `lab.py run --shape`."""
    name, sep, spec = text.partition(":")
    if not sep:
        raise NetError(f"bad --shape '{text}': expected NAME:rate=42mbit[,delay=20ms][,loss=0.5%]")
    return name, LinkSpec.parse(spec)


# -- helpers ------------------------------------------------------------------------

def _run(argv, check=True):
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def _die_with_parent():
    PR_SET_PDEATHSIG = 1
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def in_netns(ns_path, func):
    """Run func() in a thread that joined the network namespace ns_path (a
    socket created there stays in that namespace); return its result."""
    result = {}

    def work():
        try:
            fd = os.open(ns_path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns_path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["value"] = func()
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="netns")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _pid_is_lab(pid):
    """Whether pid is a running `lab.py run` (a stale namespace's owner is not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and any(a.endswith(b"lab.py") for a in args) and b"run" in args


def _netns_names():
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _delete_netns(name):
    """Kill whatever still runs in the namespace (only ever one of ours), then
    remove it; its veths go with it."""
    pids = _run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _run(["ip", "netns", "delete", name], check=False)


def remove_namespaces(owner_pid):
    """Delete every namespace of the lab with that pid; returns their names."""
    names = [n for n in _netns_names() if (m := NETNS_RE.match(n)) and int(m.group(1)) == owner_pid]
    for name in names:
        _delete_netns(name)
    return names


def remove_stale_namespaces():
    """Delete drswlab-<pid>-… namespaces whose lab is gone (killed by SIGKILL,
    so it could not clean up); a running lab's namespaces are left alone. Call
    it before making any: ones named after our own pid are then stale too (an
    earlier lab had the same pid)."""
    owners = {int(m.group(1)) for n in _netns_names() if (m := NETNS_RE.match(n))}
    removed = []
    for pid in sorted(owners):
        if pid == os.getpid() or not _pid_is_lab(pid):
            removed += remove_namespaces(pid)
    return removed


def wait_gone(ifnames, timeout=GONE_TIMEOUT):
    """Namespace teardown is asynchronous in the kernel: wait until the
    root-side interfaces are really gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/sys/class/net/{name}") for name in ifnames):
            return True
        time.sleep(0.02)
    return False


def _networks_in_use():
    """Every IPv4 prefix the root namespace has a route or an address for."""
    nets = []
    for argv in (["ip", "-4", "-o", "route", "show", "table", "all"], ["ip", "-4", "-o", "addr", "show"]):
        for line in _run(argv).stdout.splitlines():
            words = line.split()
            if argv[3] == "route":
                dest = words[1] if words[0] in ("local", "broadcast", "unicast", "multicast",
                                                "blackhole", "unreachable", "prohibit") else words[0]
            else:
                dest = words[3] if len(words) > 3 else ""
            if dest == "default" or not dest:
                continue
            try:
                nets.append(ipaddress.ip_network(dest, strict=False))
            except ValueError:
                continue
    return nets


def _free_subnet():
    used = _networks_in_use()
    for subnet in SUBNET_POOL.subnets(new_prefix=30):
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise NetError(f"no free /30 left in {SUBNET_POOL} (every one overlaps a route or address)")


# -- one link -----------------------------------------------------------------------

class Link:
    def __init__(self, lab_pid, index, spec):
        if index >= MAX_LINKS:
            raise NetError(f"at most {MAX_LINKS} shaped hosts per lab")
        self.netns = f"{PREFIX}-{lab_pid}-{index}"
        self.wire_ns = f"{self.netns}-wire"
        self.veth = f"drswl{lab_pid}-{index}"
        self.spec = spec
        self.subnet = None
        self.root_addr = self.host_addr = None
        self.forwarder = None
        self.applied = None

    @property
    def ns_path(self):
        return f"{NETNS_DIR}/{self.netns}"

    def enter_argv(self):
        """Prefix that runs a program inside the host's network namespace."""
        return ["nsenter", f"--net={self.ns_path}"]

    def socket(self):
        return in_netns(self.ns_path, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))

    def create(self):
        """Namespaces, veths and addresses (the subnet is chosen and taken under
        a lock, so two labs starting at once do not pick the same one)."""
        with open(LOCK_PATH, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.subnet = _free_subnet()
            hosts = list(self.subnet.hosts())
            self.root_addr, self.host_addr = str(hosts[0]), str(hosts[1])
            prefix = self.subnet.prefixlen
            w, h = self.wire_ns, self.netns
            for argv in (
                ["ip", "netns", "add", h],
                ["ip", "netns", "add", w],
                ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", WIRE_ROOT_IF, "netns", w],
                ["ip", "-n", w, "link", "add", WIRE_HOST_IF, "type", "veth", "peer", "name", HOST_IF, "netns", h],
                # one frame per skb from the senders (no GSO bursts): tbf paces and the
                # loss filter drops single frames, as on a real link
                ["ip", "link", "set", self.veth, "gso_max_segs", "1"],
                ["ip", "-n", h, "link", "set", HOST_IF, "gso_max_segs", "1"],
                # no IPv6 link-local chatter on the link (it would show in the byte counters)
                ["ip", "link", "set", self.veth, "addrgenmode", "none"],
                ["ip", "-n", w, "link", "set", WIRE_ROOT_IF, "addrgenmode", "none"],
                ["ip", "-n", w, "link", "set", WIRE_HOST_IF, "addrgenmode", "none"],
                ["ip", "-n", h, "link", "set", HOST_IF, "addrgenmode", "none"],
                ["ip", "addr", "add", f"{self.root_addr}/{prefix}", "dev", self.veth],
                ["ip", "-n", h, "addr", "add", f"{self.host_addr}/{prefix}", "dev", HOST_IF],
                ["ip", "-n", h, "link", "set", "lo", "up"],
                ["ip", "-n", w, "link", "set", WIRE_ROOT_IF, "up"],
                ["ip", "-n", w, "link", "set", WIRE_HOST_IF, "up"],
                ["ip", "-n", h, "link", "set", HOST_IF, "up"],
                ["ip", "link", "set", self.veth, "up"],
                ["tc", "-n", w, "qdisc", "add", "dev", WIRE_ROOT_IF, "clsact"],
                ["tc", "-n", w, "qdisc", "add", "dev", WIRE_HOST_IF, "clsact"],
            ):
                _run(argv)
        self._kernel_wire(True)
        self.apply(self.spec)

    # -- shaping --------------------------------------------------------------------

    def apply(self, spec):
        """Set rate, loss and delay (at start and for `shape` at run time)."""
        burst = max(4096, spec.rate_bits // 8 // 1000)  # ≥ 1 ms of data, ≥ 2 full frames
        tbf = ["root", "tbf", "rate", f"{spec.rate_bits}bit", "burst", str(burst),
               "latency", f"{TBF_LATENCY_MS}ms"]
        _run(["tc", "qdisc", "replace", "dev", self.veth] + tbf)
        _run(["tc", "-n", self.netns, "qdisc", "replace", "dev", HOST_IF] + tbf)
        for dev in (WIRE_ROOT_IF, WIRE_HOST_IF):
            _run(["tc", "-n", self.wire_ns, "filter", "del", "dev", dev, "egress", "pref", "20"], check=False)
            if spec.loss_pct > 0:
                _run(["tc", "-n", self.wire_ns, "filter", "add", "dev", dev, "egress", "pref", "20",
                      "protocol", "all", "bpf", "da", "bytecode", _loss_program(spec.loss_pct)])
        self._set_delay(spec.delay_ms)
        self.spec = spec

    def _kernel_wire(self, on):
        """The wire without delay: frames arriving on wr leave on wh and back."""
        for src, dst in ((WIRE_ROOT_IF, WIRE_HOST_IF), (WIRE_HOST_IF, WIRE_ROOT_IF)):
            if on:
                _run(["tc", "-n", self.wire_ns, "filter", "add", "dev", src, "ingress", "pref", "10",
                      "protocol", "all", "u32", "match", "u32", "0", "0",
                      "action", "mirred", "egress", "redirect", "dev", dst])
            else:
                _run(["tc", "-n", self.wire_ns, "filter", "del", "dev", src, "ingress", "pref", "10"],
                     check=False)

    def _set_delay(self, delay_ms):
        if delay_ms > 0 and self.forwarder is None:
            self._start_forwarder()
            self._kernel_wire(False)  # from now on only the delay line carries frames
        if delay_ms > 0:
            self._tell_forwarder(f"delay {delay_ms}")
        elif self.forwarder is not None:
            self._stop_forwarder()
            self._kernel_wire(True)

    def _start_forwarder(self):
        """netwire.py in the wire namespace; it forwards nothing until told the delay."""
        self.forwarder = subprocess.Popen(
            ["nsenter", f"--net={NETNS_DIR}/{self.wire_ns}", "/usr/bin/python3", NETWIRE,
             WIRE_ROOT_IF, WIRE_HOST_IF],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=_die_with_parent)
        line = self.forwarder.stdout.readline()
        if line.strip() != "READY":
            self._stop_forwarder()
            raise NetError(f"{self.netns}: the delay line did not start ({line.strip() or 'no output'})")

    def _tell_forwarder(self, line):
        try:
            self.forwarder.stdin.write(line + "\n")
            self.forwarder.stdin.flush()
        except BrokenPipeError as exc:
            raise NetError(f"{self.netns}: the delay line has died") from exc

    def _stop_forwarder(self):
        proc, self.forwarder = self.forwarder, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # EOF: it exits
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def destroy(self):
        self._stop_forwarder()
        _delete_netns(self.netns)
        _delete_netns(self.wire_ns)

    def info(self):
        return {"netns": self.netns, "veth": self.veth, "link": self.spec.to_json()}


def _loss_program(loss_pct):
    """Classic BPF for `tc … bpf da`: drop (TC_ACT_SHOT = 2) when a random u32
    is below loss × 2^32, else pass (TC_ACT_OK = 0)."""
    if loss_pct >= 100:
        return "1,6 0 0 2"
    threshold = max(1, min(2**32 - 1, round(loss_pct / 100 * 2**32)))
    ld_rand = 2**32 - 0x1000 + 56  # SKF_AD_OFF + SKF_AD_RANDOM
    return f"4,32 0 0 {ld_rand},53 0 1 {threshold},6 0 0 0,6 0 0 2"


def check_tools():
    for tool in ("ip", "tc", "nsenter"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get(
                "PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":") + ["/usr/sbin", "/sbin"]):
            raise NetError(f"shaped links need '{tool}' (iproute2 / util-linux)")
    if os.geteuid() != 0:
        raise NetError("shaped links need root")


__all__ = ["Link", "LinkSpec", "NetError", "parse_shape_arg", "remove_namespaces",
           "remove_stale_namespaces", "wait_gone", "in_netns", "check_tools"]
