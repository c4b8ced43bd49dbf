"""The supervisor: JSON lines, isolation of hosts, shutdown, subcommands."""
import os
import signal
import socket
import subprocess
import time
import unittest

from labfixture import LAB_PY, PYTHON, Lab, wait_for

KEYS = {"name", "node", "address", "ssh_port", "api_port", "root", "dump_dir", "dump_dir_real",
        "known_hosts_line", "host_key_sha256", "api_token_id", "api_token_secret", "tls_fingerprint"}


def port_open(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except OSError:
        return False


class RunningLab(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab()

    @classmethod
    def tearDownClass(cls):
        cls.lab.close()

    def test_json_line_per_host(self):
        dc1, drc1 = self.lab.hosts["dc1"], self.lab.hosts["drc1"]
        self.assertLessEqual(KEYS, set(dc1))
        self.assertEqual((dc1["node"], dc1["address"]), ("dc1", "127.0.0.1"))
        self.assertEqual(drc1["address"], "127.0.0.2")
        self.assertEqual(dc1["dump_dir"], "/var/lib/vz/dump")
        self.assertEqual(dc1["dump_dir_real"], os.path.join(dc1["root"], "var/lib/vz/dump"))
        self.assertTrue(os.path.isdir(dc1["dump_dir_real"]))
        self.assertEqual(dc1["api_token_id"], "root@pam!drswitch")
        self.assertRegex(dc1["known_hosts_line"], rf"^\[127\.0\.0\.1\]:{dc1['ssh_port']} ssh-ed25519 AAAA\S+$")
        self.assertRegex(dc1["tls_fingerprint"], r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")

    def test_host_key_fingerprint_matches_known_hosts_line(self):
        info = self.lab.hosts["dc1"]
        line = subprocess.run(["ssh-keygen", "-lf", "-"], input=info["known_hosts_line"],
                              capture_output=True, text=True, check=True).stdout
        self.assertEqual(line.split()[1], info["host_key_sha256"])
        self.assertTrue(info["host_key_sha256"].startswith("SHA256:"))

    def test_shims_first_on_path_and_node_paths_exist(self):
        result = self.lab.ssh("dc1", "command -v qm vzdump qmrestore pct pvesh; ls -d /etc/pve/nodes/dc1/qemu-server /var/lib/vz/dump")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.split()
        self.assertTrue(all(p.startswith(os.path.join(os.path.dirname(LAB_PY), "shims")) for p in lines[:5]))

    def test_hosts_have_separate_dump_dirs(self):
        src = os.path.join(self.lab.tmp, "marker.txt")
        with open(src, "w") as f:
            f.write("dc1 only\n")
        subprocess.run(["rsync", "-e", self.lab.rsync_rsh("dc1"), src,
                        f"root@127.0.0.1:/var/lib/vz/dump/"], check=True)
        self.assertIn("marker.txt", self.lab.dump_files("dc1"))
        self.assertNotIn("marker.txt", self.lab.dump_files("drc1"))
        self.assertEqual(self.lab.ssh("drc1", "ls /var/lib/vz/dump").stdout, "")
        self.assertEqual(self.lab.ssh("dc1", "cat /var/lib/vz/dump/marker.txt").stdout, "dc1 only\n")

    def test_wrong_key_is_refused(self):
        other = os.path.join(self.lab.tmp, "other_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
        argv = self.lab.ssh_argv("dc1")
        argv[argv.index(self.lab.key)] = other
        self.assertEqual(subprocess.run(argv + ["true"], capture_output=True).returncode, 255)

    def test_subcommands(self):
        root = self.lab.root("dc1")
        paths = self.lab.create_vm("dc1", 150, "--name", "sub01", "--disk-size", "2M", "--disks", "2").split()
        self.assertEqual(len(paths), 2)
        self.assertEqual(os.path.getsize(paths[0]), 2 << 20)
        self.assertEqual(self.lab.disk_path("dc1", 150, "scsi1"), paths[1])
        self.assertEqual(self.lab.vm_status("dc1", 150), "stopped")
        self.assertEqual(self.lab.vm_status("dc1", 151), "missing")
        self.lab.create_vm("dc1", 151, "--disk-size", "1M", "--running")
        self.assertEqual(self.lab.vm_status("dc1", 151), "running")
        self.assertEqual(self.lab.ssh("dc1", "qm status 151").stdout, "status: running\n")
        # same seed, same data: tests can predict disk contents
        self.lab.create_vm("dc1", 152, "--disk-size", "1M", "--seed", "151")
        with open(self.lab.disk_path("dc1", 151), "rb") as a, open(self.lab.disk_path("dc1", 152), "rb") as b:
            self.assertEqual(a.read(), b.read())
        bad = subprocess.run([PYTHON, LAB_PY, "create-vm", "--root", root, "--node", "dc1", "--vmid", "99"],
                             capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)
        for vmid in (150, 151, 152):
            self.lab.ssh("dc1", f"qm stop {vmid}; qm destroy {vmid}")

    def test_create_vm_is_fast_for_large_disks(self):
        started = time.monotonic()
        self.lab.create_vm("drc1", 160, "--disk-size", "256M")
        self.assertLess(time.monotonic() - started, 5)
        self.lab.ssh("drc1", "qm destroy 160")


class Shutdown(unittest.TestCase):
    def _ports(self, lab):
        return [(h["address"], h[k]) for h in lab.hosts.values() for k in ("ssh_port", "api_port")]

    def test_stdin_eof_stops_everything(self):
        lab = Lab("solo")
        ports = self._ports(lab)
        self.assertTrue(all(port_open(*p) for p in ports))
        session = lab.ssh_popen("solo", "sleep 600")  # a session must not outlive the lab
        wait_for(lambda: "sleep 600" in subprocess.run(["ps", "ax"], capture_output=True, text=True).stdout)
        lab.proc.stdin.close()
        self.assertEqual(lab.proc.wait(timeout=60), 0)
        self.assertFalse(any(port_open(*p) for p in ports))
        session.communicate(timeout=10)
        wait_for(lambda: "sleep 600" not in subprocess.run(["ps", "ax"], capture_output=True, text=True).stdout)
        lab.close()

    def test_sigterm_stops_everything(self):
        lab = Lab("solo")
        ports = self._ports(lab)
        lab.proc.send_signal(signal.SIGTERM)
        self.assertEqual(lab.proc.wait(timeout=60), 0)
        self.assertFalse(any(port_open(*p) for p in ports))
        lab.close()

    def test_killed_supervisor_takes_its_hosts_along(self):
        lab = Lab("solo")
        ports = self._ports(lab)
        lab.proc.kill()
        lab.proc.wait(timeout=10)
        wait_for(lambda: not any(port_open(*p) for p in ports))
        lab.close()

    def test_rejects_non_loopback_address(self):
        result = subprocess.run([PYTHON, LAB_PY, "run", "--dir", "/tmp/x", "--authorized-key", "/dev/null",
                                 "--host", "dc1:10.0.0.1"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertNotEqual(result.returncode, 0)


if __name__ == "__main__":
    unittest.main()
