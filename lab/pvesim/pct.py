"""`pct list|status|start|stop|config|set` for the simulated node (containers
are config files under nodes/<node>/lxc; nothing in the lab creates them but
tests may)."""
import re

from . import cliargs, guestconfig
from .cliargs import BOOLEAN, CONFIGID_LIST, INTEGER, STRING, TAG_LIST, VMID
from .common import TaskError
from .host import Host

KIND = "lxc"
# Keys `--delete` accepts (pve-container's option_exists); numbered ones below.
LXC_KEYS = frozenset((
    "arch", "cmode", "console", "cores", "cpulimit", "cpuunits", "debug", "description",
    "entrypoint", "env", "features", "hookscript", "hostname", "lock", "memory", "nameserver",
    "onboot", "ostype", "protection", "rootfs", "searchdomain", "startup", "swap", "tags",
    "template", "timezone", "tty", "unprivileged",
))
LXC_NUMBERED_RE = re.compile(r"(dev|mp|net|unused)\d+")
REQUIRED_KEYS = ("memory", "rootfs", "ostype")  # update_pct_config refuses to delete these


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


def cmd_config(host, pos, opts):
    """Sorted `key: value` lines like `qm config`, then raw lxc.* keys as written."""
    vmid = int(pos["vmid"])
    _require(host, vmid)
    config = host.read_config(vmid, KIND)
    for line in guestconfig.config_lines(config):
        print(line)
    for key, value in config.values.items():
        if key.startswith("lxc."):
            print(f"{key}: {value}")
    return 0


def _option_exists(key):
    return key in LXC_KEYS or bool(LXC_NUMBERED_RE.fullmatch(key))


def cmd_set(host, pos, opts):
    """update_vm of API2/LXC/Config.pm: no --skiplock and no output; deletes
    before changes, all applied at once (nothing left pending)."""
    vmid = int(pos["vmid"])
    if not opts:
        raise TaskError("no options specified")
    changes = {k: v for k, v in opts.items() if k != "delete"}
    deletes = guestconfig.check_deletes(opts, changes, _option_exists)
    lock = _require(host, vmid)
    if lock:
        raise TaskError(f"CT is locked ({lock})")
    config = host.read_config(vmid, KIND)
    for key in deletes:
        if not guestconfig.is_set(config, key):
            continue
        if key in REQUIRED_KEYS:
            raise TaskError(f"unable to delete required option '{key}'")
        if key == "description":
            config.description = ""
        else:
            config.values.pop(key)
    guestconfig.apply_common(config, changes)
    host.write_config(vmid, config, KIND)
    return 0


VMID_ARG = [("vmid", VMID)]
COMMANDS = {
    "list": (cmd_list, [], {}),
    "status": (cmd_status, VMID_ARG, {"verbose": BOOLEAN}),
    "start": (cmd_start, VMID_ARG, {"skiplock": BOOLEAN, "debug": BOOLEAN}),
    "stop": (cmd_stop, VMID_ARG, {"skiplock": BOOLEAN, "timeout": INTEGER,
                                  "overrule-shutdown": BOOLEAN}),
    "config": (cmd_config, VMID_ARG, {"current": BOOLEAN, "snapshot": STRING}),
    "set": (cmd_set, VMID_ARG, {"tags": TAG_LIST, "onboot": BOOLEAN, "description": STRING,
                                "delete": CONFIGID_LIST}),
}


def main(argv):
    return cliargs.dispatch("pct", COMMANDS, Host.from_env(), argv)
