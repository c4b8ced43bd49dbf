"""Streaming transfers: `vzdump <vmid> --stdout 1` (archive on stdout, log on
stderr, nothing but the guest's .log in the dump dir), `--fleecing`, a reader
that stops or goes away, and `qmrestore - <vmid>` reading the archive from
stdin."""
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time
import unittest

from labfixture import Lab, sha256_file, wait_for

MAGIC = {"zstd": b"\x28\xb5\x2f\xfd", "gzip": b"\x1f\x8b", "lzo": b"\x89LZO"}
DECOMPRESS = {"zstd": ["zstd", "-q", "-d", "-c"], "gzip": ["zcat"], "lzo": ["lzop", "-d", "-c"]}

lab = None


def setUpModule():
    global lab
    lab = Lab("dc1")
    lab.create_vm("dc1", 100, "--name", "web01", "--disk-size", "8M")
    lab.create_vm("dc1", 102, "--name", "big", "--disk-size", "32M")


def tearDownModule():
    lab.close()


def clear_dump_dir():
    for name in lab.dump_files("dc1"):
        path = os.path.join(lab.hosts["dc1"]["dump_dir_real"], name)
        if os.path.isdir(path):
            os.rmdir(path)
        else:
            os.unlink(path)


def ssh_bytes(command, stdin=None):
    """Run over ssh; stdout as bytes, stderr as text."""
    result = subprocess.run(lab.ssh_argv("dc1") + [command], stdin=stdin, capture_output=True, timeout=120)
    return result.returncode, result.stdout, result.stderr.decode()


def decompress(data, compress):
    if compress not in DECOMPRESS:
        return data
    return subprocess.run(DECOMPRESS[compress], input=data, capture_output=True, check=True).stdout


def members(raw):
    """[(name, size, sha-or-json)] of an uncompressed archive."""
    found = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r|") as tar:
        for member in tar:
            data = tar.extractfile(member).read()
            found.append((member.name, member.size, data))
    return found


def disk_bytes(vmid):
    with open(lab.disk_path("dc1", vmid), "rb") as f:
        return f.read()


def conf(vmid):
    with open(os.path.join(lab.root("dc1"), f"etc/pve/nodes/dc1/qemu-server/{vmid}.conf")) as f:
        return f.read()


def vzdump_processes():
    ps = subprocess.run(["ps", "ax", "-o", "args="], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if "shims/vzdump" in line or line.startswith("zstd -q -c")]


class StdoutArchive(unittest.TestCase):
    def setUp(self):
        clear_dump_dir()

    def test_same_container_as_a_file_archive(self):
        for compress in ("zstd", None):
            opt = f" --compress {compress}" if compress else ""
            code, streamed, log = ssh_bytes(f"vzdump 100 --stdout 1{opt}")
            self.assertEqual(code, 0, log)
            if compress:
                self.assertTrue(streamed.startswith(MAGIC[compress]), streamed[:8])
            code, _, _ = ssh_bytes(f"vzdump 100 --dumpdir /var/lib/vz/dump{opt}")
            self.assertEqual(code, 0)
            [archive] = [f for f in lab.dump_files("dc1") if re.search(r"\.vma(\.\w+)?$", f)]
            with open(os.path.join(lab.hosts["dc1"]["dump_dir_real"], archive), "rb") as f:
                from_file = f.read()
            stream_members, file_members = members(decompress(streamed, compress)), members(
                decompress(from_file, compress))
            # same members, sizes and disk bytes; the manifest differs only in ctime
            self.assertEqual([(n, s) for n, s, _ in stream_members], [(n, s) for n, s, _ in file_members])
            self.assertEqual([m[0] for m in stream_members], ["vma-sim.json", "qemu-server.conf", "drive-scsi0"])
            manifest = json.loads(stream_members[0][2])
            self.assertEqual((manifest["format"], manifest["vmid"]), ("pvesim-vma", 100))
            self.assertEqual(stream_members[2][2], file_members[2][2])
            self.assertEqual(stream_members[2][2], disk_bytes(100))
            clear_dump_dir()
        for compress in ("gzip", "lzo"):  # the same compressors as the file mode
            code, streamed, log = ssh_bytes(f"vzdump 100 --stdout 1 --compress {compress}")
            self.assertEqual(code, 0, log)
            self.assertTrue(streamed.startswith(MAGIC[compress]), streamed[:8])
            self.assertEqual(members(decompress(streamed, compress))[2][2], disk_bytes(100))

    def test_log_on_stderr_and_no_archive_in_the_dump_dir(self):
        code, streamed, log = ssh_bytes("vzdump 100 --stdout 1 --compress zstd --mode snapshot")
        self.assertEqual(code, 0, log)
        self.assertTrue(streamed.startswith(MAGIC["zstd"]))
        self.assertNotIn(b"INFO:", streamed)
        lines = log.splitlines()
        self.assertEqual(lines[0], "INFO: starting new backup job: vzdump 100 --compress zstd --mode snapshot")
        self.assertIn("INFO: sending archive to stdout", lines)
        self.assertFalse([line for line in lines if "creating vzdump archive" in line or "file size" in line])
        self.assertLess(lines.index("INFO: sending archive to stdout"),
                        lines.index("INFO: starting kvm to execute backup task"))
        self.assertIn("INFO: 100% (8.0 MiB of 8.0 MiB)", log)
        self.assertEqual(lines[-1], "INFO: Backup job finished successfully")
        # as in PVE, only the guest's log is left in the dump dir (no archive, .dat or .tmp)
        [name] = lab.dump_files("dc1")
        self.assertRegex(name, r"^vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.log$")
        self.assertNotIn("lock", conf(100))

    def test_refusals(self):
        for command, message in (
                ("vzdump 100 102 --stdout 1", "you can only backup a single VM with option --stdout\n"),
                ("vzdump 100 --stdout 1 --storage local",
                 "cannot use options 'storage' and 'stdout' at the same time\n")):
            code, streamed, log = ssh_bytes(command)
            self.assertEqual((code, streamed, log), (255, b"", message), command)
        self.assertEqual(lab.dump_files("dc1"), [])

    def test_fleecing(self):
        lvm = os.path.join(lab.root("dc1"), "var/lib/sim-lvm")
        code, streamed, log = ssh_bytes("vzdump 100 --stdout 1 --fleecing enabled=1,storage=local-lvm")
        self.assertEqual(code, 0, log)
        self.assertIn("INFO: drive-scsi0: attaching fleecing image local-lvm:vm-100-fleece-0 to QEMU\n", log)
        self.assertLess(log.index("attaching fleecing image"), log.index("started backup task"))
        self.assertEqual(members(streamed)[2][2], disk_bytes(100))
        self.assertFalse([f for f in os.listdir(lvm) if "fleece" in f])  # removed after the backup
        code, _, log = ssh_bytes("vzdump 100 --stdout 1 --fleecing 1,storage=local > /dev/null")
        self.assertEqual(code, 0, log)
        self.assertIn("INFO: drive-scsi0: attaching fleecing image local:100/vm-100-fleece-0.qcow2 to QEMU\n", log)
        code, _, log = ssh_bytes("vzdump 100 --stdout 1 --fleecing enabled=0 > /dev/null")
        self.assertEqual(code, 0, log)
        self.assertNotIn("fleecing image", log)
        for option, error in (("enabled=1,storage=nope", "storage 'nope' does not exist"),
                              ("enabled=1", "internal error - no fleecing storage specified")):
            code, streamed, log = ssh_bytes(f"vzdump 100 --stdout 1 --fleecing {option}")
            self.assertEqual((code, streamed), (255, b""), log)
            self.assertIn(f"ERROR: Backup of VM 100 failed - {error}\n", log)
            self.assertTrue(log.endswith("INFO: Backup job finished with errors\njob errors\n"), log)
            self.assertNotIn("lock", conf(100))
        code, _, log = ssh_bytes("vzdump 100 --stdout 1 --fleecing enabled=1,colour=red")
        self.assertEqual(code, 255)
        self.assertTrue(log.startswith("400 Parameter verification failed.\nfleecing: invalid format"), log)
        # the lab backs up no containers: a CT fails, fleecing or not
        ct_conf = os.path.join(lab.root("dc1"), "etc/pve/nodes/dc1/lxc/200.conf")
        with open(ct_conf, "w") as f:
            f.write("hostname: ct200\nrootfs: local-lvm:vm-200-disk-0,size=1G\nostype: debian\nmemory: 512\n")
        try:
            code, streamed, log = ssh_bytes("vzdump 200 --stdout 1 --fleecing enabled=1,storage=local-lvm")
            self.assertEqual((code, streamed), (255, b""), log)
        finally:
            os.unlink(ct_conf)

    def test_reader_going_away_ends_the_job(self):
        for compress in ("0", "zstd"):
            lab.hook("dc1", "vzdump-slow", str(16 << 20))
            pipeline = " ".join(lab.ssh_argv("dc1")) + f" 'vzdump 102 --stdout 1 --compress {compress}'"
            result = subprocess.run(pipeline + " | head -c 65536 > /dev/null", shell=True,
                                    capture_output=True, text=True, timeout=60)
            self.assertIn("INFO: sending archive to stdout", result.stderr)
            self.assertNotIn("Backup job finished successfully", result.stderr)
            wait_for(lambda: not vzdump_processes(), timeout=15)
            self.assertNotIn("lock", conf(102))
            [log] = lab.dump_files("dc1")  # no .tmp dir, no partial archive
            with open(os.path.join(lab.hosts["dc1"]["dump_dir_real"], log)) as f:
                self.assertIn("ERROR: Backup of VM 102 failed - interrupted by signal", f.read())
            # the global lock was released
            code, _, log = ssh_bytes("vzdump 100 --stdout 1 --lockwait 0 > /dev/null")
            self.assertEqual(code, 0, log)
            clear_dump_dir()

    def test_reader_that_stops_reading_blocks_the_job(self):
        proc = subprocess.Popen(lab.ssh_argv("dc1") + ["vzdump 102 --stdout 1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.stderr.close)
        log = []
        reader = threading.Thread(target=lambda: log.append(proc.stderr.read().decode()))
        reader.start()
        # Nobody reads stdout: the buffers fill up and vzdump waits. This asserts
        # that nothing happens, so it waits a fixed half second: the disk is
        # read at hundreds of MiB/s, and a vzdump that did not wait would be
        # long done by then.
        time.sleep(0.5)
        self.assertIsNone(proc.poll())
        self.assertTrue(vzdump_processes())
        data = proc.stdout.read()  # now read everything: it finishes
        self.assertEqual(proc.wait(timeout=30), 0)
        reader.join()
        self.assertIn("INFO: Backup job finished successfully", log[0])
        self.assertEqual(members(data)[2][2], disk_bytes(102))


class RestoreFromStdin(unittest.TestCase):
    def test_round_trip(self):
        pipeline = (" ".join(lab.ssh_argv("dc1")) + " 'vzdump 100 --stdout 1 --compress zstd'"
                    " | zstd -q -d -c | " + " ".join(lab.ssh_argv("dc1"))
                    + " 'qmrestore - 300 --storage local --unique 1'")
        result = subprocess.run(pipeline, shell=True, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertRegex(lines[0], r"^restore vma archive: vma extract -v -r "
                                   r"/var/tmp/vzdumptmp(\d+)\.fifo - /var/tmp/vzdumptmp\1$")
        self.assertIn("DEV: dev_id=1 size: 8388608 devname: drive-scsi0", lines)
        self.assertIn("progress 100% (read 8388608 bytes, duration 0 sec)", lines)
        self.assertEqual(lines[-1], "rescan volumes...")
        self.assertEqual(sha256_file(lab.disk_path("dc1", 300)), sha256_file(lab.disk_path("dc1", 100)))
        self.assertIn("scsi0: local:300/vm-300-disk-0.raw", conf(300))
        # --force over the restored VM, this time with the archive from a file
        code, streamed, _ = ssh_bytes("vzdump 100 --stdout 1")
        self.assertEqual(code, 0)
        result = subprocess.run(lab.ssh_argv("dc1") + ["qmrestore - 300 --force 1"], input=streamed,
                                capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sha256_file(lab.disk_path("dc1", 300)), sha256_file(lab.disk_path("dc1", 100)))
        # without --force the VMID is taken; a compressed stream is not a VMA
        result = subprocess.run(lab.ssh_argv("dc1") + ["qmrestore - 300"], input=streamed, capture_output=True)
        self.assertEqual((result.returncode, result.stderr),
                         (255, b"unable to restore VM 300 - VM 300 already exists on node 'dc1'\n"))
        compressed = subprocess.run(["zstd", "-q", "-c"], input=streamed, capture_output=True).stdout
        result = subprocess.run(lab.ssh_argv("dc1") + ["qmrestore - 301"], input=compressed, capture_output=True)
        self.assertEqual(result.returncode, 255)
        self.assertIn(b"archive '-' is not a valid backup archive", result.stderr)
        clear_dump_dir()


if __name__ == "__main__":
    unittest.main()
