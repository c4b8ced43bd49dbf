"""`vzdump` for the simulated node: a real archive of a guest's config and
disks, with the task output of PVE's VZDump.pm / VZDump/QemuServer.pm.

Progress lines: the first at 0%, then one whenever the percentage changed and
either 0.5 s passed or a 10% step was crossed, and a last one at 100%. (Real
vzdump waits 2 s between lines; the shorter rule gives small test disks
several lines.)

`--stdout 1` (API2/VZDump.pm, VZDump.pm exec_backup_task): one guest only,
not with --storage; the CLI points its STDOUT at STDERR, so every task line
goes to stderr, and the archive (through the compressor) goes to the real
stdout as it is produced; `sending archive to stdout` replaces `creating
vzdump archive '…'`, there is no `archive file size` line, and, as in PVE, the
`<base>.tmp/` dir and the `<base>.log` of the guest are still made in the dump
dir (the storage defaults to `local`).

`--fleecing enabled=1,storage=<ID>` (qemu-server VZDump/QemuServer.pm
check_and_prepare_fleecing): one image per disk (not efidisk/tpmstate) on the
storage, `vm-<vmid>-fleece-<n>` (raw on local-lvm, `.qcow2` on a dir storage),
logged as `drive-scsi0: attaching fleecing image <volid> to QEMU`, removed
after the backup.
"""
import fcntl
import json
import os
import re
import shutil
import signal
import time
import uuid

from . import cliargs
from .archive import COMPRESSORS, CONFIG, FORMAT, MANIFEST, ArchiveWriter
from .cliargs import BOOLEAN, INTEGER, STRING, VMID_LIST, ParamError
from .common import (EXIT_TASK_ERROR, Interrupted, TaskError, archive_stamp, err,
                     format_disk_size, local_stamp, out, render_bytes, render_duration,
                     render_rate, vzdump_format_size)
from .hooks import JobHooks
from .host import DUMP_DIR, IMAGES_DIR, LVM_DIR, STORAGES, Host
from .transfer import CountingReader, DataPump, install_signal_handlers

USAGE = "vzdump {<vmid>} [OPTIONS]"
OPTIONS = {
    "dumpdir": STRING, "storage": STRING, "compress": ("0", "1", "gzip", "lzo", "zstd"),
    "mode": ("snapshot", "suspend", "stop"), "bwlimit": INTEGER, "ionice": INTEGER,
    "lockwait": INTEGER, "stopwait": INTEGER, "zstd": INTEGER, "pigz": INTEGER,
    "remove": BOOLEAN, "prune-backups": STRING, "node": STRING, "notes-template": STRING,
    "protected": BOOLEAN, "mailto": STRING, "mailnotification": ("always", "failure"),
    "notification-mode": ("auto", "legacy-sendmail", "notification-system"),
    "stdexcludes": BOOLEAN, "exclude-path": STRING, "stdout": BOOLEAN,
}
LOCK_FILE = "/var/run/vzdump.lock"
NO_FLEECING_RE = re.compile(r"^(efidisk|tpmstate)\d$")


def check_fleecing(name, value):
    """The `backup-fleecing` property string: [enabled=]<bool>[,storage=<id>]
    (the wording of these errors is the lab's, not checked against PVE)."""
    seen = {}
    for n, item in enumerate(value.split(",")):
        key, sep, val = item.partition("=")
        if not sep and n == 0:
            key, val = "enabled", item  # enabled is the default key
        if key not in ("enabled", "storage") or key in seen:
            problem = "duplicate" if key in seen else "unknown"
            return f"{name}: invalid format - property string: {problem} key '{key}'"
        seen[key] = val
    if "enabled" in seen and not re.fullmatch(r"(?i)1|0|yes|no|on|off|true|false", seen["enabled"]):
        return f"{name}: invalid format - enabled: type check ('boolean') failed - got '{seen['enabled']}'"
    if "storage" in seen and not re.fullmatch(r"(?i)[a-z][a-z0-9\-_.]*[a-z0-9]", seen["storage"]):
        return f"{name}: invalid format - storage: storage ID '{seen['storage']}' contains illegal characters"
    return None


def parse_fleecing(value):
    """{'enabled': bool, 'storage': str|None} of a checked property string."""
    enabled, storage = False, None
    for n, item in enumerate(value.split(",")):
        key, sep, val = item.partition("=")
        if not sep and n == 0:
            key, val = "enabled", item
        if key == "enabled":
            enabled = val.lower() in ("1", "yes", "on", "true")
        else:
            storage = val
    return {"enabled": enabled, "storage": storage}


OPTIONS["fleecing"] = check_fleecing


class Job:
    """One vzdump invocation: options, target directory and the global lock."""

    def __init__(self, host, vmids, opts, archive_fd=None):
        self.host = host
        self.vmids = vmids
        self.opts = opts
        self.archive_fd = archive_fd  # --stdout: where the archive goes (the real stdout)
        self.fleecing = parse_fleecing(opts["fleecing"]) if "fleecing" in opts else None
        self.compress = opts.get("compress", "0")
        self.bwlimit = int(opts.get("bwlimit", "0"))
        if "dumpdir" in opts:
            self.dir_shown = opts["dumpdir"].rstrip("/") or "/"
            self.dir_real = self.dir_shown  # inside the node the path is as given
        else:
            self.dir_shown = DUMP_DIR
            self.dir_real = host.real(DUMP_DIR)

    def cmdline(self):
        # VZDump::Common::command_line leaves out --stdout
        args = " ".join(f"--{k} {v}" for k, v in self.opts.items() if k != "stdout")
        return f"vzdump {' '.join(map(str, self.vmids))} {args}".rstrip()


def check_setup(host, opts):
    """Errors PVE raises before or while setting up the job (no guest touched)."""
    if opts.get("stdout") == "1" and "storage" in opts:
        raise TaskError("cannot use options 'storage' and 'stdout' at the same time")
    if "dumpdir" in opts and "storage" in opts:
        raise TaskError("cannot use options 'storage' and 'dumpdir' at the same time")
    for needs_storage in ("notes-template", "protected"):
        if needs_storage in opts and "storage" not in opts:
            raise ParamError("400 Parameter verification failed.\n"
                             f"storage: missing property required by '{needs_storage}'\n{USAGE}")
    storage = opts.get("storage")
    if storage == "local-lvm":
        raise TaskError(f"can't use storage '{storage}' for backups - wrong content type")
    if storage not in (None, "local"):
        raise TaskError(f"could not activate storage '{storage}': storage '{storage}' does not exist")
    dumpdir = opts.get("dumpdir")
    if dumpdir is not None and not os.path.isdir(dumpdir):
        raise TaskError(f"dumpdir '{dumpdir.rstrip('/')}' does not exist")


def get_global_lock(host, lockwait_min):
    """flock the node's vzdump lock; say so only when we had to wait."""
    lock_path = host.real("/run/vzdump.lock")
    fh = open(lock_path, "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fh
    except BlockingIOError:
        pass
    if lockwait_min == 0:
        raise TaskError(f"can't acquire lock '{LOCK_FILE}' (wait = 0)")
    out("INFO: trying to get global lock - waiting...")
    deadline = time.monotonic() + lockwait_min * 60
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                out(f"ERROR: can't acquire lock '{LOCK_FILE}' - got timeout")
                raise TaskError("got unexpected control message: ")
            time.sleep(0.05)  # flock has no timeout; poll the lock holder's exit
    out("INFO: got global lock")
    return fh


class GuestLog:
    """The per-guest `<base>.log`: the guest's lines, each with a timestamp."""

    def __init__(self):
        self.lines = []

    def line(self, level, text):
        self.lines.append(f"{local_stamp()} {level}: {text}")  # kept even if printing fails
        out(f"{level}: {text}")

    def info(self, text):
        self.line("INFO", text)

    def save(self, path):
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


class Progress:
    """Prints `INFO:  46% (14.8 GiB of 32.0 GiB) in 3s, read: …, write: …`."""

    def __init__(self, log):
        self.log = log
        self.last = None  # (percent, monotonic time, bytes read, bytes written)

    def __call__(self, pump, force=False):
        percent = int(pump.done * 100 / pump.total) if pump.total else 100
        now = time.monotonic()
        written = pump.done - pump.zero
        if self.last is None:
            self.last = (-1, pump.started, 0, 0)
        last_pct, last_t, last_read, last_written = self.last
        due = percent != last_pct and (now - last_t >= 0.5 or percent // 10 != last_pct // 10)
        if not (due or force or (percent == 100 and last_pct != 100)):
            return
        delta = now - last_t
        read_rate = (pump.done - last_read) / delta if delta > 0 else 0
        write_rate = (written - last_written) / delta if delta > 0 else 0
        self.log.info(f"{percent:3d}% ({render_bytes(pump.done)} of {render_bytes(pump.total)}) "
                      f"in {render_duration(pump.elapsed())}, read: {render_rate(read_rate)}, "
                      f"write: {render_rate(write_rate)}")
        self.last = (percent, now, pump.done, written)


class GuestBackup:
    """Back up one guest; on failure clean up like vzdump and report."""

    def __init__(self, job, vmid):
        self.job = job
        self.host = job.host
        self.vmid = vmid
        self.started = time.time()
        self.base = f"vzdump-qemu-{vmid}-{archive_stamp(self.started)}"
        ext = ".vma" + COMPRESSORS[job.compress][0]
        self.final_name = self.base + ext
        # The temp name replaces the last extension by .dat (….vma.zst -> ….vma.dat).
        self.dat_name = self.final_name.rsplit(".", 1)[0] + ".dat"
        self.log = GuestLog()

    def path(self, name):
        return os.path.join(self.job.dir_real, name)

    def run(self):
        """Returns True on success. Prints the guest's part of the job output."""
        log, host, vmid = self.log, self.host, self.vmid
        to_stdout = self.job.archive_fd is not None
        log.info(f"Starting Backup of VM {vmid} (qemu)")
        out(f"INFO: Backup started at {local_stamp(self.started)}")
        locked = False
        writer = None
        self.fleece_paths = []
        try:
            config = host.read_config(vmid)
            if "lock" in config.values:
                raise TaskError(f"VM is locked ({config.values['lock']})")
            running = host.running_pid(vmid) is not None
            disks = [(key, volid, os.path.getsize(host.volume_path(volid)))
                     for key, volid, _ in config.disks()]
            self._describe(config, running, disks)
            host.set_lock(vmid, "backup")
            locked = True
            os.makedirs(self.path(self.base + ".tmp"), exist_ok=True)
            if to_stdout:
                log.info("sending archive to stdout")
            else:
                log.info(f"creating vzdump archive '{os.path.join(self.job.dir_shown, self.final_name)}'")
            if not running:
                log.info("starting kvm to execute backup task")
            if self.job.fleecing and self.job.fleecing["enabled"]:
                self._attach_fleecing(disks)
            log.info(f"started backup task '{uuid.uuid4()}'")
            threads = int(self.job.opts.get("zstd", "1"))
            if to_stdout:
                writer = ArchiveWriter(None, self.job.compress, fd=self.job.archive_fd, zstd_threads=threads)
            else:
                writer = ArchiveWriter(self.path(self.dat_name), self.job.compress, zstd_threads=threads)
            pump = self._write_archive(writer, config, disks)
            writer.close()
            writer = None
            self._summary(pump, running)
            if not to_stdout:
                os.replace(self.path(self.dat_name), self.path(self.final_name))
            shutil.rmtree(self.path(self.base + ".tmp"), ignore_errors=True)
            if not to_stdout:
                size = os.path.getsize(self.path(self.final_name))
                log.info(f"archive file size: {vzdump_format_size(size)}")
                self._extras()
            log.info(f"Finished Backup of VM {vmid} ({_hms(time.time() - self.started)})")
            out(f"INFO: Backup finished at {local_stamp()}")
            return True
        except (TaskError, Interrupted, OSError) as exc:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)  # finish the clean-up whatever comes
            if writer:
                writer.abort()
            self._remove_partial()
            log.line("ERROR", f"Backup of VM {vmid} failed - {_message(exc)}")
            out(f"INFO: Failed at {local_stamp()}")
            return False
        finally:
            if locked and host.vm_exists(vmid):
                host.set_lock(vmid, None)
            self._free_fleecing()
            self.log.save(self.path(self.base + ".log"))

    def _attach_fleecing(self, disks):
        """Allocate one fleecing image per disk on the fleecing storage, then
        attach them, like allocate_fleecing_images + attach_fleecing_images
        (EFI disk and TPM state are skipped)."""
        storage = self.job.fleecing["storage"]
        if not storage:
            raise TaskError("internal error - no fleecing storage specified")
        if storage not in STORAGES:
            raise TaskError(f"storage '{storage}' does not exist")
        attached = []
        for n, (key, _, size) in enumerate(d for d in disks if not NO_FLEECING_RE.match(d[0])):
            if storage == "local-lvm":  # lvmthin: raw only, no extension in the name
                volid = f"local-lvm:vm-{self.vmid}-fleece-{n}"
                path = self.host.real(f"{LVM_DIR}/vm-{self.vmid}-fleece-{n}.raw")
            else:  # a dir storage: qcow2, the format is part of the name
                volid = f"local:{self.vmid}/vm-{self.vmid}-fleece-{n}.qcow2"
                path = self.host.real(f"{IMAGES_DIR}/{self.vmid}/vm-{self.vmid}-fleece-{n}.qcow2")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(size)
            self.fleece_paths.append(path)
            attached.append((key, volid))
        for key, volid in attached:
            self.log.info(f"drive-{key}: attaching fleecing image {volid} to QEMU")

    def _free_fleecing(self):
        for path in self.fleece_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.fleece_paths = []

    def _describe(self, config, running, disks):
        log = self.log
        mode = self.job.opts.get("mode", "snapshot") if running else "stop"
        log.info(f"status = {'running' if running else 'stopped'}")
        guest_lines = [f"VM Name: {config.values['name']}"] if "name" in config.values else []
        guest_lines += [f"include disk '{key}' '{volid}' {format_disk_size(size)}"
                        for key, volid, size in disks]
        if running and mode == "snapshot":
            for line in guest_lines:
                log.info(line)
        log.info(f"backup mode: {mode}")
        if self.job.bwlimit:
            log.info(f"bandwidth limit: {self.job.bwlimit} KiB/s")
        log.info(f"ionice priority: {self.job.opts.get('ionice', '7')}")
        if not (running and mode == "snapshot"):
            for line in guest_lines:
                log.info(line)

    def _write_archive(self, writer, config, disks):
        saved = dict(config.values)
        saved.pop("lock", None)
        manifest = {"format": FORMAT, "version": 1, "vmid": self.vmid, "ctime": int(self.started),
                    "devices": [{"dev_id": n + 1, "devname": f"drive-{key}", "key": key,
                                 "volid": volid, "size": size}
                                for n, (key, volid, size) in enumerate(disks)]}
        writer.add_bytes(MANIFEST, json.dumps(manifest, indent=1).encode())
        writer.add_bytes(CONFIG, type(config)(saved, config.description).render().encode())
        hooks = JobHooks(self.host.hooks_dir, "vzdump")
        if self.job.bwlimit and not hooks.rate:
            hooks.rate = self.job.bwlimit * 1024
        for line in hooks.chatter_lines("guest agent says: "):
            self.log.info(line)
        progress = Progress(self.log)
        watch = [self.job.archive_fd] if self.job.archive_fd is not None else []
        pump = DataPump(sum(size for _, _, size in disks), hooks, progress, watch_fds=watch)
        progress(pump, force=True)
        for key, volid, size in disks:
            with open(self.host.volume_path(volid), "rb") as disk:
                writer.add_stream(f"drive-{key}", size, CountingReader(disk, pump))
        progress(pump)
        return pump

    def _summary(self, pump, running):
        total, seconds = pump.done, max(int(pump.elapsed()), 1)
        if pump.zero:
            self.log.info(f"backup is sparse: {render_bytes(pump.zero, 2)} "
                          f"({int(pump.zero * 100 / total)}%) total zero data")
        self.log.info(f"transferred {render_bytes(total, 2)} in {seconds} seconds "
                      f"({render_bytes(total / seconds, 1)}/s)")
        if not running:
            self.log.info("stopping kvm after backup task")

    def _extras(self):
        """--notes-template and --protected (both need --storage)."""
        opts = self.job.opts
        if "notes-template" in opts:
            self.log.info("adding notes to backup")
            config = self.host.read_config(self.vmid).values
            notes = (opts["notes-template"].replace("{{guestname}}", config.get("name", ""))
                     .replace("{{node}}", self.host.node).replace("{{vmid}}", str(self.vmid))
                     .replace("{{cluster}}", "").replace("\\n", "\n").replace("\\\\", "\\"))
            with open(self.path(self.final_name + ".notes"), "w") as f:
                f.write(notes)
        if opts.get("protected") == "1":
            self.log.info("marking backup as protected")
            open(self.path(self.final_name + ".protected"), "w").close()

    def _remove_partial(self):
        for name in (self.dat_name, self.final_name):
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass
        shutil.rmtree(self.path(self.base + ".tmp"), ignore_errors=True)


def _hms(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _message(exc):
    if isinstance(exc, BrokenPipeError):  # the archive's reader went away: vzdump's SIGPIPE handler
        return "interrupted by signal"
    if isinstance(exc, OSError):
        return f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
    return str(exc)


def run_job(job):
    """The task body. Returns the exit code."""
    failures = 0
    lock = get_global_lock(job.host, int(job.opts.get("lockwait", "180")))
    with lock:
        with open(job.host.real("/run/vzdump.pid"), "w") as f:
            f.write(f"UPID:{job.host.node}:{os.getpid():08X}:00000000:{int(time.time()):08X}"
                    f":vzdump:{job.vmids[0] if len(job.vmids) == 1 else ''}:root@pam:\n")
        out(f"INFO: starting new backup job: {job.cmdline()}")
        for vmid in sorted(job.vmids):
            if not job.host.vm_exists(vmid):
                out(f"ERROR: Backup of VM {vmid} failed - unable to find VM '{vmid}'")
                out(f"INFO: Failed at {local_stamp()}")
                failures += 1
            elif not GuestBackup(job, vmid).run():
                failures += 1
        if failures:
            out("INFO: Backup job finished with errors")
            err("job errors")
            return EXIT_TASK_ERROR
        out("INFO: Backup job finished successfully")
        return 0


def main(argv):
    install_signal_handlers()
    host = Host.from_env()
    try:
        pos, opts = cliargs.parse(argv, [("vmid", VMID_LIST)], OPTIONS, USAGE, variadic=True)
        if opts.get("node", host.node) != host.node:
            return 0  # guests of other nodes are not ours to back up
        vmids = sorted({int(v) for v in pos["vmid"].replace(",", " ").split()})
        archive_fd = None
        if opts.get("stdout") == "1":
            if len(vmids) != 1:
                raise TaskError("you can only backup a single VM with option --stdout")
            # `open STDOUT, '>&STDERR'`: the task's lines go to stderr, the
            # archive to a copy of the real stdout
            archive_fd = os.dup(1)
            os.dup2(2, 1)
        check_setup(host, opts)
        return run_job(Job(host, vmids, opts, archive_fd))
    except (ParamError, TaskError) as exc:
        err(str(exc))
        return EXIT_TASK_ERROR
    except Interrupted as exc:
        err(str(exc))
        return EXIT_TASK_ERROR
