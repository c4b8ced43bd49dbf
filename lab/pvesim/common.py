"""Formatting helpers and output plumbing shared by the simulated PVE tools.

Every format here mirrors a Perl helper in Proxmox (named in each docstring)
so that drswitch parses the same text it would see on a real host.
"""
import math
import os
import re
import sys
import time
import urllib.parse

VMID_RE = re.compile(r"^[1-9][0-9]{2,8}$")
NODE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")
# pve-storage's "standard" backup name (archive_info); group 1 = type, 2 = vmid.
ARCHIVE_NAME_RE = re.compile(
    r"^vzdump-(qemu|lxc|openvz)-([1-9][0-9]{2,8})-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})"
    r"\.(vma|tar|tgz)(\.(gz|lzo|zst|bz2))?$"
)

EXIT_TASK_ERROR = 255  # Perl's exit(-1) as the shell sees it


class Interrupted(Exception):
    """The job lost its caller (signal, closed pipe, vanished ssh session)."""


class TaskError(Exception):
    """A task failure: the message goes to stderr and the tool exits 255."""


_stdout_lost = False


def out(line=""):
    """Print one task-log line on stdout (where the PVE CLI copies task output).

    The first write to a closed pipe (the ssh client went away) interrupts the
    job; later writes, made while cleaning up, are dropped silently.
    """
    global _stdout_lost
    if _stdout_lost:
        return
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError as exc:
        _stdout_lost = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit-time flush cannot fail again
        raise Interrupted("interrupted by signal") from exc


def err(line):
    """Print one line on stderr, ignoring a caller that already went away."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except BrokenPipeError:
        pass


def render_bytes(value, precision=1):
    """PVE::Tools::render_bytes: binary units, fixed decimals ("14.8 GiB", "0.0 B")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    unit = 0
    if value > 1023:
        unit = min(int(math.log(value) / math.log(1024)), len(units) - 1)
        value = value / (1024 ** unit)
    return f"{value:.{precision}f} {units[unit]}"


def render_rate(bytes_per_sec):
    """Rates in vzdump progress lines: "0 B/s" when idle, else one decimal."""
    if bytes_per_sec <= 0:
        return "0 B/s"
    return render_bytes(bytes_per_sec, 1) + "/s"


def render_duration(seconds):
    """PVE::Tools::render_duration: "3s", "1m 5s", "1h 2m 3s"."""
    rest = int(round(seconds))
    if rest <= 0:
        return "0s"
    parts = []
    for suffix, unit in (("h", 3600), ("m", 60)):
        if rest >= unit or parts:
            parts.append(f"{rest // unit}{suffix}")
            rest %= unit
    parts.append(f"{rest}s")
    return " ".join(parts)


def vzdump_format_size(size):
    """PVE::VZDump::format_size: "512KB", "834MB", "1.23GB", "1.50TB"."""
    kb = size / 1024
    if kb < 1024:
        return f"{int(kb)}KB"
    mb = size / (1024 * 1024)
    if mb < 1024:
        return f"{int(mb)}MB"
    gb = mb / 1024
    if gb < 1024:
        return f"{gb:.2f}GB"
    return f"{gb / 1024:.2f}TB"


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_disk_size(text):
    """Disk sizes as in qemu configs: "64M", "32G", "512K" or plain bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip())
    if not match:
        raise ValueError(f"invalid disk size '{text}'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def format_disk_size(size):
    """PVE::JSONSchema::format_size: the largest unit that divides exactly."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SIZE_UNITS[suffix]
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def split_list(text):
    """PVE::Tools::split_list: items separated by commas, semicolons or white space."""
    return re.sub(r"[,;]", " ", text or "").split()


def encode_text(text):
    """PVE::Tools::encode_text: UTF-8, then %XX for control and non-ASCII bytes
    and ':' (how descriptions are kept in guest configs and shown by `qm config`)."""
    return "".join(chr(b) if 0x20 <= b <= 0x39 or 0x3b <= b <= 0x7e else f"%{b:02X}"
                   for b in text.encode())


def decode_text(data):
    """PVE::Tools::decode_text: undo every %XX (also ones encode_text never wrote)."""
    return urllib.parse.unquote(data, errors="replace")


def local_stamp(epoch=None):
    """%F %H:%M:%S in the node's local time, as vzdump logs it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def archive_stamp(epoch):
    """The timestamp part of a vzdump archive name (local time)."""
    return time.strftime("%Y_%m_%d-%H_%M_%S", time.localtime(epoch))
