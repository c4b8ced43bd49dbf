"""One simulated Proxmox node: its files under the host root and their meaning.

The host root R mirrors the real paths a PVE node has. Inside the lab's ssh
sessions R/etc/pve, R/var/lib and R/run are mounted on /etc/pve, /var/lib and
/run, so `/var/lib/vz/dump` there *is* R/var/lib/vz/dump. The tools always
use the R-prefixed ("real") path, which works both inside those sessions and
from the lab's own subcommands that run without the mounts.

Storages (fixed, like a fresh single-node install):
  local      dir      /var/lib/vz       images in images/<vmid>/, backups in dump/
  local-lvm  lvmthin  (simulated)       volume vm-<vmid>-disk-<n> = /var/lib/sim-lvm/vm-<vmid>-disk-<n>.raw
"""
import json
import os
import random
import re
import time

from .common import TaskError, decode_text, encode_text

DUMP_DIR = "/var/lib/vz/dump"
LVM_DIR = "/var/lib/sim-lvm"
IMAGES_DIR = "/var/lib/vz/images"
STORAGES = ("local", "local-lvm")

DISK_KEY_RE = re.compile(
    r"^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$"
)
UNUSED_KEY_RE = re.compile(r"^unused\d+$")

STORAGE_CFG = """dir: local
\tpath /var/lib/vz
\tcontent iso,vztmpl,backup

lvmthin: local-lvm
\tthinpool data
\tvgname pve
\tcontent rootdir,images
"""


class VmConfig:
    """A qemu/lxc config file: `key: value` lines, `#` description lines, and
    snapshot sections (kept verbatim, never interpreted)."""

    def __init__(self, values=None, description="", tail=""):
        self.values = dict(values or {})
        self.description = description
        self.tail = tail

    @classmethod
    def parse(cls, text):
        """Like parse_vm_config: each `#` line is one description line (decoded,
        newline included, so "#notes" reads back as "notes\\n")."""
        values, desc, tail = {}, [], ""
        lines = text.splitlines(keepends=True)
        for n, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("["):
                tail = "".join(lines[n:])
                break
            if stripped.startswith("#"):
                desc.append(decode_text(line.rstrip("\n").lstrip()[1:]) + "\n")
            elif ":" in stripped:
                key, value = (part.strip() for part in stripped.split(":", 1))
                if key == "description":
                    desc.append(decode_text(value))
                else:
                    values[key] = value
        return cls(values, "".join(desc), tail)

    def description_lines(self):
        """The description split like Perl's split(/\\n/): trailing empty lines dropped."""
        lines = self.description.split("\n")
        while lines and lines[-1] == "":
            lines.pop()
        return lines

    def render(self):
        """Keys sorted, like PVE's write_vm_config; description first, one
        encode_text'ed `#` line per line; a container's raw lxc.* keys last,
        in their own order (write_pct_config)."""
        lines = [f"#{encode_text(d)}" for d in self.description_lines()]
        lines += [f"{k}: {v}" for k, v in sorted(self.values.items())
                  if k != "digest" and not k.startswith("lxc.")]
        lines += [f"{k}: {v}" for k, v in self.values.items() if k.startswith("lxc.")]
        text = "\n".join(lines) + "\n"
        return text + ("\n" + self.tail if self.tail else "")

    def disks(self):
        """[(key, volid, size_text)] of real disk volumes (no cdrom, no 'none')."""
        found = []
        for key, value in self.values.items():
            if not DISK_KEY_RE.match(key):
                continue
            parts = value.split(",")
            opts = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            if parts[0] in ("", "none") or opts.get("media") == "cdrom" or ":" not in parts[0]:
                continue
            found.append((key, parts[0], opts.get("size", "")))
        return sorted(found, key=lambda d: _disk_order(d[0]))

    def boot_disk_key(self):
        """The disk qm list reports: first disk of `boot: order=`, else legacy rules."""
        disks = {key for key, _, _ in self.disks()}
        boot = self.values.get("boot", "")
        if boot.startswith("order="):
            for dev in boot[len("order="):].split(";"):
                if dev in disks:
                    return dev
        legacy = self.values.get("bootdisk")
        if legacy in disks:
            return legacy
        for key in ("ide0", "sata0", "scsi0", "virtio0"):
            if key in disks:
                return key
        return None


def _disk_order(key):
    match = re.match(r"([a-z]+)(\d+)$", key)
    return (match.group(1), int(match.group(2))) if match else (key, 0)


class Host:
    """Paths and state of one simulated node (root = the host dir on disk)."""

    def __init__(self, root, node):
        self.root = os.path.abspath(root)
        self.node = node

    @classmethod
    def from_env(cls):
        """The host an ssh session runs on (set by the lab's ForceCommand wrapper)."""
        return cls(os.environ["PVE_SIM_ROOT"], os.environ["PVE_SIM_NODE"])

    def real(self, virtual):
        """Map a path as seen inside the host's ssh sessions to the real filesystem."""
        return self.root + virtual

    # -- layout ---------------------------------------------------------------

    def ensure_layout(self):
        """Create the directory tree of a fresh node (idempotent)."""
        node_dir = f"/etc/pve/nodes/{self.node}"
        for virtual in (node_dir + "/qemu-server", node_dir + "/lxc", DUMP_DIR, IMAGES_DIR,
                        "/var/lib/vz/template/iso", "/var/lib/vz/template/cache", LVM_DIR,
                        "/run/qemu-server", "/run/lxc", "/run/sshd"):
            os.makedirs(self.real(virtual), exist_ok=True)
        os.makedirs(self.hooks_dir, exist_ok=True)
        os.chmod(self.real("/run/sshd"), 0o755)  # sshd refuses a group/world-writable privsep dir
        # pmxcfs shows these links for the local node.
        for name, target in (("local", f"nodes/{self.node}"),
                             ("qemu-server", f"nodes/{self.node}/qemu-server"),
                             ("lxc", f"nodes/{self.node}/lxc")):
            link = self.real(f"/etc/pve/{name}")
            if not os.path.islink(link):
                os.symlink(target, link)
        cfg = self.real("/etc/pve/storage.cfg")
        if not os.path.exists(cfg):
            _write_atomic(cfg, STORAGE_CFG)
        meta = self.real("/etc/pve/.sim-node.json")
        if not os.path.exists(meta):
            _write_atomic(meta, json.dumps({"node": self.node, "created": int(time.time())}))

    @property
    def hooks_dir(self):
        return os.path.join(self.root, "hooks")

    def boot_time(self):
        """When the node "booted" (host created), for uptime figures."""
        try:
            with open(self.real("/etc/pve/.sim-node.json")) as f:
                return json.load(f)["created"]
        except (OSError, ValueError, KeyError):
            return int(time.time())

    # -- guest configs --------------------------------------------------------

    def conf_rel(self, vmid, kind="qemu-server"):
        """The path PVE's error messages show, relative to /etc/pve."""
        return f"nodes/{self.node}/{kind}/{vmid}.conf"

    def conf_path(self, vmid, kind="qemu-server"):
        return self.real("/etc/pve/" + self.conf_rel(vmid, kind))

    def vm_exists(self, vmid, kind="qemu-server"):
        return os.path.isfile(self.conf_path(vmid, kind))

    def list_vmids(self, kind="qemu-server"):
        folder = self.real(f"/etc/pve/nodes/{self.node}/{kind}")
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if re.fullmatch(r"[1-9][0-9]{2,8}\.conf", n))

    def read_config(self, vmid, kind="qemu-server"):
        with open(self.conf_path(vmid, kind)) as f:
            return VmConfig.parse(f.read())

    def write_config(self, vmid, config, kind="qemu-server"):
        _write_atomic(self.conf_path(vmid, kind), config.render())

    def remove_config(self, vmid, kind="qemu-server"):
        try:
            os.unlink(self.conf_path(vmid, kind))
        except FileNotFoundError:
            pass

    def set_lock(self, vmid, lock):
        """Set (or with None clear) the `lock:` key of a VM config."""
        config = self.read_config(vmid)
        if lock is None:
            config.values.pop("lock", None)
        else:
            config.values["lock"] = lock
        self.write_config(vmid, config)

    # -- run state (no real processes: a pid file per running guest) --------

    def _pid_path(self, vmid, kind):
        folder = "qemu-server" if kind == "qemu-server" else "lxc"
        return self.real(f"/run/{folder}/{vmid}.pid")

    def running_pid(self, vmid, kind="qemu-server"):
        """The fake pid of a running guest, or None when it is stopped."""
        try:
            with open(self._pid_path(vmid, kind)) as f:
                return int(f.read().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def running_since(self, vmid, kind="qemu-server"):
        try:
            return os.stat(self._pid_path(vmid, kind)).st_mtime
        except FileNotFoundError:
            return None

    def set_running(self, vmid, running, kind="qemu-server"):
        path = self._pid_path(vmid, kind)
        if running:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_atomic(path, f"{random.randint(1000, 4000000)}\n")
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- storage volumes ------------------------------------------------------

    def volume_virtual_path(self, volid):
        """Path of a disk volume as seen inside the node."""
        storage, _, volname = volid.partition(":")
        if storage == "local-lvm" and re.fullmatch(r"(vm|base)-\d+-disk-\d+", volname):
            return f"{LVM_DIR}/{volname}.raw"
        if storage == "local" and re.fullmatch(r"\d+/(vm|base)-\d+-disk-\d+\.(raw|qcow2|vmdk)", volname):
            return f"{IMAGES_DIR}/{volname}"
        if storage not in STORAGES:
            raise TaskError(f"storage '{storage}' does not exist")
        raise TaskError(f"unable to parse volume name '{volid}'")

    def volume_path(self, volid):
        return self.real(self.volume_virtual_path(volid))

    def allocate_volume(self, storage, vmid, size):
        """Create a zero-length-then-truncated image with the first free disk name."""
        if storage not in STORAGES:
            raise TaskError(f"storage '{storage}' does not exist")
        n = 0
        while True:
            volname = f"vm-{vmid}-disk-{n}"
            if storage == "local":
                volname = f"{vmid}/{volname}.raw"
            volid = f"{storage}:{volname}"
            path = self.volume_path(volid)
            if not os.path.exists(path):
                break
            n += 1
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(size)
        return volid

    def free_volume(self, volid):
        try:
            os.unlink(self.volume_path(volid))
        except FileNotFoundError:
            pass

    def storage_used_bytes(self, storage):
        """Bytes allocated by disk images on a storage (for the API's figures)."""
        folder = self.real(LVM_DIR if storage == "local-lvm" else IMAGES_DIR)
        total = 0
        for base, _, files in os.walk(folder):
            total += sum(os.path.getsize(os.path.join(base, f)) for f in files)
        return total


def _write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
