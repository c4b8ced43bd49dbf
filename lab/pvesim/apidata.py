"""The answers of the Proxmox HTTP API (GET only), built from the node's files.

Shared by lab/pve_api.py (HTTPS) and the `pvesh` shim, so both tell the same
story as `qm` does: a VM restored over ssh shows up here at once. This is a
one-node "cluster": paths naming another node fail like an unknown host.
"""
import hashlib
import os
import re
import ssl
import time
import urllib.parse

from .cliargs import VMID, check_value
from .common import ARCHIVE_NAME_RE, parse_disk_size
from .hooks import read_hook
from .host import DUMP_DIR, LVM_DIR

VERSION = {"version": "9.1.4", "release": "9.1", "repoid": "5b5fd4f5d7e6a3c1"}
KERNEL = "6.14.8-2-pve"
DEFAULT_MEMORY_TOTAL = 16 << 30
BASE_MEMORY_USED = 2 << 30
SERVICES = [
    ("pveproxy", "PVE API Proxy Server"), ("pvedaemon", "PVE API Daemon"),
    ("pvestatd", "PVE Status Daemon"), ("pve-cluster", "The Proxmox VE cluster filesystem"),
    ("sshd", "OpenBSD Secure Shell server"), ("corosync", "Corosync Cluster Engine"),
    ("pvescheduler", "Proxmox VE scheduler"), ("pve-firewall", "Proxmox VE firewall"),
    ("pve-ha-crm", "PVE Cluster HA Resource Manager Daemon"),
    ("pve-ha-lrm", "PVE Local HA Resource Manager Daemon"),
]


class ApiError(Exception):
    def __init__(self, status, message, errors=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def tls_fingerprint(host):
    """SHA-256 of the node certificate, colon-separated upper-case hex."""
    with open(host.real(f"/etc/pve/nodes/{host.node}/pve-ssl.pem")) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


# -- figures ---------------------------------------------------------------------

def _hook_number(host, name, default, kind=int):
    value = read_hook(host.hooks_dir, name)
    try:
        return kind(value) if value else default
    except ValueError:
        return default


def _vm_memory(host, vmid, kind="qemu-server"):
    return int(host.read_config(vmid, kind).values.get("memory", "512")) << 20


def memory(host):
    total = _hook_number(host, "node-memory-total", DEFAULT_MEMORY_TOTAL)
    running = sum(_vm_memory(host, v) // 2 for v in host.list_vmids() if host.running_pid(v))
    used = min(_hook_number(host, "node-memory-used", BASE_MEMORY_USED + running), total)
    return {"total": total, "used": used, "free": total - used, "available": total - used}


def rootfs(host):
    st = os.statvfs(host.root)
    total = st.f_blocks * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    total = _hook_number(host, "node-rootfs-total", total)
    hooked_used = _hook_number(host, "node-rootfs-used", None)
    if hooked_used is not None:
        used = hooked_used
        avail = max(total - used, 0)
    return {"total": total, "used": used, "avail": min(avail, total), "free": max(total - used, 0)}


def cpu(host):
    return _hook_number(host, "node-cpu", 0.02, float)


def node_status(host):
    mem = memory(host)
    return {
        "uptime": int(time.time()) - host.boot_time(), "idle": 0, "cpu": cpu(host), "wait": 0.0011,
        "loadavg": ["0.52", "0.48", "0.40"], "memory": mem,
        "swap": {"total": 8589930496, "used": 0, "free": 8589930496}, "ksm": {"shared": 0},
        "rootfs": rootfs(host),
        "cpuinfo": {"cpus": os.cpu_count() or 1, "cores": os.cpu_count() or 1, "sockets": 1,
                    "model": "QEMU Virtual CPU (pvesim)", "mhz": "2994.374", "hvm": "1",
                    "user_hz": 100, "flags": ""},
        "pveversion": f"pve-manager/{VERSION['version']}/{VERSION['repoid']}",
        "kversion": f"Linux {KERNEL} #1 SMP PREEMPT_DYNAMIC PMX {KERNEL}",
        "current-kernel": {"sysname": "Linux", "release": KERNEL, "machine": "x86_64",
                           "version": f"#1 SMP PREEMPT_DYNAMIC PMX {KERNEL}"},
        "boot-info": {"mode": "efi", "secureboot": 0},
    }


def vm_entry(host, vmid, kind="qemu-server"):
    """One guest as /nodes/{node}/qemu (and /cluster/resources) lists it."""
    config = host.read_config(vmid, kind)
    values = config.values
    pid = host.running_pid(vmid, kind)
    maxmem = _vm_memory(host, vmid, kind)
    entry = {"vmid": vmid, "name": values.get("name", values.get("hostname", f"VM {vmid}")),
             "status": "running" if pid else "stopped",
             "cpus": int(values.get("cores", "1")) * int(values.get("sockets", "1")),
             "maxmem": maxmem, "mem": maxmem // 2 if pid else 0, "disk": 0,
             "maxdisk": 0, "cpu": 0.012 if pid else 0, "netin": 0, "netout": 0,
             "diskread": 0, "diskwrite": 0,
             "uptime": int(time.time() - host.running_since(vmid, kind)) if pid else 0}
    if kind == "qemu-server":
        boot = config.boot_disk_key()
        sizes = {k: s for k, _, s in config.disks()}
        if boot and sizes.get(boot):
            entry["maxdisk"] = parse_disk_size(sizes[boot])
    if pid:
        entry["pid"] = pid
        entry["memhost"] = entry["mem"]
    for key in ("lock", "tags"):
        if key in values:
            entry[key] = values[key]
    if values.get("template") == "1":
        entry["template"] = 1
    return entry


def vm_current(host, vmid):
    entry = vm_entry(host, vmid)
    values = host.read_config(vmid).values
    entry["qmpstatus"] = entry["status"]
    entry["ha"] = {"managed": 0}
    entry["agent"] = 1 if re.match(r"^(1|enabled=1)", values.get("agent", "")) else 0
    if entry["status"] == "running":
        entry["running-machine"] = "pc-i440fx-9.2+pve1"
        entry["running-qemu"] = "9.2.0"
    return entry


def storages(host):
    st = os.statvfs(host.root)
    total = st.f_blocks * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    lvm_total = 100 << 30
    lvm_used = host.storage_used_bytes("local-lvm")
    return [
        {"storage": "local", "type": "dir", "content": "backup,iso,vztmpl", "active": 1,
         "enabled": 1, "shared": 0, "total": total, "used": used, "avail": avail,
         "used_fraction": used / total if total else 0},
        {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "active": 1,
         "enabled": 1, "shared": 0, "total": lvm_total, "used": lvm_used,
         "avail": lvm_total - lvm_used, "used_fraction": lvm_used / lvm_total},
    ]


def storage_content(host, storage, query):
    if storage not in ("local", "local-lvm"):
        raise ApiError(500, f"storage '{storage}' does not exist")
    items = []
    if storage == "local" and query.get("content", "backup") == "backup":
        folder = host.real(DUMP_DIR)
        for name in os.listdir(folder):
            match = ARCHIVE_NAME_RE.match(name)
            if not match:
                continue
            path = os.path.join(folder, name)
            item = {"volid": f"local:backup/{name}", "content": "backup",
                    "format": name.split(".", 1)[1], "size": os.path.getsize(path),
                    "ctime": int(time.mktime(time.strptime(match.group(3), "%Y_%m_%d-%H_%M_%S"))),
                    "vmid": int(match.group(2)), "subtype": match.group(1)}
            if os.path.exists(path + ".notes"):
                with open(path + ".notes") as f:
                    item["notes"] = f.read().split("\n")[0]
            if os.path.exists(path + ".protected"):
                item["protected"] = 1
            items.append(item)
    if storage == "local-lvm" and query.get("content", "images") == "images":
        for name in os.listdir(host.real(LVM_DIR)):
            match = re.fullmatch(r"vm-(\d+)-disk-\d+\.raw", name)
            if match:
                items.append({"volid": f"local-lvm:{name[:-4]}", "content": "images", "format": "raw",
                              "size": os.path.getsize(host.real(f"{LVM_DIR}/{name}")),
                              "vmid": int(match.group(1))})
    if "vmid" in query:
        items = [i for i in items if str(i["vmid"]) == query["vmid"]]
    return sorted(items, key=lambda i: i["volid"].lower())


def services(host):
    stopped = set(filter(None, (read_hook(host.hooks_dir, "services-stopped") or "").split(",")))
    result = []
    for name, desc in SERVICES:
        # corosync does not run on a node that is not in a cluster.
        down = name in stopped or name == "corosync"
        result.append({"service": name, "name": name, "desc": desc,
                       "state": "dead" if down else "running",
                       "active-state": "inactive" if down else "active", "unit-state": "enabled"})
    return result


def cluster_resources(host, kind):
    if kind not in (None, "vm", "storage", "node"):
        raise ApiError(400, "Parameter verification failed.",
                       {"type": f"value '{kind}' does not have a value in the enumeration 'vm, storage, node, sdn'"})
    result = []
    if kind in (None, "node"):
        result.append(node_entry(host) | {"id": f"node/{host.node}", "type": "node"})
    if kind in (None, "vm"):
        for guest_kind, type_name in (("qemu-server", "qemu"), ("lxc", "lxc")):
            for vmid in host.list_vmids(guest_kind):
                entry = vm_entry(host, vmid, guest_kind)
                entry.pop("pid", None)
                entry["maxcpu"] = entry.pop("cpus")
                entry.setdefault("template", 0)
                result.append({"id": f"{type_name}/{vmid}", "type": type_name, "node": host.node} | entry)
    if kind in (None, "storage"):
        for st in storages(host):
            result.append({"id": f"storage/{host.node}/{st['storage']}", "type": "storage",
                           "storage": st["storage"], "node": host.node, "status": "available",
                           "disk": st["used"], "maxdisk": st["total"], "content": st["content"],
                           "plugintype": st["type"], "shared": 0})
    return result


def node_entry(host):
    mem, fs = memory(host), rootfs(host)
    return {"node": host.node, "status": "online", "cpu": cpu(host), "maxcpu": os.cpu_count() or 1,
            "mem": mem["used"], "maxmem": mem["total"], "disk": fs["used"], "maxdisk": fs["total"],
            "uptime": int(time.time()) - host.boot_time(), "level": "",
            "ssl_fingerprint": tls_fingerprint(host)}


# -- routing ---------------------------------------------------------------------

def _vmid(text):
    problem = check_value("vmid", VMID, text)
    if problem:
        raise ApiError(400, "Parameter verification failed.", {"vmid": problem.split(": ", 1)[1]})
    return int(text)


def _node_routes(host, rest, query):
    """Paths below /nodes/{node}/."""
    if rest == ["status"]:
        return node_status(host)
    if rest == ["qemu"]:
        return [vm_entry(host, v) for v in host.list_vmids()]
    if rest == ["lxc"]:
        return [vm_entry(host, v, "lxc") | {"type": "lxc"} for v in host.list_vmids("lxc")]
    if len(rest) == 4 and rest[0] == "qemu" and rest[2:] == ["status", "current"]:
        vmid = _vmid(rest[1])
        if not host.vm_exists(vmid):
            raise ApiError(500, f"Configuration file '{host.conf_rel(vmid)}' does not exist")
        return vm_current(host, vmid)
    if rest == ["services"]:
        return services(host)
    if len(rest) == 3 and rest[0] == "services" and rest[2] == "state":
        found = [s for s in services(host) if s["service"] == rest[1]]
        if not found:
            raise ApiError(500, f"unknown service name '{rest[1]}'")
        return found[0]
    if rest == ["storage"]:
        items = storages(host)
        for key in ("storage", "content"):
            if key in query:
                items = [s for s in items if query[key] in s[key].split(",")] if key == "content" \
                    else [s for s in items if s[key] == query[key]]
        return items
    if len(rest) == 3 and rest[0] == "storage" and rest[2] == "content":
        return storage_content(host, rest[1], query)
    return None


def get(host, path, query):
    """Answer GET <path> (below /api2/json) with the `data` value or raise ApiError."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/") if p]
    result = None
    if parts == ["version"]:
        result = VERSION
    elif parts == ["nodes"]:
        result = [node_entry(host) | {"id": f"node/{host.node}", "type": "node"}]
    elif parts == ["cluster", "resources"]:
        result = cluster_resources(host, query.get("type"))
    elif len(parts) >= 2 and parts[0] == "nodes":
        if parts[1] != host.node:
            raise ApiError(500, f"hostname lookup '{parts[1]}' failed - failed to get address "
                                f"info for: {parts[1]}: Name or service not known")
        result = _node_routes(host, parts[2:], query)
    if result is None:
        raise ApiError(501, f"Method 'GET /{'/'.join(parts)}' not implemented")
    return result
