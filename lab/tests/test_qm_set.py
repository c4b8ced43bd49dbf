"""qm set / pct set / pct config over real ssh: stored values, texts of refusals."""
import os
import re
import unittest

from labfixture import Lab

lab = None
USAGE = "qm set <vmid> [OPTIONS]\n"
CT_CONF = ("arch: amd64\nhostname: ct01\nmemory: 512\nostype: debian\n"
           "rootfs: local-lvm:vm-200-disk-0,size=8G\n")


def setUpModule():
    global lab
    lab = Lab("dc1")


def tearDownModule():
    lab.close()


def config_of(vmid, tool="qm"):
    result = lab.ssh("dc1", f"{tool} config {vmid}")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def conf_path(vmid, kind="qemu-server"):
    return os.path.join(lab.root("dc1"), f"etc/pve/nodes/dc1/{kind}/{vmid}.conf")


class QmSet(unittest.TestCase):
    def setUp(self):
        lab.create_vm("dc1", 100, "--name", "web01", "--disk-size", "1M")

    def tearDown(self):
        lab.ssh("dc1", "qm destroy 100 --skiplock 1")
        lab.ssh("dc1", "rm -f /var/lib/sim-lvm/vm-100-disk-*")

    def test_tags_are_stored_normalised_and_shown_by_config(self):
        result = lab.ssh("dc1", "qm set 100 --tags 'Prod,dr;web dr' --onboot yes")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertEqual(result.stdout, "update VM 100: -onboot 1 -tags Prod,dr;web dr\n")
        lines = config_of(100)
        self.assertIn("tags: dr;prod;web", lines)
        self.assertIn("onboot: 1", lines)
        self.assertEqual(lines, sorted(lines))

    def test_invalid_tag_is_refused(self):
        result = lab.ssh("dc1", "qm set 100 --tags 'ok,bad!tag'")
        self.assertEqual(result.returncode, 255)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.stderr, "400 Parameter verification failed.\n"
                                        "tags: invalid format - invalid characters in tag\n\n" + USAGE)
        self.assertFalse([l for l in config_of(100) if l.startswith("tags:")])

    def test_delete_removes_keys_and_keeps_disks_as_unused(self):
        self.assertEqual(lab.ssh("dc1", "qm set 100 --onboot 1").returncode, 0)
        result = lab.ssh("dc1", "qm set 100 --delete onboot,scsi0")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        lines = config_of(100)
        self.assertFalse([l for l in lines if l.startswith(("onboot:", "scsi0:"))], lines)
        self.assertIn("unused0: local-lvm:vm-100-disk-0", lines)
        self.assertIn("boot: order=net0", lines)
        again = lab.ssh("dc1", "qm set 100 --delete onboot")
        self.assertEqual((again.returncode, again.stderr),
                         (0, "cannot delete 'onboot' - not set in current configuration!\n"))
        unknown = lab.ssh("dc1", "qm set 100 --delete nosuchkey")
        self.assertEqual((unknown.returncode, unknown.stderr),
                         (255, "400 Parameter verification failed.\n"
                               "delete: unknown option 'nosuchkey'\n" + USAGE))

    def test_net0_is_stored_like_print_net(self):
        result = lab.ssh("dc1", "qm set 100 --net0 virtio=BC:24:11:AA:BB:CC,tag=20,bridge=vmbr1,link_down=1")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertIn("net0: virtio=BC:24:11:AA:BB:CC,bridge=vmbr1,link_down=1,tag=20", config_of(100))
        self.assertEqual(lab.ssh("dc1", "qm set 100 --net1 e1000,bridge=vmbr0").returncode, 0)
        self.assertTrue([l for l in config_of(100)
                         if re.fullmatch(r"net1: e1000=BC:24:11(:[0-9A-F]{2}){3},bridge=vmbr0", l)])
        bad = lab.ssh("dc1", "qm set 100 --net0 virtio,colour=blue")
        self.assertEqual((bad.returncode, bad.stderr),
                         (255, "400 Parameter verification failed.\nnet0: invalid format - "
                               "invalid key in comma-separated list property: colour\n\n" + USAGE))

    def test_name_and_description(self):
        result = lab.ssh("dc1", "qm set 100 --name db02 --description $'DR copy: eu\\nsecond line'")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        lines = config_of(100)
        self.assertIn("name: db02", lines)
        self.assertIn("description: DR copy%3A eu%0Asecond line%0A", lines)
        with open(conf_path(100)) as f:
            self.assertEqual(f.read().splitlines()[:2], ["#DR copy%3A eu", "#second line"])

    def test_missing_vm_and_no_options(self):
        missing = lab.ssh("dc1", "qm set 999 --onboot 1")
        self.assertEqual((missing.returncode, missing.stdout, missing.stderr),
                         (255, "", "Configuration file 'nodes/dc1/qemu-server/999.conf' does not exist\n"))
        nothing = lab.ssh("dc1", "qm set 100")
        self.assertEqual((nothing.returncode, nothing.stderr), (255, "no options specified\n"))

    def test_locked_vm_needs_skiplock(self):
        with open(conf_path(100), "a") as f:
            f.write("lock: backup\n")
        locked = lab.ssh("dc1", "qm set 100 --onboot 1")
        self.assertEqual((locked.returncode, locked.stdout, locked.stderr), (255, "", "VM is locked (backup)\n"))
        forced = lab.ssh("dc1", "qm set 100 --onboot 1 --skiplock 1")
        self.assertEqual((forced.returncode, forced.stdout), (0, "update VM 100: -onboot 1 -skiplock 1\n"))
        self.assertIn("onboot: 1", config_of(100))


class PctSet(unittest.TestCase):
    def setUp(self):
        with open(conf_path(200, "lxc"), "w") as f:
            f.write(CT_CONF)

    def tearDown(self):
        os.unlink(conf_path(200, "lxc"))

    def test_set_and_config(self):
        result = lab.ssh("dc1", "pct set 200 --tags 'b a' --onboot 1 --description 'ct notes'")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""))
        self.assertEqual(config_of(200, "pct"), [
            "arch: amd64", "description: ct notes%0A", "hostname: ct01", "memory: 512", "onboot: 1",
            "ostype: debian", "rootfs: local-lvm:vm-200-disk-0,size=8G", "tags: a;b"])
        self.assertEqual(lab.ssh("dc1", "pct set 200 --delete onboot,description").returncode, 0)
        self.assertNotIn("onboot: 1", config_of(200, "pct"))
        required = lab.ssh("dc1", "pct set 200 --delete memory")
        self.assertEqual((required.returncode, required.stderr), (255, "unable to delete required option 'memory'\n"))

    def test_refusals_say_ct(self):
        missing = lab.ssh("dc1", "pct set 299 --onboot 1")
        self.assertEqual((missing.returncode, missing.stderr),
                         (255, "Configuration file 'nodes/dc1/lxc/299.conf' does not exist\n"))
        self.assertEqual(lab.ssh("dc1", "pct config 299").stderr,
                         "Configuration file 'nodes/dc1/lxc/299.conf' does not exist\n")
        bad = lab.ssh("dc1", "pct set 200 --tags 'x$'")
        self.assertEqual((bad.returncode, bad.stderr),
                         (255, "400 Parameter verification failed.\ntags: invalid format - "
                               "invalid characters in tag\n\npct set <vmid> [OPTIONS]\n"))
        with open(conf_path(200, "lxc"), "a") as f:
            f.write("lock: backup\n")
        locked = lab.ssh("dc1", "pct set 200 --onboot 1")
        self.assertEqual((locked.returncode, locked.stderr), (255, "CT is locked (backup)\n"))


if __name__ == "__main__":
    unittest.main()
