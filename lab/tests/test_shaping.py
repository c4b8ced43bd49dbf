"""Shaped links (`--shape NAME:rate=…[,delay=…][,loss=…]`): the host lives in
its own network namespace behind a veth pair shaped at the rate in both
directions; `shape` changes the link at run time, `drop-ssh` breaks every
open ssh connection of a host; namespaces and veths never outlive the lab."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from labfixture import LAB_PY, PYTHON, Lab, wait_for

MIB = 1 << 20
RATE = 16_000_000
NETNS_DIR = "/run/netns"


def netns_names():
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


def read(path):
    with open(path) as f:
        return f.read()


def connect_time(address, port, timeout=2.0):
    """Seconds for a TCP handshake (one round trip), or None on timeout."""
    started = time.monotonic()
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return time.monotonic() - started
    except OSError:
        return None


class ShapedHost(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab("dc1", "drc1:127.0.0.2", shapes=["dc1:rate=16mbit"])
        cls.info = cls.lab.hosts["dc1"]

    @classmethod
    def tearDownClass(cls):
        cls.lab.close()

    def test_json_line_and_namespace(self):
        info = self.info
        self.assertRegex(info["address"], r"^10\.213\.\d+\.\d+$")
        self.assertRegex(info["netns"], rf"^drswlab-{self.lab.proc.pid}-0$")
        self.assertRegex(info["veth"], rf"^drswl{self.lab.proc.pid}-0$")
        self.assertEqual(info["link"], {"rate_bits_per_sec": RATE, "delay_ms": 0, "loss_pct": 0})
        self.assertTrue(info["known_hosts_line"].startswith(f"[{info['address']}]:{info['ssh_port']} "))
        self.assertIn(info["netns"], netns_names())
        self.assertTrue(os.path.exists(f"/sys/class/net/{info['veth']}"))
        drc1 = self.lab.hosts["drc1"]
        self.assertEqual(drc1["address"], "127.0.0.2")
        self.assertFalse({"netns", "veth", "link"} & set(drc1))
        # sshd runs in the host's namespace, which has only lo and the link
        result = self.lab.ssh("dc1", "ip -4 -o addr show | awk '{print $2, $4}'")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.split("\n")[:2], ["lo 127.0.0.1/8", f"eth0 {info['address']}/30"])

    def transfer(self, direction, data):
        """Move `data` over ssh; return (payload bytes, seconds between the first
        and the last byte, link bytes in that direction)."""
        before = self.lab.link_bytes("dc1")
        if direction == "down":  # host -> client: time the bytes as they arrive
            proc = subprocess.Popen(self.lab.ssh_argv("dc1") + [f"cat {data}"], stdout=subprocess.PIPE)
            first, got = None, 0
            while chunk := proc.stdout.read1(MIB):
                first = first or time.monotonic()
                got += len(chunk)
            seconds = time.monotonic() - first
            proc.stdout.close()
            self.assertEqual(proc.wait(), 0)
        else:  # client -> host: the host times its side
            with open(data, "rb") as f:
                result = subprocess.run(
                    self.lab.ssh_argv("dc1") + ["s=$(date +%s.%N); n=$(head -c 1 | wc -c); "
                                                "m=$(cat | wc -c); e=$(date +%s.%N); echo $((n+m)) $s $e"],
                    stdin=f, capture_output=True, text=True)
            got, start, end = result.stdout.split()
            got, seconds = int(got), float(end) - float(start)
        after = self.lab.link_bytes("dc1")
        link = after[0] - before[0] if direction == "up" else after[1] - before[1]
        return got, seconds, link

    def test_rate_both_directions(self):
        data = os.path.join(self.lab.tmp, "8MiB.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(8 * MIB))
        for direction in ("down", "up"):
            got, seconds, link = self.transfer(direction, data)
            self.assertEqual(got, 8 * MIB)
            frames_rate = link * 8 / seconds  # what tc counts: whole frames
            payload_rate = got * 8 / seconds  # what ssh delivers (~95 %: TCP/IP/ssh overhead)
            with self.subTest(direction=direction, link=frames_rate, payload=payload_rate):
                self.assertAlmostEqual(frames_rate / RATE, 1.0, delta=0.10)
                self.assertAlmostEqual(payload_rate / RATE, 1.0, delta=0.10)
                self.assertGreaterEqual(link, got)

    def test_shape_at_run_time(self):
        lab, info = self.lab, self.info
        addr, port = info["address"], info["ssh_port"]
        try:
            self.assertRegex(lab.shape("dc1", "rate=16mbit,delay=20ms"),
                             r"^OK shape dc1 rate=16000000bit,delay=20ms,loss=0%$")
            rtt = min(connect_time(addr, port) for _ in range(3))
            self.assertGreaterEqual(rtt, 0.039)  # 20 ms each way
            self.assertLess(rtt, 0.2)
            self.assertEqual(lab.ssh("dc1", "echo delayed").stdout, "delayed\n")
            lab.shape("dc1", "rate=16mbit,delay=20ms,loss=100%")
            self.assertIsNone(connect_time(addr, port, timeout=0.5))
            lab.shape("dc1", "rate=16mbit,loss=100%")  # the in-kernel wire drops too
            self.assertIsNone(connect_time(addr, port, timeout=0.5))
        finally:
            self.assertEqual(lab.shape("dc1", "rate=16mbit"), "OK shape dc1 rate=16000000bit,delay=0ms,loss=0%")
        self.assertLess(connect_time(addr, port), 0.02)
        self.assertEqual(lab.shape("drc1", "rate=1mbit"),
                         "ERR host 'drc1' has no shaped link (start it with --shape drc1:rate=…)")
        self.assertTrue(lab.shape("dc1", "rate=fast").startswith("ERR bad rate 'fast'"))
        self.assertTrue(lab.shape("dc1", "delay=5ms").startswith("ERR bad link spec"))
        self.assertEqual(lab.shape("nope", "rate=1mbit"), "ERR unknown host 'nope'")

    def test_drop_ssh(self):
        lab = self.lab
        conf = os.path.join(lab.root("dc1"), "etc/pve/nodes/dc1/qemu-server/100.conf")
        lab.create_vm("dc1", 100, "--disk-size", "1M")
        for host in ("dc1", "drc1"):
            sessions = [lab.ssh_popen(host, "echo up; sleep 3001")]
            if host == "dc1":  # a backup stuck half way, in a session of its own
                lab.hook("dc1", "vzdump-hang")
                sessions.append(lab.ssh_popen("dc1", "vzdump 100"))
                wait_for(lambda: "lock: backup" in read(conf))
            bystander = lab.ssh_popen("drc1" if host == "dc1" else "dc1", "echo up; sleep 3002")
            for proc in sessions[:1] + [bystander]:
                self.assertEqual(proc.stdout.readline(), "up\n")
            self.assertEqual(lab.drop_ssh(host), f"OK drop-ssh {host} {len(sessions)}")
            for proc in sessions:  # all break at once, as on a network reset
                self.assertEqual(proc.wait(timeout=5), 255)
                proc.communicate()
            self.assertIsNone(bystander.poll())  # the other host's sessions stay
            bystander.kill()
            bystander.communicate()
            self.assertEqual(lab.ssh(host, "echo again").stdout, "again\n")  # the listener stays
        # the backup noticed that its session was gone and cleaned up (a
        # command that never writes, like the sleep, runs on, as on a real node)
        wait_for(lambda: "lock" not in read(conf))
        self.assertEqual(lab.drop_ssh("nope"), "ERR unknown host 'nope'")

    def test_power_cycle_keeps_address_ports_and_key(self):
        lab, info = self.lab, self.info
        self.assertEqual(lab.power_off("dc1"), "OK power-off dc1")
        self.assertEqual(lab.drop_ssh("dc1"), "ERR host 'dc1' is off")
        self.assertIsNone(connect_time(info["address"], info["ssh_port"], timeout=0.5))
        self.assertEqual(lab.power_on("dc1"), "OK power-on dc1")
        result = lab.ssh("dc1", "echo back")  # strict host key checking: same key
        self.assertEqual((result.returncode, result.stdout), (0, "back\n"), result.stderr)
        self.assertIsNotNone(connect_time(info["address"], info["api_port"]))


def lab_argv(tmp, *extra):
    key = os.path.join(tmp, "id")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    return [PYTHON, LAB_PY, "run", "--dir", os.path.join(tmp, "lab"), "--authorized-key", key + ".pub", *extra]


def start(argv):
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    hosts = []
    for line in proc.stdout:
        if line.strip() == "READY":
            return proc, hosts
        hosts.append(line)
    raise AssertionError(f"lab did not start: {proc.wait()}")


class Cleanup(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pvesim-net-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ours(self, pid):
        return {n for n in netns_names() if n.startswith(f"drswlab-{pid}-")}

    def assert_gone(self, pid):
        self.assertEqual(self.ours(pid), set())
        self.assertFalse([n for n in os.listdir("/sys/class/net") if n.startswith(f"drswl{pid}-")])

    def test_gone_after_stdin_eof_and_after_sigterm(self):
        for how in ("eof", "sigterm"):
            proc, _ = start(lab_argv(self.tmp, "--host", "dc1", "--host", "drc1",
                                     "--shape", "dc1:rate=10mbit,delay=5ms", "--shape", "drc1:rate=1gbit"))
            expected = {f"drswlab-{proc.pid}-{n}{wire}" for n in (0, 1) for wire in ("", "-wire")}
            self.assertEqual(self.ours(proc.pid), expected)
            if how == "eof":
                proc.stdin.close()
            else:
                proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=20), 0)
            proc.stdout.close()
            if how == "sigterm":
                proc.stdin.close()
            self.assert_gone(proc.pid)  # at once: the lab waits until they are gone

    def test_stale_namespaces_of_a_killed_lab_are_removed(self):
        live, _ = start(lab_argv(self.tmp, "--host", "dc1", "--shape", "dc1:rate=10mbit"))
        killed, _ = start(lab_argv(self.tmp, "--host", "drc1", "--shape", "drc1:rate=10mbit,delay=1ms"))
        killed.kill()  # SIGKILL: no chance to clean up
        killed.wait()
        killed.stdout.close()
        killed.stdin.close()
        self.assertTrue(self.ours(killed.pid))
        wait_for(lambda: not subprocess.run(["ip", "netns", "pids", f"drswlab-{killed.pid}-0"],
                                            capture_output=True, text=True).stdout.strip())
        fresh, _ = start(lab_argv(self.tmp, "--host", "dc2"))
        try:
            wait_for(lambda: not self.ours(killed.pid), timeout=5)
            self.assert_gone(killed.pid)
            self.assertEqual(len(self.ours(live.pid)), 2)  # a running lab's namespaces stay
        finally:
            for proc in (fresh, live):
                proc.stdin.close()
                proc.wait(timeout=20)
                proc.stdout.close()
        self.assert_gone(live.pid)

    def test_bad_shape_arguments(self):
        for extra, message in (
                (["--host", "dc1:127.0.0.3", "--shape", "dc1:rate=1mbit"], "gets its address from the lab"),
                (["--host", "dc1", "--shape", "dc2:rate=1mbit"], "no --host dc2"),
                (["--host", "dc1", "--shape", "dc1:delay=5ms"], "rate=… is required"),
                (["--host", "dc1", "--shape", "dc1:rate=1mbit,jitter=5ms"], "unknown key 'jitter'")):
            result = subprocess.run(lab_argv(self.tmp, *extra), stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 1, extra)
            self.assertIn(message, result.stderr)
            self.assertEqual(result.stdout, "")


if __name__ == "__main__":
    unittest.main()
