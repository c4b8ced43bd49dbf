"""vzdump over real ssh: names, files, output lines, locks and hooks."""
import os
import re
import subprocess
import unittest

from labfixture import Lab, wait_for

PROGRESS_RE = re.compile(
    r"^INFO: +\d{1,3}% \(\d+\.\d (B|KiB|MiB|GiB|TiB) of \d+\.\d (B|KiB|MiB|GiB|TiB)\) "
    r"in (\d+h )?(\d+m )?\d+s, read: (0 B|\d+\.\d (B|KiB|MiB|GiB|TiB))/s, "
    r"write: (0 B|\d+\.\d (B|KiB|MiB|GiB|TiB))/s$")
ARCHIVE_RE = r"^INFO: creating vzdump archive '(/var/lib/vz/dump/vzdump-qemu-{vmid}-\d{{4}}_\d\d_\d\d-\d\d_\d\d_\d\d{ext})'$"
MAGIC = {".zst": b"\x28\xb5\x2f\xfd", ".gz": b"\x1f\x8b", ".lzo": b"\x89LZO"}

lab = None


def setUpModule():
    global lab
    lab = Lab("dc1")
    lab.create_vm("dc1", 100, "--name", "web01", "--disk-size", "16M")
    lab.create_vm("dc1", 101, "--name", "db01", "--disk-size", "8M", "--running")


def tearDownModule():
    lab.close()


def archive_from(stdout, vmid, ext):
    match = re.search(ARCHIVE_RE.format(vmid=vmid, ext=re.escape(ext)), stdout, re.M)
    assert match, stdout
    return match.group(1)


class Compressors(unittest.TestCase):
    def backup(self, compress, ext):
        result = lab.ssh("dc1", f"vzdump 100 --dumpdir /var/lib/vz/dump --compress {compress} --mode snapshot")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        path = archive_from(result.stdout, 100, ext)
        name = os.path.basename(path)
        files = lab.dump_files("dc1")
        self.assertIn(name, files)
        base = name.split(".vma")[0]
        self.assertIn(base + ".log", files)
        self.assertFalse([f for f in files if f.endswith(".dat") or f.endswith(".tmp")], files)
        real = os.path.join(lab.hosts["dc1"]["dump_dir_real"], name)
        with open(real, "rb") as f:
            head = f.read(4)
        if ext in MAGIC:
            self.assertTrue(head.startswith(MAGIC[ext]), head)
        return result.stdout, real, base

    def test_zstd(self):
        self.backup("zstd", ".vma.zst")

    def test_lzo_and_1(self):
        self.backup("lzo", ".vma.lzo")
        self.backup("1", ".vma.lzo")

    def test_gzip(self):
        self.backup("gzip", ".vma.gz")

    def test_uncompressed_is_default(self):
        result = lab.ssh("dc1", "vzdump 100")
        self.assertEqual(result.returncode, 0, result.stderr)
        archive_from(result.stdout, 100, ".vma")

    def test_output_lines_and_log_file(self):
        stdout, _, base = self.backup("zstd", ".vma.zst")
        lines = stdout.splitlines()
        self.assertEqual(lines[0], "INFO: starting new backup job: vzdump 100 --dumpdir /var/lib/vz/dump "
                                   "--compress zstd --mode snapshot")
        expected_order = ["INFO: Starting Backup of VM 100 (qemu)", "INFO: status = stopped",
                          "INFO: backup mode: stop", "INFO: ionice priority: 7", "INFO: VM Name: web01",
                          "INFO: include disk 'scsi0' 'local-lvm:vm-100-disk-0' 16M",
                          "INFO: starting kvm to execute backup task", "INFO: stopping kvm after backup task",
                          "INFO: Backup job finished successfully"]
        positions = [lines.index(line) for line in expected_order]
        self.assertEqual(positions, sorted(positions))
        progress = [line for line in lines if re.match(r"^INFO: +\d+%", line)]
        self.assertGreaterEqual(len(progress), 4)
        for line in progress:
            self.assertRegex(line, PROGRESS_RE)
        self.assertTrue(progress[0].startswith("INFO:   0% (0.0 B of 16.0 MiB) in 0s, read: 0 B/s, write: 0 B/s"))
        self.assertTrue(progress[-1].startswith("INFO: 100% (16.0 MiB of 16.0 MiB)"))
        self.assertTrue(any(re.fullmatch(r"INFO: archive file size: \d+(KB|MB)", l) for l in lines))
        self.assertTrue(any(re.fullmatch(r"INFO: Finished Backup of VM 100 \(\d\d:\d\d:\d\d\)", l) for l in lines))
        with open(os.path.join(lab.hosts["dc1"]["dump_dir_real"], base + ".log")) as f:
            log = f.read().splitlines()
        self.assertRegex(log[0], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: Starting Backup of VM 100 \(qemu\)$")
        self.assertFalse(any("Backup started at" in l or "starting new backup job" in l for l in log))

    def test_running_vm_snapshot_mode(self):
        result = lab.ssh("dc1", "vzdump 101 --compress zstd")
        lines = result.stdout.splitlines()
        self.assertIn("INFO: status = running", lines)
        self.assertLess(lines.index("INFO: VM Name: db01"), lines.index("INFO: backup mode: snapshot"))
        self.assertNotIn("INFO: starting kvm to execute backup task", lines)

    def test_storage_local_and_errors(self):
        result = lab.ssh("dc1", "vzdump 100 --storage local --compress zstd")
        self.assertEqual(result.returncode, 0, result.stderr)
        archive_from(result.stdout, 100, ".vma.zst")
        both = lab.ssh("dc1", "vzdump 100 --storage local --dumpdir /var/lib/vz/dump")
        self.assertEqual(both.returncode, 255)
        self.assertIn("cannot use options 'storage' and 'dumpdir' at the same time", both.stderr)
        missing = lab.ssh("dc1", "vzdump 100 --dumpdir /nope/")
        self.assertEqual((missing.returncode, missing.stderr), (255, "dumpdir '/nope' does not exist\n"))
        bad = lab.ssh("dc1", "vzdump 100 --compress bzip")
        self.assertEqual(bad.returncode, 255)
        self.assertIn("400 Parameter verification failed.\ncompress: value 'bzip' does not have a value "
                      "in the enumeration '0, 1, gzip, lzo, zstd'", bad.stderr)

    def test_missing_vm(self):
        result = lab.ssh("dc1", "vzdump 999 --compress zstd")
        self.assertEqual(result.returncode, 255)
        self.assertEqual(result.stderr, "job errors\n")
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], "INFO: starting new backup job: vzdump 999 --compress zstd")
        self.assertEqual(lines[1], "ERROR: Backup of VM 999 failed - unable to find VM '999'")
        self.assertRegex(lines[2], r"^INFO: Failed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        self.assertEqual(lines[3], "INFO: Backup job finished with errors")
        self.assertFalse([f for f in lab.dump_files("dc1") if "-999-" in f])


class Hooks(unittest.TestCase):
    def conf(self, vmid):
        with open(os.path.join(lab.root("dc1"), f"etc/pve/nodes/dc1/qemu-server/{vmid}.conf")) as f:
            return f.read()

    def test_fail_hook_is_one_shot(self):
        lab.hook("dc1", "vzdump-fail", "read error on drive-scsi0")
        result = lab.ssh("dc1", "vzdump 100 --compress zstd")
        self.assertEqual(result.returncode, 255)
        self.assertEqual(result.stderr, "job errors\n")
        self.assertIn("ERROR: Backup of VM 100 failed - read error on drive-scsi0", result.stdout)
        self.assertIn("INFO: Backup job finished with errors", result.stdout)
        self.assertFalse([f for f in lab.dump_files("dc1") if f.endswith((".dat", ".tmp"))])
        self.assertNotIn("lock:", self.conf(100))
        self.assertEqual(lab.ssh("dc1", "vzdump 100 --compress zstd").returncode, 0)

    def test_hang_then_kill_cleans_up(self):
        lab.hook("dc1", "vzdump-hang")
        session = lab.ssh_popen("dc1", "vzdump 100 --compress zstd")
        wait_for(lambda: any(f.endswith(".vma.dat") for f in lab.dump_files("dc1")))
        wait_for(lambda: "lock: backup" in self.conf(100))
        session.kill()  # the client goes away, as when drswitch times out
        session.communicate()
        wait_for(lambda: "lock:" not in self.conf(100), timeout=10)
        wait_for(lambda: not [f for f in lab.dump_files("dc1") if f.endswith((".dat", ".tmp"))])
        self.assertEqual(lab.ssh("dc1", "vzdump 100 --compress zstd --lockwait 0").returncode, 0)

    def test_chatter_hook_prints_multibyte_lines_before_the_copy(self):
        lab.hook("dc1", "vzdump-chatter", "20000")
        result = subprocess.run(lab.ssh_argv("dc1") + ["vzdump 100 --compress zstd"],
                                capture_output=True, timeout=120)  # raw bytes, no decoding
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        lines = result.stdout.decode("utf-8").splitlines()  # strict: any broken sequence raises
        chatter = [l for l in lines if l.startswith("INFO: guest agent says: ")]
        self.assertGreaterEqual(sum(len(l.encode()) + 1 for l in chatter), 20000)
        self.assertLessEqual(max(len(l.encode()) for l in chatter), 320)
        self.assertGreater(len({len(l.encode()) for l in chatter}), 10)  # line ends all over
        widths = {len(ch.encode()) for l in chatter for ch in l}
        self.assertLessEqual({2, 3, 4}, widths)
        first_progress = next(n for n, l in enumerate(lines) if re.match(r"^INFO: +0%", l))
        self.assertLess(max(lines.index(l) for l in chatter), first_progress)
        self.assertIn(os.path.basename(archive_from(result.stdout.decode(), 100, ".vma.zst")),
                      lab.dump_files("dc1"))
        again = lab.ssh("dc1", "vzdump 100 --compress zstd")  # one-shot
        self.assertNotIn("guest agent says", again.stdout)

    def test_slow_hook_and_global_lock(self):
        lab.hook("dc1", "vzdump-slow", str(8 << 20))  # 16 MiB at 8 MiB/s: about 2 s
        first = lab.ssh_popen("dc1", "vzdump 100 --compress zstd")
        wait_for(lambda: "lock: backup" in self.conf(100))
        second = lab.ssh("dc1", "vzdump 101 --compress zstd")
        out, _ = first.communicate(timeout=60)
        self.assertEqual(first.returncode, 0)
        self.assertRegex(out, r"INFO: 100% \(16\.0 MiB of 16\.0 MiB\) in [2-4]s")
        self.assertEqual(second.returncode, 0, second.stderr)
        lines = second.stdout.splitlines()
        self.assertEqual(lines[:2], ["INFO: trying to get global lock - waiting...", "INFO: got global lock"])
        nowait = lab.ssh("dc1", "vzdump 100 --compress zstd")
        self.assertNotIn("global lock", nowait.stdout)


if __name__ == "__main__":
    unittest.main()
