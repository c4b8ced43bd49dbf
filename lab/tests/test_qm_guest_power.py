"""qm guest cmd <vmid> ping, and the hooks that make power commands and the
guest agent misbehave (qm-shutdown-hang, qm-start-fail, guest-agent-dead),
all over real ssh."""
import os
import subprocess
import time
import unittest

from labfixture import Lab, wait_for

lab = None
GUEST_USAGE = "qm guest cmd <vmid> <command>\n"


def setUpModule():
    global lab
    lab = Lab("dc1")


def tearDownModule():
    lab.close()


def conf_path(vmid):
    return os.path.join(lab.root("dc1"), f"etc/pve/nodes/dc1/qemu-server/{vmid}.conf")


def set_conf_key(vmid, key, value):
    """Replace (or add) one `key: value` line of a VM config."""
    with open(conf_path(vmid)) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith(f"{key}:")]
    with open(conf_path(vmid), "w") as f:
        f.write("\n".join(lines + [f"{key}: {value}"]) + "\n")


def processes():
    return subprocess.run(["ps", "ax", "-o", "args="], capture_output=True, text=True).stdout


def outcome(result):
    return result.returncode, result.stdout, result.stderr


class GuestCmd(unittest.TestCase):
    def setUp(self):
        lab.create_vm("dc1", 100, "--disk-size", "1M", "--running", "--agent")
        lab.create_vm("dc1", 101, "--disk-size", "1M", "--running")

    def tearDown(self):
        lab.clear_hook("dc1", "guest-agent-dead")
        for vmid in (100, 101):
            lab.ssh("dc1", f"qm stop {vmid}; qm destroy {vmid} --skiplock 1")

    def test_create_vm_agent_writes_agent_1(self):
        config = lab.ssh("dc1", "qm config 100").stdout.splitlines()
        self.assertIn("agent: 1", config)
        self.assertFalse([l for l in lab.ssh("dc1", "qm config 101").stdout.splitlines()
                          if l.startswith("agent:")])

    def test_ping_answers_silently_when_the_agent_runs(self):
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 100 ping")), (0, "", ""))
        set_conf_key(101, "agent", "enabled=1,fstrim_cloned_disks=1")
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 101 ping")), (0, "", ""))

    def test_ping_refusals_in_assert_agent_available_order(self):
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 101 ping")),
                         (255, "", "No QEMU guest agent configured\n"))
        set_conf_key(101, "agent", "0")  # configured but disabled: no QGA socket
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 101 ping")),
                         (255, "", "QEMU guest agent is not running\n"))
        set_conf_key(101, "agent", "enabled=0,type=isa")
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 101 ping")),
                         (255, "", "QEMU guest agent is not running\n"))
        self.assertEqual(lab.ssh("dc1", "qm stop 100").returncode, 0)
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 100 ping")),
                         (255, "", "VM 100 is not running\n"))
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 999 ping")),
                         (255, "", "Configuration file 'nodes/dc1/qemu-server/999.conf' does not exist\n"))

    def test_command_is_an_enum(self):
        bad = lab.ssh("dc1", "qm guest cmd 100 pong")
        self.assertEqual(bad.returncode, 255)
        self.assertEqual(bad.stdout, "")
        self.assertEqual(bad.stderr,
                         "400 Parameter verification failed.\n"
                         "command: value 'pong' does not have a value in the enumeration "
                         "'fsfreeze-freeze, fsfreeze-status, fsfreeze-thaw, fstrim, get-fsinfo, "
                         "get-host-name, get-memory-block-info, get-memory-blocks, get-osinfo, get-time, "
                         "get-timezone, get-users, get-vcpus, info, network-get-interfaces, ping, shutdown, "
                         "suspend-disk, suspend-hybrid, suspend-ram'\n" + GUEST_USAGE)
        other = lab.ssh("dc1", "qm guest cmd 100 info")  # real, but not simulated
        self.assertEqual(outcome(other), (255, "", "400 Parameter verification failed.\n"
                                                   "command: value 'info' is not simulated by the lab "
                                                   "(only ping)\n" + GUEST_USAGE))
        missing = lab.ssh("dc1", "qm guest cmd 100")
        self.assertEqual(outcome(missing), (255, "", "400 not enough arguments\n" + GUEST_USAGE))
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest exec 100")),
                         (255, "", "unknown command 'qm guest exec'\n"))

    def test_guest_agent_dead_hook(self):
        set_conf_key(101, "agent", "1")
        lab.hook("dc1", "guest-agent-dead", "101,102")
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 100 ping")), (0, "", ""))
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 101 ping")),
                         (255, "", "QEMU guest agent is not running\n"))
        self.assertEqual(lab.ssh("dc1", "qm guest cmd 101 ping").returncode, 255)  # persistent
        lab.hook("dc1", "guest-agent-dead")  # empty: every VM
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 100 ping")),
                         (255, "", "QEMU guest agent is not running\n"))
        lab.clear_hook("dc1", "guest-agent-dead")
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 100 ping")), (0, "", ""))
        self.assertEqual(outcome(lab.ssh("dc1", "qm guest cmd 101 ping")), (0, "", ""))


class ShutdownHang(unittest.TestCase):
    def setUp(self):
        lab.create_vm("dc1", 100, "--disk-size", "1M", "--running")
        lab.create_vm("dc1", 101, "--disk-size", "1M", "--running")

    def tearDown(self):
        lab.clear_hook("dc1", "qm-shutdown-hang")
        for vmid in (100, 101):
            lab.ssh("dc1", f"qm stop {vmid}; qm destroy {vmid} --skiplock 1")

    def test_times_out_and_leaves_the_vm_running(self):
        lab.hook("dc1", "qm-shutdown-hang", "100")
        started = time.monotonic()
        result = lab.ssh("dc1", "qm shutdown 100 --timeout 2")
        self.assertGreaterEqual(time.monotonic() - started, 2)
        self.assertEqual(outcome(result), (255, "", "VM quit/powerdown failed - got timeout\n"))
        self.assertEqual(lab.vm_status("dc1", 100), "running")
        # VMs not listed shut down at once
        self.assertEqual(outcome(lab.ssh("dc1", "qm shutdown 101 --timeout 30")), (0, "", ""))
        self.assertEqual(lab.vm_status("dc1", 101), "stopped")

    def test_force_stop_terminates_after_the_timeout(self):
        lab.hook("dc1", "qm-shutdown-hang")
        result = lab.ssh("dc1", "qm shutdown 100 --timeout 1 --forceStop 1")
        self.assertEqual(outcome(result), (0, "VM still running - terminating now with SIGTERM\n", ""))
        self.assertEqual(lab.vm_status("dc1", 100), "stopped")

    def test_startup_down_is_the_default_timeout(self):
        lab.hook("dc1", "qm-shutdown-hang", "100")
        set_conf_key(100, "startup", "order=1,down=1")
        started = time.monotonic()
        result = lab.ssh("dc1", "qm shutdown 100")
        self.assertGreaterEqual(time.monotonic() - started, 1)
        self.assertEqual(outcome(result), (255, "", "VM quit/powerdown failed - got timeout\n"))

    def test_waits_60_s_by_default_and_finishes_when_the_hook_goes(self):
        lab.hook("dc1", "qm-shutdown-hang", "100")
        proc = lab.ssh_popen("dc1", "qm shutdown 100")
        # Without the hook a shutdown ends in milliseconds; still waiting
        # half a second later means it waits for the guest.
        time.sleep(0.5)
        self.assertIsNone(proc.poll())
        self.assertEqual(lab.vm_status("dc1", 100), "running")
        lab.clear_hook("dc1", "qm-shutdown-hang")  # the guest powers off after all
        stdout, stderr = proc.communicate(timeout=10)
        self.assertEqual((proc.returncode, stdout, stderr), (0, "", ""))
        self.assertEqual(lab.vm_status("dc1", 100), "stopped")

    def test_a_lost_session_ends_the_wait(self):
        lab.hook("dc1", "qm-shutdown-hang", "100")
        proc = lab.ssh_popen("dc1", "qm shutdown 100 --timeout 300")
        marker = "shims/qm shutdown 100 --timeout 300"
        wait_for(lambda: marker in processes())
        proc.kill()  # the ssh client dies: the session goes away
        proc.communicate()
        wait_for(lambda: marker not in processes())
        self.assertEqual(lab.vm_status("dc1", 100), "running")

    def test_stopped_vm_does_not_wait(self):
        lab.hook("dc1", "qm-shutdown-hang")
        self.assertEqual(lab.ssh("dc1", "qm stop 100").returncode, 0)
        self.assertEqual(outcome(lab.ssh("dc1", "qm shutdown 100 --timeout 30")),
                         (0, "", "VM 100 not running\n"))


class StartFail(unittest.TestCase):
    def setUp(self):
        lab.create_vm("dc1", 100, "--disk-size", "1M")

    def tearDown(self):
        lab.clear_hook("dc1", "qm-start-fail")
        lab.ssh("dc1", "qm stop 100; qm destroy 100 --skiplock 1")

    def hook_file(self):
        return os.path.join(lab.root("dc1"), "hooks", "qm-start-fail")

    def test_next_start_fails_once_with_the_default_message(self):
        lab.hook("dc1", "qm-start-fail")
        self.assertEqual(outcome(lab.ssh("dc1", "qm start 100")),
                         (255, "", "start failed: QEMU exited with code 1\n"))
        self.assertEqual(lab.vm_status("dc1", 100), "stopped")
        self.assertFalse(os.path.exists(self.hook_file()))
        self.assertEqual(outcome(lab.ssh("dc1", "qm start 100")), (0, "", ""))
        self.assertEqual(lab.vm_status("dc1", 100), "running")

    def test_custom_message_and_refused_starts_keep_the_hook(self):
        lab.ssh("dc1", "qm start 100")
        lab.hook("dc1", "qm-start-fail", "start failed: command '/usr/bin/kvm -id 100' failed: exit code 1")
        self.assertEqual(outcome(lab.ssh("dc1", "qm start 100")), (255, "", "VM 100 already running\n"))
        self.assertTrue(os.path.exists(self.hook_file()))
        lab.ssh("dc1", "qm stop 100")
        self.assertEqual(outcome(lab.ssh("dc1", "qm start 100")),
                         (255, "", "start failed: command '/usr/bin/kvm -id 100' failed: exit code 1\n"))
        self.assertEqual(lab.vm_status("dc1", 100), "stopped")


class Usage(unittest.TestCase):
    def test_usage_line_like_getopt_usage(self):
        # "$prefix $args" plus " [OPTIONS]" only when the method has options
        self.assertEqual(outcome(lab.ssh("dc1", "qm list extra")),
                         (255, "", "400 too many arguments\nqm list  [OPTIONS]\n"))


if __name__ == "__main__":
    unittest.main()
