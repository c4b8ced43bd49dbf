"""Power loss: `power-off NAME` / `power-on NAME` on the lab's stdin. Off, every
process of the host is gone and its ports refuse connections; on again, it
answers on the same ports with the same identity and starts its onboot guests."""
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import unittest

from labfixture import Lab, sha256_file, wait_for


def port_open(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except OSError:
        return False


def processes():
    return subprocess.run(["ps", "ax", "-o", "args="], capture_output=True, text=True).stdout


def api_get(info, path):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # compared with tls_fingerprint below
    conn = http.client.HTTPSConnection(info["address"], info["api_port"], context=context, timeout=10)
    conn.request("GET", "/api2/json" + path,
                 headers={"Authorization": f"PVEAPIToken={info['api_token_id']}={info['api_token_secret']}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body)["data"] if body else None


def tls_fingerprint(info):
    pem = ssl.get_server_certificate((info["address"], info["api_port"]))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def listen_on(addr, port):
    """Hold a port the way another program would (SO_REUSEADDR, as the
    killed server's connections may sit in TIME_WAIT)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    sock.listen()
    return sock


class PowerLoss(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab()  # dc1 and drc1:127.0.0.2

    @classmethod
    def tearDownClass(cls):
        cls.lab.close()

    def conf(self, host, vmid):
        with open(os.path.join(self.lab.root(host), f"etc/pve/nodes/{host}/qemu-server/{vmid}.conf")) as f:
            return f.read()

    def ports(self, host):
        info = self.lab.hosts[host]
        return [(info["address"], info["ssh_port"]), (info["address"], info["api_port"])]

    def test_power_off_and_on_again(self):
        lab = self.lab
        info = lab.hosts["dc1"]
        run = os.path.join(lab.root("dc1"), "run")
        lab.create_vm("dc1", 100, "--disk-size", "1M", "--running", "--onboot")
        lab.create_vm("dc1", 101, "--disk-size", "1M", "--running")
        lab.create_vm("dc1", 102, "--disk-size", "1M", "--onboot")
        lab.create_vm("dc1", 103, "--disk-size", "4M", "--running", "--onboot")
        self.assertIn("onboot: 1\n", self.conf("dc1", 100))
        self.assertNotIn("onboot", self.conf("dc1", 101))
        disk = sha256_file(lab.disk_path("dc1", 101))
        self.assertEqual(tls_fingerprint(info), info["tls_fingerprint"])

        # a job that would run for a long time, and a backup stuck half way
        sleeper = lab.ssh_popen("dc1", "sleep 3007")
        lab.hook("dc1", "vzdump-hang")
        backup = lab.ssh_popen("dc1", "vzdump 103 --compress zstd")
        wait_for(lambda: "sleep 3007" in processes())
        wait_for(lambda: "lock: backup" in self.conf("dc1", 103))
        wait_for(lambda: os.path.exists(os.path.join(run, "vzdump.pid")))
        wait_for(lambda: [f for f in lab.dump_files("dc1") if f.endswith(".vma.dat")])

        self.assertEqual(lab.power_off("dc1"), "OK power-off dc1")
        # at once, no waiting: everything of the host is gone
        self.assertFalse(any(port_open(*p) for p in self.ports("dc1")))
        refused = lab.ssh("dc1", "true")
        self.assertEqual(refused.returncode, 255)
        self.assertIn("Connection refused", refused.stderr)
        self.assertNotIn("sleep 3007", processes())
        self.assertNotIn("vzdump 103", processes())
        self.assertEqual(sleeper.wait(timeout=10), 255)
        self.assertEqual(backup.wait(timeout=10), 255)
        sleeper.communicate()
        backup.communicate()
        # the RAM is lost: no VM runs, vzdump's lock and pid file are gone ...
        for vmid in (100, 101, 102, 103):
            self.assertEqual(lab.vm_status("dc1", vmid), "stopped")
        self.assertEqual(os.listdir(os.path.join(run, "qemu-server")), [])
        self.assertFalse(os.path.exists(os.path.join(run, "vzdump.lock")))
        self.assertFalse(os.path.exists(os.path.join(run, "vzdump.pid")))
        # ... the disk is not: configs, images, and what the killed backup left
        self.assertEqual(sha256_file(lab.disk_path("dc1", 101)), disk)
        self.assertIn("lock: backup", self.conf("dc1", 103))
        self.assertTrue([f for f in lab.dump_files("dc1") if f.endswith(".vma.dat")])
        # the other host does not notice
        self.assertEqual(lab.ssh("drc1", "true").returncode, 0)

        self.assertEqual(lab.power_off("dc1"), "ERR host 'dc1' is already off")

        self.assertEqual(lab.power_on("dc1"), "OK power-on dc1")
        self.assertTrue(all(port_open(*p) for p in self.ports("dc1")))
        # same host key (strict known_hosts check), certificate and token
        status = lab.ssh("dc1", "for id in 100 101 102 103; do qm status $id; done")
        self.assertEqual(status.returncode, 0, status.stderr)
        # onboot guests run again; 103 stays locked from the crash, so its start fails
        self.assertEqual(status.stdout.split("\n"), ["status: running", "status: stopped",
                                                     "status: running", "status: stopped", ""])
        self.assertEqual(tls_fingerprint(info), info["tls_fingerprint"])
        code, vms = api_get(info, "/nodes/dc1/qemu")
        self.assertEqual(code, 200)
        self.assertEqual({vm["vmid"]: vm["status"] for vm in vms},
                         {100: "running", 101: "stopped", 102: "running", 103: "stopped"})
        self.assertIn("lock: backup", self.conf("dc1", 103))
        with open(os.path.join(lab.root("dc1"), "log/power.log")) as f:
            self.assertIn("onboot: start of qemu-server 103 failed: VM is locked (backup)", f.read())

        self.assertEqual(lab.power_on("dc1"), "ERR host 'dc1' is already on")
        # and it works as before
        self.assertEqual(lab.ssh("dc1", "qm stop 100").returncode, 0)
        self.assertEqual(lab.vm_status("dc1", 100), "stopped")

    def test_unknown_host_and_bad_lines(self):
        self.assertEqual(self.lab.power_off("nosuch"), "ERR unknown host 'nosuch'")
        self.assertEqual(self.lab.power_on("nosuch"), "ERR unknown host 'nosuch'")
        self.assertRegex(self.lab.control("reboot dc1"), r"^ERR unknown command 'reboot dc1'")
        self.assertRegex(self.lab.control("power-off"), r"^ERR unknown command")
        # blank lines get no answer; the lab keeps going
        self.assertEqual(self.lab.control("\npower-off nosuch"), "ERR unknown host 'nosuch'")
        self.assertEqual(self.lab.ssh("drc1", "true").returncode, 0)

    def test_port_taken_for_a_moment(self):
        """Someone else holds the ssh port when the host boots: it waits for it."""
        lab = self.lab
        self.assertEqual(lab.power_off("drc1"), "OK power-off drc1")
        squatter = listen_on(*self.ports("drc1")[0])
        threading.Timer(1.0, squatter.close).start()
        started = time.monotonic()
        self.assertEqual(lab.power_on("drc1"), "OK power-on drc1")
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(lab.ssh("drc1", "true").returncode, 0)

    def test_port_taken_for_good(self):
        """The API port stays taken: ERR after START_TIMEOUT, the host stays off
        (its sshd, already up, is stopped again); once free, it boots."""
        lab = self.lab
        ssh_port, api_port = self.ports("drc1")
        self.assertEqual(lab.power_off("drc1"), "OK power-off drc1")
        squatter = listen_on(*api_port)
        try:
            answer = lab.power_on("drc1")
            self.assertRegex(answer, rf"^ERR drc1: port 127\.0\.0\.2:{api_port[1]} could not be bound again")
            self.assertFalse(port_open(*ssh_port))
        finally:
            squatter.close()
        self.assertEqual(lab.power_off("drc1"), "ERR host 'drc1' is already off")
        self.assertEqual(lab.power_on("drc1"), "OK power-on drc1")
        self.assertTrue(all(port_open(*p) for p in self.ports("drc1")))
        self.assertEqual(api_get(lab.hosts["drc1"], "/version")[0], 200)


if __name__ == "__main__":
    unittest.main()
