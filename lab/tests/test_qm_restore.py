"""qm and qmrestore over real ssh: exact texts, refusals, byte-identical restores."""
import os
import re
import unittest

from labfixture import Lab, sha256_file

lab = None
archive = None  # a zstd backup of dc1's VM 100, copied into drc1's dump dir


def setUpModule():
    global lab, archive
    lab = Lab()
    lab.create_vm("dc1", 100, "--name", "web01", "--disk-size", "8M")
    result = lab.ssh("dc1", "vzdump 100 --compress zstd")
    assert result.returncode == 0, result.stderr
    path = re.search(r"creating vzdump archive '(.*)'", result.stdout).group(1)
    archive = os.path.basename(path)
    with open(os.path.join(lab.hosts["dc1"]["dump_dir_real"], archive), "rb") as src, \
            open(os.path.join(lab.hosts["drc1"]["dump_dir_real"], archive), "wb") as dst:
        dst.write(src.read())


def tearDownModule():
    lab.close()


class QmList(unittest.TestCase):
    def test_empty_node_prints_nothing(self):
        result = lab.ssh("drc1", "qm list")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""))

    def test_columns_and_trailing_spaces(self):
        lab.create_vm("dc1", 1000, "--name", "a-very-long-name-beyond-20", "--disk-size", "1M",
                      "--memory", "4096", "--running")
        lab.create_vm("dc1", 120, "--disk-size", "1M")
        try:
            lines = lab.ssh("dc1", "qm list").stdout.split("\n")
            self.assertEqual(lines[0], "      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID       ")
            self.assertEqual(lines[1], "       100 web01                stopped    2048               0.01 0         ")
            self.assertEqual(lines[2], "       120 vm120                stopped    2048               0.00 0         ")
            self.assertRegex(lines[3], r"^      1000 a-very-long-name-beyond-20 running    4096 {15}0\.00 \d+ +$")
            self.assertEqual(lines[4:], [""])
        finally:
            lab.ssh("dc1", "qm stop 1000; qm destroy 1000; qm destroy 120")


class QmCommands(unittest.TestCase):
    def test_status_and_missing_vm_texts(self):
        self.assertEqual(lab.ssh("dc1", "qm status 100").stdout, "status: stopped\n")
        missing = lab.ssh("dc1", "qm status 999")
        self.assertNotEqual(missing.returncode, 0)
        self.assertEqual(missing.stdout, "")
        self.assertEqual(missing.stderr, "Configuration file 'nodes/dc1/qemu-server/999.conf' does not exist\n")
        for cmd in ("start", "config", "destroy"):
            self.assertEqual(lab.ssh("dc1", f"qm {cmd} 999").stderr,
                             "Configuration file 'nodes/dc1/qemu-server/999.conf' does not exist\n")
        for cmd in ("stop", "shutdown"):
            result = lab.ssh("dc1", f"qm {cmd} 999")
            self.assertEqual((result.returncode, result.stderr),
                             (255, "unable to find configuration file for VM 999 on node 'dc1'\n"))

    def test_parameter_errors(self):
        result = lab.ssh("dc1", "qm status abc")
        self.assertEqual(result.stderr, "400 Parameter verification failed.\n"
                                        "vmid: type check ('integer') failed - got 'abc'\nqm status <vmid> [OPTIONS]\n")
        self.assertIn("vmid: value does not look like a valid VM ID", lab.ssh("dc1", "qm status 99").stderr)

    def test_power_cycle(self):
        lab.create_vm("dc1", 130, "--disk-size", "1M")
        self.assertEqual(lab.ssh("dc1", "qm start 130").returncode, 0)
        self.assertEqual(lab.ssh("dc1", "qm status 130").stdout, "status: running\n")
        again = lab.ssh("dc1", "qm start 130")
        self.assertEqual((again.returncode, again.stderr), (255, "VM 130 already running\n"))
        destroy = lab.ssh("dc1", "qm destroy 130")
        self.assertEqual(destroy.stderr, "VM 130 is running - destroy failed\n")
        self.assertEqual(lab.ssh("dc1", "qm shutdown 130").returncode, 0)
        stopped = lab.ssh("dc1", "qm shutdown 130")
        self.assertEqual((stopped.returncode, stopped.stderr), (0, "VM 130 not running\n"))
        self.assertEqual(lab.ssh("dc1", "qm stop 130").returncode, 0)
        self.assertEqual(lab.ssh("dc1", "qm destroy 130").returncode, 0)
        self.assertEqual(lab.vm_status("dc1", 130), "missing")

    def test_config_sorted(self):
        lines = lab.ssh("dc1", "qm config 100").stdout.splitlines()
        self.assertEqual(lines, sorted(lines))
        self.assertIn("scsi0: local-lvm:vm-100-disk-0,iothread=1,size=8M", lines)


class QmRestore(unittest.TestCase):
    def tearDown(self):
        for vmid in (200, 201, 202):
            lab.ssh("drc1", f"qm stop {vmid}; qm destroy {vmid}")
        # a failed restore leaves unreferenced volumes behind, as on PVE
        lab.ssh("drc1", "rm -rf /var/lib/sim-lvm/vm-20?-disk-* /var/lib/vz/images/20?")

    def restore(self, vmid, *opts):
        return lab.ssh("drc1", f"qmrestore /var/lib/vz/dump/{archive} {vmid} {' '.join(opts)}")

    def test_restore_is_byte_identical(self):
        result = self.restore(200)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], f"restore vma archive: zstd -q -d -c /var/lib/vz/dump/{archive} | "
                         f"vma extract -v -r {lines[0].split()[-3]} - {lines[0].split()[-1]}")
        self.assertRegex(lines[1], r"^CFG: size: \d+ name: qemu-server\.conf$")
        self.assertEqual(lines[2], "DEV: dev_id=1 size: 8388608 devname: drive-scsi0")
        self.assertIn("new volume ID is 'local-lvm:vm-200-disk-0'", lines)
        self.assertTrue(all(re.fullmatch(r"progress \d+% \(read \d+ bytes, duration \d+ sec\)", l)
                            for l in lines if l.startswith("progress")))
        self.assertIn("progress 100% (read 8388608 bytes, duration 0 sec)", lines)
        self.assertRegex(result.stdout, r"total bytes read 8388608, sparse bytes \d+ \(\d+(\.\d+)?%\)")
        self.assertEqual(lines[-1], "rescan volumes...")
        self.assertEqual(sha256_file(lab.disk_path("drc1", 200)), sha256_file(lab.disk_path("dc1", 100)))
        config = lab.ssh("drc1", "qm config 200").stdout
        self.assertIn("name: web01", config)
        self.assertIn("scsi0: local-lvm:vm-200-disk-0,iothread=1,size=8M", config)

    def test_volid_archive_and_start(self):
        result = self.restore(201, "--storage", "local", "--start", "1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines()[-1], "Execute autostart")
        self.assertEqual(lab.vm_status("drc1", 201), "running")
        self.assertTrue(lab.disk_path("drc1", 201).endswith("/var/lib/vz/images/201/vm-201-disk-0.raw"))
        by_volid = lab.ssh("drc1", f"qmrestore local:backup/{archive} 202")
        self.assertEqual(by_volid.returncode, 0, by_volid.stderr)

    def test_refuses_existing_vm_without_force(self):
        lab.create_vm("drc1", 200, "--name", "old", "--disk-size", "1M")
        before = sha256_file(lab.disk_path("drc1", 200))
        result = self.restore(200)
        self.assertEqual(result.returncode, 255)
        self.assertEqual(result.stderr, "unable to restore VM 200 - VM 200 already exists on node 'drc1'\n")
        self.assertEqual(result.stdout, "")
        self.assertEqual(sha256_file(lab.disk_path("drc1", 200)), before)

    def test_refuses_running_vm_with_force(self):
        lab.create_vm("drc1", 200, "--disk-size", "1M", "--running")
        result = self.restore(200, "--force", "1")
        self.assertEqual((result.returncode, result.stderr), (255, "unable to restore VM 200 - vm is running\n"))
        self.assertEqual(lab.vm_status("drc1", 200), "running")

    def test_force_replaces_stopped_vm(self):
        lab.create_vm("drc1", 200, "--name", "old", "--disk-size", "1M", "--disks", "2")
        result = self.restore(200, "--force", "1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sha256_file(lab.disk_path("drc1", 200)), sha256_file(lab.disk_path("dc1", 100)))
        config = lab.ssh("drc1", "qm config 200").stdout
        self.assertIn("unused0: local-lvm:vm-200-disk-1", config)  # old disk not in the backup

    def test_bare_force_swallows_the_archive(self):
        result = lab.ssh("drc1", f"qmrestore --force /var/lib/vz/dump/{archive} 200")
        self.assertEqual((result.returncode, result.stderr), (255, "unable to parse boolean option\n"))

    def test_archive_errors(self):
        missing = lab.ssh("drc1", "qmrestore /var/lib/vz/dump/vzdump-qemu-100-2020_01_01-00_00_00.vma 200")
        self.assertEqual(missing.stderr, "can't find file '/var/lib/vz/dump/vzdump-qemu-100-2020_01_01-00_00_00.vma'\n")
        lab.ssh("drc1", f"cp /var/lib/vz/dump/{archive} /var/lib/vz/dump/odd.vma.zst")
        odd = lab.ssh("drc1", "qmrestore /var/lib/vz/dump/odd.vma.zst 200")
        self.assertEqual((odd.returncode, odd.stderr),
                         (255, "ERROR: couldn't determine archive info from '/var/lib/vz/dump/odd.vma.zst'\n"))

    def test_chatter_hook_prints_before_the_copy(self):
        lab.hook("drc1", "qmrestore-chatter", "3000")
        result = self.restore(200)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        chatter = [n for n, l in enumerate(lines) if l.startswith("vma extract says: ")]
        self.assertGreaterEqual(sum(len(lines[n].encode()) + 1 for n in chatter), 3000)
        first_progress = next(n for n, l in enumerate(lines) if l.startswith("progress "))
        self.assertLess(max(chatter), first_progress)
        self.assertEqual(sha256_file(lab.disk_path("drc1", 200)), sha256_file(lab.disk_path("dc1", 100)))

    def test_fail_hook_leaves_vm_broken(self):
        lab.create_vm("drc1", 200, "--name", "old", "--disk-size", "8M", "--seed", "7")
        old_disk = sha256_file(lab.disk_path("drc1", 200))
        lab.hook("drc1", "qmrestore-fail", "command 'vma extract' failed: exit code 133")
        result = self.restore(200, "--force", "1")
        self.assertEqual(result.returncode, 255)
        self.assertEqual(result.stderr, "command 'vma extract' failed: exit code 133\n")
        self.assertIn("error before or during data restore, some or all disks were not completely "
                      "restored. VM 200 state is NOT cleaned up.", result.stdout)
        self.assertEqual(lab.ssh("drc1", "qm config 200").stdout, "")  # config left without disks
        disk = os.path.join(lab.root("drc1"), "var/lib/sim-lvm/vm-200-disk-0.raw")
        self.assertNotEqual(sha256_file(disk), old_disk)  # the old replica is gone
        self.assertEqual(self.restore(200, "--force", "1").returncode, 0)  # hook was one-shot


if __name__ == "__main__":
    unittest.main()
