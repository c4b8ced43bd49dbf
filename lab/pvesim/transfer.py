"""The data path of vzdump and qmrestore: copy in chunks, count zero blocks,
honour the slow/fail/hang hooks, and notice when the caller went away.

Disks can be GiB large, so everything streams in CHUNK-sized pieces.
"""
import os
import select
import signal
import sys
import time

from .common import Interrupted, TaskError

CHUNK = 1 << 20
ZERO_BLOCK = bytes(4096)


def count_zero_bytes(chunk):
    """Bytes in all-zero, 4 KiB aligned blocks (what vzdump calls sparse)."""
    view = memoryview(chunk)
    zero = 0
    for off in range(0, len(view), 4096):
        block = view[off:off + 4096]
        if len(block) == 4096 and block == ZERO_BLOCK:
            zero += 4096
    return zero


def install_signal_handlers():
    """SIGTERM/SIGINT/SIGHUP end a job the way vzdump reports it."""
    def handler(signum, frame):
        raise Interrupted("interrupted by signal")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


class DataPump:
    """Counts bytes through a job and applies its hooks half-way through."""

    def __init__(self, total, hooks, on_progress, watch_fds=()):
        self.total = total
        self.done = 0
        self.zero = 0
        self.hooks = hooks
        self.on_progress = on_progress
        self.started = time.monotonic()
        self._parent = os.getppid()
        self._stdout_poll = select.poll()
        self._stdout_poll.register(sys.stdout.fileno(), select.POLLOUT)
        for fd in watch_fds:  # vzdump --stdout: the archive's reader
            self._stdout_poll.register(fd, select.POLLOUT)
        self._fired = False

    def check_alive(self):
        """Stop like on SIGHUP when the ssh session vanished: we were re-parented,
        or nobody reads our stdout any more (a pipe whose reader is gone polls
        as POLLERR, a socket as POLLHUP)."""
        if os.getppid() != self._parent:
            raise Interrupted("interrupted by signal")
        for _, events in self._stdout_poll.poll(0):
            if events & (select.POLLERR | select.POLLHUP):
                raise Interrupted("interrupted by signal")

    def account(self, chunk):
        self.check_alive()
        self.done += len(chunk)
        self.zero += count_zero_bytes(chunk)
        if self.hooks.rate:
            ahead = self.done / self.hooks.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)  # rate limit of the slow hook
        if not self._fired and self.done * 2 >= self.total:
            self._fired = True
            self._fire_hooks()
        self.on_progress(self)

    def _fire_hooks(self):
        if self.hooks.hang:
            self.on_progress(self, force=True)
            while True:  # until a signal or the loss of the session ends us
                self.check_alive()
                time.sleep(0.2)
        if self.hooks.fail:
            raise TaskError(self.hooks.fail)

    def copy(self, src, dst, length):
        """Copy exactly `length` bytes from src to dst (file objects)."""
        remaining = length
        while remaining > 0:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise TaskError("unexpected end of data")
            self.account(chunk)
            dst.write(chunk)
            remaining -= len(chunk)

    def elapsed(self):
        return time.monotonic() - self.started


class CountingReader:
    """File wrapper that feeds every chunk read through a DataPump (used as the
    source of tarfile.addfile, which pulls the data itself)."""

    def __init__(self, raw, pump):
        self.raw = raw
        self.pump = pump

    def read(self, size=-1):
        chunk = self.raw.read(size)
        if chunk:
            self.pump.account(chunk)
        return chunk
