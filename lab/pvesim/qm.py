"""`qm` for the simulated node: list, status, start, stop, shutdown, destroy, config.

Guests are not real processes: a running guest has a pid file under
/run/qemu-server (see Host.set_running). Error texts, their stream and the
exit codes follow qemu-server's CLI (two different missing-VM messages!).
"""
from . import cliargs
from .cliargs import BOOLEAN, INTEGER, STRING, VMID
from .common import TaskError, err, parse_disk_size
from .host import Host


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
    host.set_running(vmid, True)
    return 0


def cmd_stop(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_vm(host, vmid)
    _check_lock(host, vmid, opts)
    host.set_running(vmid, False)
    return 0


def cmd_shutdown(host, pos, opts):
    vmid = int(pos["vmid"])
    if not host.vm_exists(vmid):
        raise _missing_vm(host, vmid)
    _check_lock(host, vmid, opts)
    if not host.running_pid(vmid):
        err(f"VM {vmid} not running")  # the stray warning of current qemu-server
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
    config = host.read_config(vmid)
    for key, value in sorted(config.values.items()):
        print(f"{key}: {value}")
    if config.description:
        print(f"description: {config.description}")
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
}


def main(argv):
    return cliargs.dispatch("qm", COMMANDS, Host.from_env(), argv)
