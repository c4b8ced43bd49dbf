"""The lab's backup container (stands in for VMA).

A backup archive is a POSIX tar stream, piped through the real compressor
(`zstd`, `lzop`, `gzip`; none for `.vma`). Members, in this order:
  vma-sim.json      manifest: {"format": "pvesim-vma", "version": 1, "vmid", "ctime",
                    "devices": [{"dev_id", "devname", "key", "volid", "size"}]}
  qemu-server.conf  the guest config at backup time (without its `lock:` line)
  drive-<key>       one raw image per disk, in manifest order (e.g. drive-scsi0)
Archives are written and read strictly as streams: a disk is never held in memory.
"""
import io
import json
import os
import subprocess
import tarfile
import time

from .common import TaskError

MANIFEST = "vma-sim.json"
CONFIG = "qemu-server.conf"
FORMAT = "pvesim-vma"

# --compress value -> (extension, compressor argv, decompressor argv). The
# compressors are PVE::VZDump::compressor_info's (`zstd --rsyncable
# --threads=N`, `gzip --rsyncable`, `lzop`), plus -q/-c so that nothing but
# data comes out (vzdump --stdout shares stderr with the task log).
COMPRESSORS = {
    "0": ("", None, None),
    "1": (".lzo", ["lzop", "-c"], ["lzop", "-d", "-c"]),
    "lzo": (".lzo", ["lzop", "-c"], ["lzop", "-d", "-c"]),
    "gzip": (".gz", ["gzip", "--rsyncable", "-c"], ["zcat"]),
    "zstd": (".zst", ["zstd", "-q", "-c", "--rsyncable", "--threads=1"], ["zstd", "-q", "-d", "-c"]),
}


def compressor_argv(compress, zstd_threads=1):
    """The compressor for --compress; --zstd N sets zstd's threads (0 = half the CPUs)."""
    argv = COMPRESSORS[compress][1]
    if argv and argv[0] == "zstd":
        threads = zstd_threads or (os.cpu_count() + 1) // 2
        argv = argv[:-1] + [f"--threads={threads}"]
    return argv
DECOMPRESSORS = {ext: dec for ext, _, dec in COMPRESSORS.values() if ext}


def _tarinfo(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(time.time())
    info.mode = 0o600
    return info


class ArchiveWriter:
    """Writes the container to `path`, or to the file descriptor `fd` (vzdump
    --stdout), through the compressor if any. Blocking writes: a reader that
    stops reading stops the writer; one that goes away makes it fail with
    BrokenPipeError."""

    def __init__(self, path, compress, fd=None, zstd_threads=1):
        comp_argv = compressor_argv(compress, zstd_threads)
        self._file = open(path, "wb") if fd is None else open(fd, "wb", closefd=False)
        self._proc = None
        sink = self._file
        if comp_argv:
            self._proc = subprocess.Popen(comp_argv, stdin=subprocess.PIPE, stdout=self._file)
            sink = self._proc.stdin
        self._tar = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT)
        self._tar.copybufsize = 1 << 20

    def add_bytes(self, name, data):
        self._tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))

    def add_stream(self, name, size, reader):
        self._tar.addfile(_tarinfo(name, size), reader)

    def close(self):
        self._tar.close()
        if self._proc:
            self._proc.stdin.close()
            if self._proc.wait() != 0:
                raise TaskError(f"compressor failed with exit code {self._proc.returncode}")
        self._file.close()

    def abort(self):
        # the tar stream must not flush its buffer into the dead pipe later (__del__)
        self._tar.closed = True
        stream = getattr(self._tar, "fileobj", None)
        if stream is not None:
            stream.closed = True
        if self._proc:
            self._proc.kill()
            self._proc.wait()
            try:
                self._proc.stdin.close()
            except OSError:
                pass  # the pipe is broken: that is why we abort
        try:
            self._file.close()
        except OSError:
            pass


def decompressor_for(path):
    """Decompressor argv for an archive name, or None for a plain `.vma`."""
    for ext, argv in DECOMPRESSORS.items():
        if path.endswith(".vma" + ext):
            return argv
    return None


class ArchiveReader:
    """Iterates the members of a container: manifest, config, then disks.
    `path` None: an uncompressed container read from `stream` (qmrestore -)."""

    def __init__(self, path, stream=None):
        argv = decompressor_for(path) if path is not None else None
        self._proc = None
        if path is None:
            source = stream
            path = "-"
        elif argv:
            self._proc = subprocess.Popen(argv + [path], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
            source = self._proc.stdout
        else:
            source = open(path, "rb")
        self._source = source
        try:
            self._tar = tarfile.open(fileobj=source, mode="r|")
            self._members = iter(self._tar)
            self.manifest = json.loads(self._read_small(MANIFEST))
            if self.manifest.get("format") != FORMAT:
                raise ValueError("unknown format")
            self.config_text = self._read_small(CONFIG).decode()
        except (tarfile.TarError, ValueError, KeyError) as exc:
            self.close()
            raise TaskError(f"archive '{path}' is not a valid backup archive ({exc})") from exc

    def _read_small(self, name):
        member = next(self._members, None)
        if member is None or member.name != name:
            raise ValueError(f"expected member '{name}'")
        return self._tar.extractfile(member).read()

    def disks(self):
        """Yield (device dict, file object) for each disk, in order."""
        for dev in self.manifest["devices"]:
            member = next(self._members, None)
            if member is None or member.name != dev["devname"]:
                raise TaskError(f"archive is truncated: missing '{dev['devname']}'")
            yield dev, self._tar.extractfile(member)

    def close(self):
        if self._proc:
            self._proc.kill()
            self._proc.wait()
        self._source.close()
