#!/usr/bin/python3
"""The drswitch lab: simulated Proxmox VE hosts on loopback.

    lab.py run --dir DIR --authorized-key PUBKEY --host NAME[:ADDR] [--host …]
               [--shape NAME:rate=42mbit[,delay=20ms][,loss=0.5%] …] [--no-stdin-watch]
    lab.py create-vm --root R --node N --vmid 100 [--name web01] [--disk-size 64M]
                     [--disks 1] [--storage local-lvm|local] [--memory 2048] [--running]
                     [--onboot] [--agent] [--seed S]
    lab.py disk-path --root R --node N --vmid 100 [--disk scsi0]
    lab.py vm-status --root R --node N --vmid 100
    lab.py hook --root R NAME [VALUE] | --clear

`run` prints one JSON line per host, then READY, and stays in the foreground
until stdin closes (unless --no-stdin-watch) or it gets SIGTERM/SIGINT.
Meanwhile it carries out the stdin lines `power-off NAME`, `power-on NAME`,
`drop-ssh NAME` and `shape NAME rate=…[,delay=…][,loss=…]`, answering each
with one stdout line `OK …` or `ERR <message>`. A host named in --shape lives
in its own network namespace behind a shaped link (labnet.py). See
lab/README.md.
"""
import argparse
import json
import os
import re
import select
import signal
import sys
import traceback

LAB_DIR = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, LAB_DIR)

from pvesim import hooks  # noqa: E402
from pvesim.common import NODE_RE, VMID_RE, parse_disk_size  # noqa: E402
from pvesim.host import Host  # noqa: E402
from pvesim.provision import create_vm  # noqa: E402
from labhost import LabHost, LabError  # noqa: E402
import labnet  # noqa: E402


def parse_host_spec(spec):
    name, _, addr = spec.partition(":")
    addr = addr or "127.0.0.1"
    if not NODE_RE.match(name):
        raise LabError(f"invalid host name '{name}' (letters, digits and '-')")
    if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}", addr):
        raise LabError(f"address '{addr}' is not a loopback address (127.x.y.z)")
    return name, addr


def check_lab_dir(path):
    """The host dirs must stay visible inside the hosts' mount namespaces."""
    path = os.path.realpath(path)
    if re.search(r"[\s'\"\\$`]", path):
        raise LabError(f"lab dir '{path}' must not contain blanks, quotes or shell characters")
    for hidden in ("/run", "/var/run", "/var/lib", "/etc/pve"):
        if path == hidden or path.startswith(hidden + "/"):
            raise LabError(f"lab dir '{path}' is under {hidden}, which each host mounts over")
    return path


def catch_stop_signals():
    """Turn SIGTERM/SIGINT/SIGHUP into a byte on a pipe, so that a signal that
    arrives while the hosts start still stops the lab once they are up."""
    wake_r, wake_w = os.pipe()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: os.write(wake_w, b"x"))
    return wake_r


COMMANDS = {"power-off": 2, "power-on": 2, "drop-ssh": 2, "shape": 3}  # verb -> words
USAGE = "power-off NAME | power-on NAME | drop-ssh NAME | shape NAME rate=…[,delay=…][,loss=…]"


def control(hosts, line):
    """Carry out one control line; return the answer line."""
    words = line.split()
    if not words or COMMANDS.get(words[0]) != len(words):
        return f"ERR unknown command '{line}' ({USAGE})"
    verb, name = words[:2]
    lab_host = hosts.get(name)
    if lab_host is None:
        return f"ERR unknown host '{name}'"
    try:
        if verb == "power-off":
            lab_host.power_off()
        elif verb == "power-on":
            lab_host.power_on()
        elif verb == "drop-ssh":
            return f"OK drop-ssh {name} {lab_host.drop_ssh()}"
        else:
            if lab_host.link is None:
                return f"ERR host '{name}' has no shaped link (start it with --shape {name}:rate=…)"
            spec = labnet.LinkSpec.parse(words[2])
            lab_host.link.apply(spec)
            return f"OK shape {name} {spec}"
    except Exception as exc:  # the lab stays up; the caller learns what went wrong
        if not isinstance(exc, (LabError, OSError, labnet.NetError)):
            traceback.print_exc()
        return "ERR " + " ".join(str(exc).split())
    return f"OK {verb} {name}"


def serve(hosts, wake_r, watch_stdin):
    """Block until stdin reaches EOF (our parent died or closed the pipe) or a
    stop signal arrived; meanwhile answer the control lines read from stdin."""
    by_name = {lab_host.name: lab_host for lab_host in hosts}
    stdin = sys.stdin.fileno()
    watched = [wake_r] + ([stdin] if watch_stdin else [])
    pending = b""
    while True:
        ready, _, _ = select.select(watched, [], [])
        if wake_r in ready:
            return
        data = os.read(stdin, 4096)
        if not data:
            return
        *lines, pending = (pending + data).split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                print(control(by_name, line), flush=True)
            except BrokenPipeError:  # nobody reads our answers any more: stop
                sys.stdout = open(os.devnull, "w")
                return


def cmd_run(args):
    lab_dir = check_lab_dir(args.dir)
    with open(args.authorized_key) as f:
        pubkey = f.read().strip()
    if not pubkey.startswith("ssh-"):
        raise LabError(f"{args.authorized_key} does not look like an ssh public key")
    specs = [parse_host_spec(s) for s in args.host]
    if len({name for name, _ in specs}) != len(specs):
        raise LabError("host names must be unique")
    shapes = dict(parse_shapes(args.shape or [], args.host))
    if shapes:
        labnet.check_tools()
    wake_r = catch_stop_signals()
    hosts, links = [], []
    try:
        # namespaces of labs that were killed (SIGKILL) before they could clean up
        labnet.remove_stale_namespaces()
        for name, addr in specs:
            link = None
            if name in shapes:
                link = labnet.Link(os.getpid(), len(links), shapes[name])
                links.append(link)
                link.create()
            hosts.append(LabHost(lab_dir, name, addr, pubkey, link))
        for lab_host in hosts:
            lab_host.prepare()
            lab_host.start()
        for lab_host in hosts:
            print(json.dumps(lab_host.info()))
        print("READY", flush=True)
        serve(hosts, wake_r, not args.no_stdin_watch)
    finally:
        for step in [h.stop for h in hosts] + [link.destroy for link in links] + [
                lambda: labnet.remove_namespaces(os.getpid()),  # also any half-made by a failed create()
                lambda: labnet.wait_gone([link.veth for link in links])]:
            try:
                step()
            except Exception:  # clean up as much as possible, whatever failed
                traceback.print_exc()
    return 0


def parse_shapes(shape_args, host_args):
    """--shape NAME:SPEC items; a shaped host's address is chosen by the lab."""
    shapes = []
    given = {name: addr for name, _, addr in (h.partition(":") for h in host_args)}
    for text in shape_args:
        name, spec = labnet.parse_shape_arg(text)
        if name not in given:
            raise LabError(f"--shape {name}: no --host {name}")
        if given[name]:
            raise LabError(f"--shape {name}: a shaped host gets its address from the lab "
                           f"(write --host {name}, not --host {name}:{given[name]})")
        if name in dict(shapes):
            raise LabError(f"--shape {name} given twice")
        shapes.append((name, spec))
    return shapes


def _host(args):
    if not NODE_RE.match(args.node):
        raise LabError(f"invalid node name '{args.node}'")
    return Host(args.root, args.node)


def _vmid(text):
    if not VMID_RE.match(text):
        raise argparse.ArgumentTypeError("value does not look like a valid VM ID")
    return int(text)


def cmd_create_vm(args):
    paths = create_vm(_host(args), args.vmid, name=args.name, disk_size=parse_disk_size(args.disk_size),
                      disks=args.disks, running=args.running, seed=args.seed, storage=args.storage,
                      memory=args.memory, onboot=args.onboot, agent=args.agent)
    for path in paths:
        print(path)
    return 0


def cmd_disk_path(args):
    host = _host(args)
    if not host.vm_exists(args.vmid):
        raise LabError(f"VM {args.vmid} does not exist on node '{host.node}'")
    for key, volid, _ in host.read_config(args.vmid).disks():
        if key == args.disk:
            print(host.volume_path(volid))
            return 0
    raise LabError(f"VM {args.vmid} has no disk '{args.disk}'")


def cmd_vm_status(args):
    host = _host(args)
    if not host.vm_exists(args.vmid):
        print("missing")
    else:
        print("running" if host.running_pid(args.vmid) else "stopped")
    return 0


def cmd_hook(args):
    hooks_dir = os.path.join(os.path.abspath(args.root), "hooks")
    if args.clear:
        hooks.clear_hook(hooks_dir, args.name)
    else:
        hooks.set_hook(hooks_dir, args.name, args.value or "")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="lab.py", description="simulated Proxmox VE hosts for drswitch")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the hosts and stay in the foreground")
    run.add_argument("--dir", required=True, help="lab directory; each host gets DIR/NAME")
    run.add_argument("--authorized-key", required=True, help="ssh public key allowed to log in as root")
    run.add_argument("--host", action="append", required=True, metavar="NAME[:ADDR]")
    run.add_argument("--shape", action="append", metavar="NAME:rate=R[,delay=D][,loss=L]",
                     help="put host NAME behind a shaped link in its own network namespace, e.g. "
                          "dc1:rate=42mbit,delay=10ms,loss=0.1%% (rate in bit/kbit/mbit/gbit, "
                          "delay in us/ms/s, loss in %%); repeatable")
    run.add_argument("--no-stdin-watch", action="store_true",
                     help="do not read stdin: no stop on EOF, no control lines (for running in the background)")
    run.set_defaults(func=cmd_run)

    def host_args(p, vmid=True):
        p.add_argument("--root", required=True, help="the host's root dir (`root` in the JSON line)")
        p.add_argument("--node", required=True)
        if vmid:
            p.add_argument("--vmid", required=True, type=_vmid)

    create = sub.add_parser("create-vm", help="create a VM with filled disks")
    host_args(create)
    create.add_argument("--name")
    create.add_argument("--disk-size", default="64M")
    create.add_argument("--disks", type=int, default=1)
    create.add_argument("--storage", choices=("local-lvm", "local"), default="local-lvm")
    create.add_argument("--memory", type=int, default=2048)
    create.add_argument("--running", action="store_true")
    create.add_argument("--onboot", action="store_true", help="`onboot: 1`: started when the host powers on")
    create.add_argument("--agent", action="store_true",
                        help="`agent: 1`: the QEMU guest agent answers `qm guest cmd <vmid> ping`")
    create.add_argument("--seed", type=int)
    create.set_defaults(func=cmd_create_vm)

    disk = sub.add_parser("disk-path", help="print the real path of a VM disk image")
    host_args(disk)
    disk.add_argument("--disk", default="scsi0")
    disk.set_defaults(func=cmd_disk_path)

    status = sub.add_parser("vm-status", help="print running, stopped or missing")
    host_args(status)
    status.set_defaults(func=cmd_vm_status)

    hook = sub.add_parser("hook", help="set or clear a test hook (see lab/README.md)")
    hook.add_argument("--root", required=True)
    hook.add_argument("--clear", action="store_true")
    hook.add_argument("name", choices=hooks.ALL_HOOKS)
    hook.add_argument("value", nargs="?")
    hook.set_defaults(func=cmd_hook)
    return parser


def main():
    args = build_parser().parse_args()
    try:
        return args.func(args)
    except (LabError, ValueError, OSError, labnet.NetError) as exc:
        print(f"lab.py: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
