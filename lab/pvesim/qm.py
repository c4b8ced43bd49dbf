"""`qm` for the simulated node: list, status, start, stop, shutdown, destroy,
config, set, guest cmd (ping only).

Guests are not real processes: a running guest has a pid file under
/run/qemu-server (see Host.set_running). Error texts, their stream and the
exit codes follow qemu-server's CLI (two different missing-VM messages!).
"""
import os
import random
import re
import select
import sys
import time

from . import cliargs, guestconfig, hooks
from .cliargs import BOOLEAN, CONFIGID_LIST, DNS_NAME, INTEGER, STRING, TAG_LIST, VMID, CodeParamError
from .common import Interrupted, TaskError, err, out, parse_disk_size
from .host import DISK_KEY_RE, UNUSED_KEY_RE, Host

NET_KEY_RE = re.compile(r"net([0-9]|[12][0-9]|3[01])")  # MAX_NETS = 32
NIC_MODELS = ("e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551",
              "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3")
NET_KEYS = ("bridge", "firewall", "link_down", "macaddr", "model", "mtu", "queues", "rate", "tag",
            "trunks")
MAC_RE = re.compile(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", re.I)
# Keys `--delete` accepts (qemu-server's option_exists); numbered ones below.
QEMU_KEYS = frozenset((
    "acpi", "affinity", "agent", "amd-sev", "arch", "args", "audio0", "autostart", "balloon",
    "bios", "boot", "bootdisk", "cdrom", "cicustom", "cipassword", "citype", "ciupgrade", "ciuser",
    "cores", "cpu", "cpulimit", "cpuunits", "description", "efidisk0", "freeze", "hookscript",
    "hotplug", "hugepages", "intel-tdx", "ivshmem", "keephugepages", "keyboard", "kvm", "localtime",
    "lock", "machine", "memory", "meta", "migrate_downtime", "migrate_speed", "name", "nameserver",
    "numa", "onboot", "ostype", "protection", "reboot", "rng0", "runningcpu", "runningmachine",
    "scsihw", "searchdomain", "shares", "smbios1", "smp", "sockets", "spice_enhancements",
    "sshkeys", "startdate", "startup", "tablet", "tags", "tdf", "template", "tpmstate0", "vcpus",
    "vga", "vmgenid", "vmstate", "vmstatestorage", "watchdog",
))
QEMU_NUMBERED_RE = re.compile(r"(hostpci|usb|serial|parallel|ipconfig|numa|virtiofs|unused)\d+")
# PVE::API2::Qemu::Agent's $guest_agent_commands: the `command` enum of `qm guest cmd`.
AGENT_COMMANDS = ("fsfreeze-freeze", "fsfreeze-status", "fsfreeze-thaw", "fstrim", "get-fsinfo",
                  "get-host-name", "get-memory-block-info", "get-memory-blocks", "get-osinfo",
                  "get-time", "get-timezone", "get-users", "get-vcpus", "info",
                  "network-get-interfaces", "ping", "shutdown", "suspend-disk", "suspend-hybrid",
                  "suspend-ram")
SIMULATED_AGENT_COMMANDS = ("ping",)
SHUTDOWN_TIMEOUT = 60  # _do_vm_stop's default


def _missing_conf(host, vmid):
    return TaskError(f"Configuration file '{host.conf_rel(vmid)}' does not exist")


def _missing_vm(host, vmid):
    return TaskError(f"unable to find configuration file for VM {vmid} on node '{host.node}'")


def _check_lock(host, vmid, opts):
    lock = host.read_config(vmid).values.get("lock")
    if lock and opts.get("skiplock") != "1":
        raise TaskError(f"VM is locked ({lock})")


def vm_row(host, vmid):
    """The figures `qm list` shows for one VM: (name, status, mem MiB, boot disk GiB, pid)."""
    config = host.read_config(vmid)
    values = config.values
    boot = config.boot_disk_key()
    disk_gb = 0.0
    if boot:
        size = dict((k, s) for k, _, s in config.disks()).get(boot)
        disk_gb = parse_disk_size(size) / (1 << 30) if size else 0.0
    pid = host.running_pid(vmid)
    mem = values.get("memory", "512")
    return values.get("name", f"VM {vmid}"), "running" if pid else "stopped", mem, disk_gb, pid or 0


def cmd_list(host, pos, opts):
    vmids = host.list_vmids()
    if not vmids:
        return 0  # no VMs: not even the header
    print("%10s %-20s %-10s %-10s %12s %-10s" % ("VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"))
    for vmid in vmids:
        name, status, mem, disk_gb, pid = vm_row(host, vmid)
        print("%10s %-20s %-10s %-10s %12.2f %-10s" % (vmid, name, status, mem, disk_gb, pid))
    return 0


def cmd_status(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_conf(host, vmid)
    pid = host.running_pid(vmid)
    print(f"status: {'running' if pid else 'stopped'}")
    if opts.get("verbose") == "1":
        name, status, mem, _, _ = vm_row(host, vmid)
        fields = {"name": name, "vmid": vmid, "qmpstatus": status, "maxmem": int(mem) << 20}
        if pid:
            fields["pid"] = pid
        for key in sorted(fields):
            print(f"{key}: {fields[key]}")
    return 0


def cmd_start(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_conf(host, vmid)
    _check_lock(host, vmid, opts)
    if host.read_config(vmid).values.get("template") == "1":
        raise TaskError("you can't start a vm if it's a template")
    if host.running_pid(vmid):
        raise TaskError(f"VM {vmid} already running")
    failure = hooks.take_hook(host.hooks_dir, "qm-start-fail")
    if failure is not None:
        raise TaskError(failure or hooks.DEFAULT_START_FAIL)  # QEMU died: the VM stays stopped
    host.set_running(vmid, True)
    return 0


def cmd_stop(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_vm(host, vmid)
    _check_lock(host, vmid, opts)
    host.set_running(vmid, False)
    return 0


def _startup_down(config):
    """`down=N` of the config's `startup` property string, or None."""
    for part in config.values.get("startup", "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "down" and value.strip().isdigit() and int(value) > 0:
            return int(value)
    return None


def _session_gone(parent, poll):
    """The ssh session went away: re-parented, or nobody reads stdout any more."""
    return os.getppid() != parent or any(
        events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def _await_powerdown(host, vmid, timeout):
    """_do_vm_stop's wait while the guest ignores the powerdown (hook
    qm-shutdown-hang): True when the VM went away meanwhile (stopped by someone
    else, or the hook was cleared: the guest finally powered off), False after
    `timeout` seconds. A vanished ssh session ends the job as a signal would."""
    parent = os.getppid()
    poll = select.poll()
    poll.register(sys.stdout.fileno(), select.POLLOUT)
    deadline = time.monotonic() + timeout
    while True:
        if not host.running_pid(vmid):
            return True
        if not hooks.hook_covers(host.hooks_dir, "qm-shutdown-hang", vmid):
            host.set_running(vmid, False)
            return True
        if _session_gone(parent, poll):
            raise TaskError("interrupted by signal")  # nobody sees it; the VM keeps running
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(0.2, left))


def cmd_shutdown(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_vm(host, vmid)
    _check_lock(host, vmid, opts)
    if not host.running_pid(vmid):
        err(f"VM {vmid} not running")  # the stray warning of current qemu-server
    elif hooks.hook_covers(host.hooks_dir, "qm-shutdown-hang", vmid):
        timeout = int(opts["timeout"]) if "timeout" in opts else None
        if timeout is None:
            timeout = _startup_down(host.read_config(vmid)) or SHUTDOWN_TIMEOUT
        if _await_powerdown(host, vmid, max(timeout, 0)):
            return 0
        if opts.get("forceStop") != "1":
            raise TaskError("VM quit/powerdown failed - got timeout")
        try:
            out("VM still running - terminating now with SIGTERM")  # a worker warn: stdout
        except Interrupted:
            pass  # the caller went away; the task goes on and terminates the VM
    host.set_running(vmid, False)
    return 0


def cmd_destroy(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_conf(host, vmid)
    config = host.read_config(vmid)
    if host.running_pid(vmid):
        raise TaskError(f"VM {vmid} is running - destroy failed")
    if config.values.get("protection") == "1":
        raise TaskError(f"can't remove VM {vmid} - protection mode enabled")
    _check_lock(host, vmid, opts)
    volids = [volid for _, volid, _ in config.disks()]
    volids += [v.split(",")[0] for k, v in config.values.items() if k.startswith("unused")]
    for volid in volids:
        host.free_volume(volid)
        if volid.startswith("local-lvm:"):
            print(f'  Logical volume "{volid.split(":", 1)[1]}" successfully removed.')
    if opts.get("purge") == "1":
        print(f"purging VM {vmid} from related configurations..")
    host.remove_config(vmid)
    return 0


def cmd_config(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_conf(host, vmid)
    for line in guestconfig.config_lines(host.read_config(vmid)):
        print(line)
    return 0


def _option_exists(key):
    return (key in QEMU_KEYS or bool(DISK_KEY_RE.match(key)) or bool(NET_KEY_RE.fullmatch(key))
            or bool(QEMU_NUMBERED_RE.fullmatch(key)))


def _parse_net(name, value):
    """parse_property_string(pve-qm-net): ({key: value}, None) or (None, the
    text it dies with; nested key errors follow `format error`, as PVE shows)."""
    net = {}
    for part in value.split(","):
        if not part.strip():
            continue
        match = re.fullmatch(r"([^=]+)=(.+)", part)
        if match:
            key, val = match.groups()
            pairs = [("model", key), ("macaddr", val)] if key in NIC_MODELS else [(key, val)]
        elif "=" not in part:
            pairs = [("model", part)]
        else:
            return None, "missing key in comma-separated list property\n"
        for key, val in pairs:
            if key not in NET_KEYS:
                return None, f"invalid key in comma-separated list property: {key}\n"
            if key in net:
                return None, f"duplicate key in comma-separated list property: {key}\n"
            net[key] = val
    errors = _net_field_errors(net)
    if errors:
        return None, "format error\n" + "".join(f"{name}.{k}: {text}\n" for k, text in errors)
    return net, None


def _net_field_errors(net):
    """check_object on a parsed NIC: [(key, error)]; booleans become 1/0."""
    errors = []
    if "model" not in net:
        errors.append(("model", "property is missing and it is not optional"))
    elif net["model"] not in NIC_MODELS:
        errors.append(("model", f"value '{net['model']}' does not have a value in the "
                                f"enumeration '{', '.join(NIC_MODELS)}'"))
    if "macaddr" in net and not MAC_RE.match(net["macaddr"]):
        errors.append(("macaddr", "invalid format - value does not look like a valid unicast MAC address\n"))
    for key in ("firewall", "link_down"):
        if key in net:
            net[key] = {"1": "1", "on": "1", "yes": "1", "true": "1",
                        "0": "0", "off": "0", "no": "0", "false": "0"}.get(net[key].lower(), net[key])
            if net[key] not in ("0", "1"):
                errors.append((key, f"type check ('boolean') failed - got '{net[key]}'"))
    return errors


def check_net(name, value):
    """The cliargs check of a netN value (a pve-qm-net property string)."""
    problem = _parse_net(name, value)[1]
    return f"{name}: invalid format - {problem}" if problem else None


def print_net(name, value):
    """parse_net + print_net: a random MAC (BC:24:11 prefix) when none was
    given, then `model=MAC` first and the other keys sorted."""
    net = _parse_net(name, value)[0]
    mac = net.pop("macaddr", None) or "BC:24:11:" + ":".join(f"{random.randint(0, 255):02X}" for _ in range(3))
    model = net.pop("model")
    return ",".join([f"{model}={mac}"] + [f"{key}={net[key]}" for key in sorted(net)])


def _drop_from_boot_order(config, key):
    """A deleted device leaves `boot: order=` too (an emptied order goes away)."""
    boot = config.values.get("boot", "")
    if not boot.startswith("order="):
        return
    devices = boot[len("order="):].split(";")
    if key in devices:
        devices.remove(key)
        if devices:
            config.values["boot"] = "order=" + ";".join(devices)
        else:
            config.values.pop("boot")


def _add_unused(config, volid):
    """AbstractConfig::add_unused_volume: the lowest free unusedN, no duplicates."""
    used = {k: v for k, v in config.values.items() if UNUSED_KEY_RE.match(k)}
    if volid in used.values():
        return
    n = 0
    while f"unused{n}" in used:
        n += 1
    config.values[f"unused{n}"] = volid


def _delete_option(host, config, key):
    """One `--delete` item: a disk becomes unusedN, an unusedN volume is freed."""
    if not guestconfig.is_set(config, key):
        return
    protected = config.values.get("protection") == "1"
    value = config.values.get(key, "")
    _drop_from_boot_order(config, key)
    if UNUSED_KEY_RE.match(key):
        volid = value.split(",")[0]
        if protected:
            raise TaskError(f"can't remove unused disk '{volid}' - protection mode enabled")
        host.free_volume(volid)
    elif DISK_KEY_RE.match(key):
        if protected:
            raise TaskError(f"can't remove drive '{key}' - protection mode enabled")
        volid = value.split(",")[0]
        if ":" in volid and "media=cdrom" not in value:
            _add_unused(config, volid)
    if key == "description":
        config.description = ""
    else:
        config.values.pop(key)


def cmd_set(host, pos, opts):
    """update_vm (the synchronous PUT): checks, the `update VM …` line, then
    deletes before changes. Nothing is pending: every option applies at once,
    as hotplug would on a running VM."""
    vmid = int(pos["vmid"])
    changes = {k: v for k, v in opts.items() if k not in ("skiplock", "delete")}
    if not opts.get("delete") and not changes:
        raise TaskError("no options specified")
    deletes = guestconfig.check_deletes(opts, changes, _option_exists)
    for key in changes:
        if NET_KEY_RE.fullmatch(key):
            changes[key] = print_net(key, changes[key])
    if not host.vm_exists(vmid):
        raise _missing_conf(host, vmid)
    _check_lock(host, vmid, opts)
    config = host.read_config(vmid)
    print(f"update VM {vmid}: " + " ".join(f"-{key} {opts[key]}" for key in sorted(opts)))
    for key in deletes:
        _delete_option(host, config, key)
        host.write_config(vmid, config)
    for key, value in guestconfig.apply_common(config, changes).items():
        config.values[key] = value  # netN
    host.write_config(vmid, config)
    return 0


def agent_enabled(config):
    """get_qga_key($conf, 'enabled'): the `agent` property string's `enabled`
    (its default key, so `agent: 1` and `agent: enabled=1,…` both count)."""
    for n, part in enumerate(config.values.get("agent", "").split(",")):
        key, eq, value = part.partition("=")
        if not eq and n == 0:
            key, value = "enabled", key
        if key.strip() == "enabled":
            return value.strip().lower() in ("1", "yes", "on", "true")
    return False


def cmd_guest_cmd(host, pos, opts):
    """`qm guest cmd <vmid> <command>` (the API's agent POST): load_config, then
    assert_agent_available, then the command. `ping` answers an empty hash,
    which the CLI prints as nothing."""
    vmid = int(pos["vmid"])
    command = pos["command"]
    if command not in SIMULATED_AGENT_COMMANDS:
        raise CodeParamError({"command": f"value '{command}' is not simulated by the lab "
                                         f"(only {', '.join(SIMULATED_AGENT_COMMANDS)})"})
    if not host.vm_exists(vmid):
        raise _missing_conf(host, vmid)
    config = host.read_config(vmid)
    if "agent" not in config.values:
        raise TaskError("No QEMU guest agent configured")
    if not host.running_pid(vmid):
        raise TaskError(f"VM {vmid} is not running")
    # qga_check_running: a guest-ping on the QGA socket, which exists only when
    # the agent is enabled; the hook stands for an agent that does not answer.
    if not agent_enabled(config) or hooks.hook_covers(host.hooks_dir, "guest-agent-dead", vmid):
        raise TaskError("QEMU guest agent is not running")
    return 0


VMID_ARG = [("vmid", VMID)]
COMMANDS = {
    "list": (cmd_list, [], {"full": BOOLEAN}),
    "status": (cmd_status, VMID_ARG, {"verbose": BOOLEAN}),
    "start": (cmd_start, VMID_ARG, {"timeout": INTEGER, "skiplock": BOOLEAN, "machine": STRING}),
    "stop": (cmd_stop, VMID_ARG, {"timeout": INTEGER, "skiplock": BOOLEAN, "keepActive": BOOLEAN,
                                  "overrule-shutdown": BOOLEAN}),
    "shutdown": (cmd_shutdown, VMID_ARG, {"timeout": INTEGER, "forceStop": BOOLEAN,
                                          "keepActive": BOOLEAN, "skiplock": BOOLEAN}),
    "destroy": (cmd_destroy, VMID_ARG, {"purge": BOOLEAN, "skiplock": BOOLEAN,
                                        "destroy-unreferenced-disks": BOOLEAN}),
    "config": (cmd_config, VMID_ARG, {"current": BOOLEAN, "snapshot": STRING}),
    "set": (cmd_set, VMID_ARG, {"tags": TAG_LIST, "onboot": BOOLEAN, "name": DNS_NAME,
                                "description": STRING, "delete": CONFIGID_LIST,
                                "skiplock": BOOLEAN, NET_KEY_RE: check_net}),
}


GUEST_COMMANDS = {
    "cmd": (cmd_guest_cmd, VMID_ARG + [("command", AGENT_COMMANDS)], {}),
}


def main(argv):
    if argv and argv[0] == "guest":  # a command group, like `qm disk`
        return cliargs.dispatch("qm guest", GUEST_COMMANDS, Host.from_env(), argv[1:])
    return cliargs.dispatch("qm", COMMANDS, Host.from_env(), argv)
