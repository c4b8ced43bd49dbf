"""scripts/backup.sh and scripts/restore.sh against two lab hosts."""
import os
import subprocess
import tempfile
import unittest

from labfixture import REPO, Lab, sha256_file

BACKUP = os.path.join(REPO, "scripts", "backup.sh")
RESTORE = os.path.join(REPO, "scripts", "restore.sh")

lab = None


def setUpModule():
    global lab
    lab = Lab()
    lab.create_vm("dc1", 100, "--name", "web01", "--disk-size", "8M")


def tearDownModule():
    lab.close()


def run(script, *args):
    return subprocess.run([script, *map(str, args)], capture_output=True, text=True, timeout=120)


def common(host):
    info = lab.hosts[host]
    return ["--host", info["address"], "--port", info["ssh_port"],
            "--identity", lab.key, "--known-hosts", lab.known_hosts]


class BackupAndRestore(unittest.TestCase):
    def test_dc_to_drc_round_trip(self):
        with tempfile.TemporaryDirectory() as dest:
            backup = run(BACKUP, *common("dc1"), "--vmid", 100, "--dest", dest, "--compress", "zstd")
            self.assertEqual(backup.returncode, 0, backup.stderr)
            archive = backup.stdout.strip()
            name = os.path.basename(archive)
            self.assertEqual(os.path.dirname(archive), dest)
            self.assertRegex(name, r"^vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$")
            self.assertEqual(sorted(os.listdir(dest)), [name, name + ".sha256"])
            with open(archive + ".sha256") as f:
                self.assertEqual(f.read(), f"{sha256_file(archive)}  {name}\n")
            self.assertNotIn(name, lab.dump_files("dc1"))  # source copy removed

            first = run(RESTORE, *common("drc1"), "--archive", archive, "--vmid", 300)
            self.assertEqual(first.returncode, 0, first.stderr)
            self.assertEqual(lab.vm_status("drc1", 300), "running")
            self.assertEqual(sha256_file(lab.disk_path("drc1", 300)), sha256_file(lab.disk_path("dc1", 100)))
            self.assertEqual(lab.dump_files("drc1"), [])

            # second time the replica exists and runs: stopped, restored with --force, started
            second = run(RESTORE, *common("drc1"), "--archive", archive, "--vmid", 300)
            self.assertEqual(second.returncode, 0, second.stderr)
            self.assertIn("restoring with --force", second.stderr)
            self.assertEqual(lab.vm_status("drc1", 300), "running")
            self.assertEqual(sha256_file(lab.disk_path("drc1", 300)), sha256_file(lab.disk_path("dc1", 100)))

    def test_corrupt_local_archive_is_refused(self):
        with tempfile.TemporaryDirectory() as dest:
            archive = run(BACKUP, *common("dc1"), "--vmid", 100, "--dest", dest).stdout.strip()
            with open(archive, "r+b") as f:
                f.seek(100)
                f.write(b"corrupt")
            result = run(RESTORE, *common("drc1"), "--archive", archive, "--vmid", 301)
            self.assertEqual(result.returncode, 5)
            self.assertEqual(lab.vm_status("drc1", 301), "missing")

    def test_failed_vzdump_and_unknown_host_key(self):
        with tempfile.TemporaryDirectory() as dest:
            missing = run(BACKUP, *common("dc1"), "--vmid", 555, "--dest", dest)
            self.assertEqual(missing.returncode, 4)
            self.assertIn("vzdump of VM 555 failed", missing.stderr)
            empty = os.path.join(dest, "empty_known_hosts")
            open(empty, "w").close()
            args = common("dc1")
            args[args.index(lab.known_hosts)] = empty
            strict = run(BACKUP, *args, "--vmid", 100, "--dest", dest)
            self.assertEqual(strict.returncode, 3)
            self.assertIn("Host key verification failed", strict.stderr)
            self.assertEqual(os.listdir(dest), ["empty_known_hosts"])


class BadArguments(unittest.TestCase):
    """Invalid input exits 2 before anything is contacted (port 9 has no listener)."""

    def assert_refused(self, script, args, fragment):
        result = run(script, *args)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(fragment, result.stderr)
        self.assertEqual(result.stdout, "")

    def test_backup_arguments(self):
        base = ["--port", 9, "--identity", lab.key, "--known-hosts", lab.known_hosts, "--dest", lab.tmp]
        self.assert_refused(BACKUP, base + ["--host", "127.0.0.1", "--vmid", "99"], "invalid --vmid '99'")
        self.assert_refused(BACKUP, base + ["--host", "127.0.0.1", "--vmid", "100; rm -rf /"], "invalid --vmid")
        self.assert_refused(BACKUP, base + ["--host", "$(reboot)", "--vmid", "100"], "invalid --host '$(reboot)'")
        self.assert_refused(BACKUP, base + ["--host", "127.0.0.1", "--vmid", "100", "--compress", "xz"],
                            "invalid --compress")
        self.assert_refused(BACKUP, base + ["--host", "127.0.0.1", "--vmid", "100", "--mode", "live"],
                            "invalid --mode")
        self.assert_refused(BACKUP, base + ["--host", "127.0.0.1", "--vmid", "100", "--dump-dir", "/x/../etc"],
                            "invalid --dump-dir")
        self.assert_refused(BACKUP, base + ["--host", "127.0.0.1", "--vmid", "100", "--bogus"], "unknown argument")

    def test_restore_arguments(self):
        base = ["--port", 9, "--identity", lab.key, "--known-hosts", lab.known_hosts]
        good = os.path.join(lab.tmp, "vzdump-qemu-100-2026_01_01-00_00_00.vma.zst")
        open(good, "w").close()
        bad = os.path.join(lab.tmp, "backup;reboot.vma")
        open(bad, "w").close()
        self.assert_refused(RESTORE, base + ["--host", "127.0.0.1", "--vmid", "99", "--archive", good],
                            "invalid --vmid '99'")
        self.assert_refused(RESTORE, base + ["--host", "$(reboot)", "--vmid", "100", "--archive", good],
                            "invalid --host")
        self.assert_refused(RESTORE, base + ["--host", "127.0.0.1", "--vmid", "100", "--archive", bad],
                            "invalid --archive name")
        self.assert_refused(RESTORE, base + ["--host", "127.0.0.1", "--vmid", "100", "--archive", good,
                                             "--storage", "x y"], "invalid --storage")
        self.assert_refused(RESTORE, ["--port", "70000", "--host", "h", "--vmid", "100"], "invalid --port")

    def test_help(self):
        for script in (BACKUP, RESTORE):
            result = run(script, "--help")
            self.assertEqual(result.returncode, 0)
            self.assertIn("Exit codes:", result.stdout)


if __name__ == "__main__":
    unittest.main()
