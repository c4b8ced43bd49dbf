"""`pct list|status|start|stop` for the simulated node (containers are config
files under nodes/<node>/lxc; nothing in the lab creates them but tests may)."""
from . import cliargs
from .cliargs import BOOLEAN, INTEGER, VMID
from .common import TaskError
from .host import Host

KIND = "lxc"


def _require(host, vmid, stop_style=False):
    if not host.vm_exists(vmid, KIND):
        if stop_style:
            raise TaskError(f"unable to find configuration file for CT {vmid} on node '{host.node}'")
        raise TaskError(f"Configuration file '{host.conf_rel(vmid, KIND)}' does not exist")
    lock = host.read_config(vmid, KIND).values.get("lock")
    return lock


def cmd_list(host, pos, opts):
    vmids = host.list_vmids(KIND)
    if not vmids:
        return 0
    print("%-10s %-10s %-12s %-20s" % ("VMID", "Status", "Lock", "Name"))
    for vmid in vmids:
        values = host.read_config(vmid, KIND).values
        status = "running" if host.running_pid(vmid, KIND) else "stopped"
        print("%-10s %-10s %-12s %-20s" % (vmid, status, values.get("lock", ""), values.get("hostname", "")))
    return 0


def cmd_status(host, pos, opts):
    vmid = int(pos["vmid"])
    _require(host, vmid)
    print(f"status: {'running' if host.running_pid(vmid, KIND) else 'stopped'}")
    return 0


def cmd_start(host, pos, opts):
    vmid = int(pos["vmid"])
    lock = _require(host, vmid)
    if lock and opts.get("skiplock") != "1":
        raise TaskError(f"CT is locked ({lock})")
    if host.running_pid(vmid, KIND):
        raise TaskError(f"CT {vmid} already running")
    host.set_running(vmid, True, KIND)
    return 0


def cmd_stop(host, pos, opts):
    vmid = int(pos["vmid"])
    lock = _require(host, vmid, stop_style=True)
    if lock and opts.get("skiplock") != "1":
        raise TaskError(f"CT is locked ({lock})")
    host.set_running(vmid, False, KIND)
    return 0


VMID_ARG = [("vmid", VMID)]
COMMANDS = {
    "list": (cmd_list, [], {}),
    "status": (cmd_status, VMID_ARG, {"verbose": BOOLEAN}),
    "start": (cmd_start, VMID_ARG, {"skiplock": BOOLEAN, "debug": BOOLEAN}),
    "stop": (cmd_stop, VMID_ARG, {"skiplock": BOOLEAN, "timeout": INTEGER,
                                  "overrule-shutdown": BOOLEAN}),
}


def main(argv):
    return cliargs.dispatch("pct", COMMANDS, Host.from_env(), argv)
