"""`qmrestore <archive> <vmid>` for the simulated node.

Follows qemu-server's restore_vma_archive: checks before the task (missing
file, VMID taken without --force), then in the task: refuse a running or
protected VM, replace the config by a placeholder, wipe the old disks the
backup re-creates (others become unusedN), allocate, copy the data, write the
final config. A failure after the wipe leaves the VM broken, as on PVE.

`qmrestore - <vmid>` (CLI only) reads an uncompressed archive from stdin,
like `vma extract -v -r <fifo> - <tmpdir>`, with the same output as a file.
"""
import os
import random
import re
import signal
import sys
import tarfile
import time

from . import cliargs
from .archive import ArchiveReader, decompressor_for
from .cliargs import BOOLEAN, INTEGER, STRING, VMID, ParamError
from .common import (ARCHIVE_NAME_RE, EXIT_TASK_ERROR, Interrupted, TaskError, err,
                     format_disk_size, out)
from .hooks import JobHooks
from .host import DUMP_DIR, Host, VmConfig
from .transfer import DataPump, install_signal_handlers

USAGE = "qmrestore <archive> <vmid> [OPTIONS]"
OPTIONS = {"storage": STRING, "force": BOOLEAN, "unique": BOOLEAN, "start": BOOLEAN,
           "pool": STRING, "bwlimit": INTEGER, "live-restore": BOOLEAN, "ha-managed": BOOLEAN}


def resolve_archive(host, archive):
    """(path shown, real path) of an absolute path or a `local:backup/<file>` volid."""
    match = re.fullmatch(r"([a-zA-Z][a-zA-Z0-9\-_.]*):backup/(.+)", archive)
    if match:
        if match.group(1) != "local":
            raise TaskError(f"storage '{match.group(1)}' does not exist")
        shown = f"{DUMP_DIR}/{match.group(2)}"
        return shown, host.real(shown)
    return archive, archive


class Restore:
    def __init__(self, host, vmid, shown, path, opts):
        self.host = host
        self.vmid = vmid
        self.shown = shown
        self.path = path
        self.opts = opts
        self.new_volids = []
        self.kept = []  # old disks not in the backup: they become unusedN

    def run(self):
        host, vmid = self.host, self.vmid
        if self.path is not None and not ARCHIVE_NAME_RE.match(os.path.basename(self.path)):
            raise TaskError(f"ERROR: couldn't determine archive info from '{self.shown}'")
        if self.opts.get("live-restore") == "1":
            raise TaskError("live-restore is only compatible with backup images from a Proxmox Backup Server")
        old = host.read_config(vmid) if host.vm_exists(vmid) else None
        if old is not None:
            if host.running_pid(vmid):
                raise TaskError(f"unable to restore VM {vmid} - vm is running")
            if old.values.get("protection") == "1":
                raise TaskError(f"unable to restore VM {vmid} - - protection mode enabled")
        self._announce()
        reader = ArchiveReader(self.path, stream=sys.stdin.buffer)
        wiped = False
        try:
            self._print_header(reader)
            self.kept = self._wipe_old_disks(old, reader.manifest["devices"])
            wiped = True
            self._allocate(reader.manifest["devices"])
            self._copy_data(reader)
            out("rescan volumes...")
            self._write_config(reader.config_text, reader.manifest["devices"])
        except (TaskError, Interrupted, OSError, tarfile.TarError) as exc:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            if wiped:
                out("error before or during data restore, some or all disks were not "
                    f"completely restored. VM {vmid} state is NOT cleaned up.")
                # What PVE leaves: the placeholder config without its lock; the
                # new, half-written volumes stay behind unreferenced.
                self.host.write_config(vmid, VmConfig(_unused(self.kept)))
            raise TaskError(str(exc)) from exc
        finally:
            reader.close()
        if self.opts.get("start") == "1":
            out("Execute autostart")
            host.set_running(vmid, True)

    def _announce(self):
        tmp = f"/var/tmp/vzdumptmp{os.getpid()}"
        decomp = decompressor_for(self.path) if self.path is not None else None
        if self.path is None:  # the archive comes on stdin
            cmd = f"vma extract -v -r {tmp}.fifo - {tmp}"
        elif decomp:
            cmd = f"{' '.join(decomp)} {self.shown} | vma extract -v -r {tmp}.fifo - {tmp}"
        else:
            cmd = f"vma extract -v -r {tmp}.fifo {self.shown} {tmp}"
        out(f"restore vma archive: {cmd}")

    def _print_header(self, reader):
        out(f"CFG: size: {len(reader.config_text.encode())} name: qemu-server.conf")
        for dev in reader.manifest["devices"]:
            out(f"DEV: dev_id={dev['dev_id']} size: {dev['size']} devname: {dev['devname']}")
        out(f"CTIME: {time.strftime('%a %b %d %H:%M:%S %Y', time.localtime(reader.manifest['ctime']))}")

    def _wipe_old_disks(self, old, devices):
        """Placeholder config, old disks of re-created keys freed; returns the
        volids of other old disks (they stay as unusedN)."""
        if old is None:
            self.host.write_config(self.vmid, VmConfig({"lock": "create"}))
            return []
        restored_keys = {dev["key"] for dev in devices}
        keep = []
        for key, volid, _ in old.disks():
            if key in restored_keys:
                self.host.free_volume(volid)
            else:
                keep.append(volid)
        keep += [v.split(",")[0] for k, v in old.values.items() if k.startswith("unused")]
        self.host.write_config(self.vmid, VmConfig({"lock": "create"}))
        return keep

    def _allocate(self, devices):
        for dev in devices:
            storage = self.opts.get("storage") or dev["volid"].split(":", 1)[0]
            volid = self.host.allocate_volume(storage, self.vmid, dev["size"])
            self.new_volids.append(volid)
            volname = volid.split(":", 1)[1]
            if storage == "local-lvm":
                out(f'  Logical volume "{volname}" created.')
            else:
                out(f"Formatting '{self.host.volume_virtual_path(volid)}', fmt=raw "
                    f"size={dev['size']} preallocation=off")
            out(f"new volume ID is '{volid}'")
            out(f"map '{dev['devname']}' to '{self.host.volume_virtual_path(volid)}' "
                f"(write zeros = {0 if storage == 'local-lvm' else 1})")

    def _copy_data(self, reader):
        total = sum(dev["size"] for dev in reader.manifest["devices"])
        last = {"percent": 0}

        def progress(pump, force=False):
            percent = int(pump.done * 100 / pump.total) if pump.total else 100
            if percent != last["percent"] or force:
                last["percent"] = percent
                out(f"progress {percent}% (read {pump.done} bytes, duration {int(pump.elapsed())} sec)")

        hooks = JobHooks(self.host.hooks_dir, "qmrestore")
        for line in hooks.chatter_lines("vma extract says: "):
            out(line)
        pump = DataPump(total, hooks, progress)
        for (dev, source), volid in zip(reader.disks(), self.new_volids):
            with open(self.host.volume_path(volid), "r+b") as target:
                pump.copy(source, target, dev["size"])
        sparse = pump.zero
        out(f"total bytes read {pump.done}, sparse bytes {sparse} "
            f"({_g3(sparse * 100 / total if total else 0)}%)")
        out("space reduction due to 4K zero blocks 0%")

    def _write_config(self, config_text, devices):
        config = VmConfig.parse(config_text)
        for dev, volid in zip(devices, self.new_volids):
            opts = config.values[dev["key"]].split(",")[1:]
            opts = [o for o in opts if not o.startswith("size=")] + [f"size={format_disk_size(dev['size'])}"]
            config.values[dev["key"]] = ",".join([volid] + opts)
        config.values.update(_unused(self.kept))
        if self.opts.get("unique") == "1":
            _new_macs(config)
        config.values.pop("lock", None)
        self.host.write_config(self.vmid, config)


def _unused(volids):
    return {f"unused{n}": volid for n, volid in enumerate(volids)}


def _g3(value):
    """Perl's %.3g."""
    return f"{value:.3g}"


def _new_macs(config):
    """--unique: fresh MAC addresses (Proxmox's BC:24:11 prefix)."""
    for key, value in config.values.items():
        if re.match(r"net\d+$", key):
            mac = "BC:24:11:" + ":".join(f"{random.randint(0, 255):02X}" for _ in range(3))
            config.values[key] = re.sub(r"=([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", "=" + mac, value, count=1)


def main(argv):
    install_signal_handlers()
    host = Host.from_env()
    try:
        pos, opts = cliargs.parse(argv, [("archive", STRING), ("vmid", VMID)], OPTIONS, USAGE)
        vmid = int(pos["vmid"])
        if pos["archive"] == "-":  # an uncompressed VMA on stdin
            shown, path = "-", None
        else:
            shown, path = resolve_archive(host, pos["archive"])
            if not os.path.isfile(path):
                raise TaskError(f"can't find file '{pos['archive']}'")
        if host.vm_exists(vmid) and opts.get("force") != "1":
            raise TaskError(f"unable to restore VM {vmid} - VM {vmid} already exists on node '{host.node}'")
        if host.vm_exists(vmid, "lxc"):
            raise TaskError(f"unable to restore VM {vmid} - CT {vmid} already exists on node '{host.node}'")
        Restore(host, vmid, shown, path, opts).run()
        return 0
    except (ParamError, TaskError, Interrupted) as exc:
        err(str(exc))
        return EXIT_TASK_ERROR
