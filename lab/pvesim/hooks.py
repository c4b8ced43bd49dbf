"""Test hooks: files under <host root>/hooks that change how the host behaves.

Job hooks (one-shot: the next vzdump / qmrestore on the host consumes them):
  vzdump-fail, qmrestore-fail    content: error message (default "simulated failure")
  vzdump-hang, qmrestore-hang    hang half-way until killed (or the ssh session dies)
  vzdump-slow, qmrestore-slow    content: bytes per second for the data copy
  vzdump-chatter, qmrestore-chatter
                                 content: N bytes (default 65536); before the data copy
                                 the job prints at least N bytes of extra lines of
                                 multi-byte UTF-8 text (2-, 3- and 4-byte characters,
                                 lines of 100-300 bytes), so that line ends and
                                 characters fall at every offset of a reader's buffer
  qm-start-fail                  content: error message (default "start failed: QEMU
                                 exited with code 1"); the next VM start fails with it
Persistent hooks (read on every API/pvesh call, until removed):
  node-cpu                       fraction 0..1 (e.g. 0.93)
  node-memory-total, node-memory-used, node-rootfs-total, node-rootfs-used   bytes
  services-stopped               comma-separated service names (e.g. pveproxy,pvestatd)
Persistent guest hooks (read by qm, until removed); content: comma-separated VMIDs,
empty = every VM of the host:
  qm-shutdown-hang               `qm shutdown` waits its timeout, then fails (or with
                                 --forceStop terminates the VM)
  guest-agent-dead               `qm guest cmd <vmid> ping`: the agent does not answer
"""
import os
import random
import re

JOB_HOOKS = ("vzdump-fail", "vzdump-hang", "vzdump-slow", "vzdump-chatter",
             "qmrestore-fail", "qmrestore-hang", "qmrestore-slow", "qmrestore-chatter")
NODE_HOOKS = ("node-cpu", "node-memory-total", "node-memory-used",
              "node-rootfs-total", "node-rootfs-used", "services-stopped")
QM_HOOKS = ("qm-start-fail", "qm-shutdown-hang", "guest-agent-dead")
ALL_HOOKS = JOB_HOOKS + NODE_HOOKS + QM_HOOKS
DEFAULT_START_FAIL = "start failed: QEMU exited with code 1"
DEFAULT_CHATTER = 65536
# é ü (2 bytes), € 本 (3), 𝄞 🙂 (4) and a space now and then.
CHATTER_CHARS = "\u00e9\u00fc\u20ac\u672c\U0001d11e\U0001f642 "


def set_hook(hooks_dir, name, value):
    os.makedirs(hooks_dir, exist_ok=True)
    tmp = os.path.join(hooks_dir, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(value)
    os.replace(tmp, os.path.join(hooks_dir, name))


def clear_hook(hooks_dir, name):
    try:
        os.unlink(os.path.join(hooks_dir, name))
    except FileNotFoundError:
        pass


def read_hook(hooks_dir, name):
    """Value of a persistent hook, or None when unset."""
    try:
        with open(os.path.join(hooks_dir, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def hook_covers(hooks_dir, name, vmid):
    """Whether a persistent per-guest hook is set for `vmid`: its value lists
    VMIDs (separated by commas, semicolons or blanks); empty means every guest."""
    value = read_hook(hooks_dir, name)
    if value is None:
        return False
    vmids = re.sub(r"[,;]", " ", value).split()
    return not vmids or str(vmid) in vmids


def take_hook(hooks_dir, name):
    """Consume a one-shot hook: value (maybe "") or None. Renaming first makes
    sure that two concurrent jobs never both fire the same hook."""
    path = os.path.join(hooks_dir, name)
    claimed = f"{path}.taken.{os.getpid()}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    with open(claimed) as f:
        value = f.read().strip()
    os.unlink(claimed)
    return value


class JobHooks:
    """The hooks one job (vzdump or qmrestore) consumed when it started."""

    def __init__(self, hooks_dir, prefix):
        self.fail = take_hook(hooks_dir, f"{prefix}-fail")
        self.hang = take_hook(hooks_dir, f"{prefix}-hang") is not None
        slow = take_hook(hooks_dir, f"{prefix}-slow")
        self.rate = int(slow) if slow and slow.isdigit() and int(slow) > 0 else None
        if self.fail == "":
            self.fail = "simulated failure"
        chatter = take_hook(hooks_dir, f"{prefix}-chatter")
        self.chatter = None if chatter is None else int(chatter) if chatter.isdigit() else DEFAULT_CHATTER

    def chatter_lines(self, prefix):
        """The extra lines of the chatter hook (none without it): each `prefix`
        plus multi-byte text, 100-300 bytes with its newline, until the lines
        add up to at least the hook's byte count. Seeded, so a given count
        always gives the same lines."""
        rng = random.Random(self.chatter)
        lines, total = [], 0
        while self.chatter and total < self.chatter:
            target = rng.randint(100, 300)
            line = prefix
            while len(line.encode()) + 1 < target - 3:  # room for one more 4-byte char
                line += rng.choice(CHATTER_CHARS)
            line = line.rstrip(" ") + "."
            lines.append(line)
            total += len(line.encode()) + 1
        return lines
