"""Command-line parsing the way PVE's CLIHandler/JSONSchema does it.

Reproduced on purpose: booleans take an *optional* value (so `--force /x.vma`
swallows the path), parameter errors are reported as
"400 Parameter verification failed." followed by one line per parameter and
the usage line, and VMIDs are checked with pve-vmid's own regex.
"""
import re

from .common import EXIT_TASK_ERROR, VMID_RE, TaskError, err

BOOLEAN = "boolean"
INTEGER = "integer"
STRING = "string"
VMID = "vmid"
VMID_LIST = "vmid-list"

_TRUE = re.compile(r"^(1|yes|on|true)$", re.I)
_FALSE = re.compile(r"^(0|no|off|false)$", re.I)


class ParamError(Exception):
    """Text for stderr, already formatted like PVE prints it."""


def check_value(name, kind, value):
    """Return an error text for one parameter, or None when it is valid."""
    if kind == INTEGER:
        if not re.fullmatch(r"-?\d+", value):
            return f"{name}: type check ('integer') failed - got '{value}'"
    elif kind == VMID:
        if not re.fullmatch(r"-?\d+", value):
            return f"{name}: type check ('integer') failed - got '{value}'"
        if not VMID_RE.match(value):
            return f"{name}: value does not look like a valid VM ID"
    elif kind == VMID_LIST:
        for item in re.split(r"[,;\s]+", value.strip()):
            if not VMID_RE.match(item):
                return f"{name}: invalid format - value '{item}' does not look like a valid VM ID"
    elif isinstance(kind, tuple):
        if value not in kind:
            choices = ", ".join(kind)
            return f"{name}: value '{value}' does not have a value in the enumeration '{choices}'"
    return None


def _read_option(argv, i, options, usage):
    """Parse the option at argv[i]; return (name, raw value, next index)."""
    name = argv[i].lstrip("-")
    value = None
    if "=" in name:
        name, value = name.split("=", 1)
    if name not in options:
        raise ParamError(f"Unknown option: {name}\n400 unable to parse option\n{usage}")
    i += 1
    if value is None:
        takes_next = i < len(argv) and not argv[i].startswith("-")
        if options[name] == BOOLEAN:
            # Getopt::Long ":s": the next word is taken as the value unless it
            # looks like an option; a missing value means 1.
            value = argv[i] if takes_next else "1"
            i += 1 if takes_next else 0
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            raise ParamError(f"Option {name} requires an argument\n400 unable to parse option\n{usage}")
    if options[name] == BOOLEAN:
        if _TRUE.match(value):
            value = "1"
        elif _FALSE.match(value):
            value = "0"
        else:
            raise ParamError("unable to parse boolean option")
    return name, value, i


def parse(argv, positionals, options, usage, variadic=False):
    """Split argv into (positional dict, option dict) or raise ParamError.

    positionals: list of (name, kind); options: name -> kind. With variadic,
    the last positional collects every remaining word (vzdump's VMID list).
    """
    opts, words = {}, []
    i = 0
    while i < len(argv):
        if argv[i].startswith("-") and len(argv[i]) > 1 and not re.match(r"^-\d", argv[i]):
            name, value, i = _read_option(argv, i, options, usage)
            opts[name] = value
        else:
            words.append(argv[i])
            i += 1
    if variadic and len(words) > len(positionals):
        words = words[: len(positionals) - 1] + [" ".join(words[len(positionals) - 1:])]
    if len(words) < len(positionals):
        raise ParamError(f"400 not enough arguments\n{usage}")
    if len(words) > len(positionals):
        raise ParamError(f"400 too many arguments\n{usage}")
    pos = {name: words[n] for n, (name, _) in enumerate(positionals)}
    errors = [e for (name, kind) in positionals if (e := check_value(name, kind, pos[name]))]
    errors += [e for name, value in opts.items() if (e := check_value(name, options[name], value))]
    if errors:
        raise ParamError("400 Parameter verification failed.\n" + "\n".join(errors) + f"\n{usage}")
    return pos, opts


def dispatch(tool, commands, host, argv):
    """Run `<tool> <command> …` from a table of command -> (function,
    positionals, options), printing errors the way PVE's CLI does."""
    if not argv or argv[0] not in commands:
        err(f"unknown command '{tool} {argv[0]}'" if argv else "ERROR: no command specified")
        return EXIT_TASK_ERROR
    func, positionals, options = commands[argv[0]]
    usage = f"{tool} {argv[0]}" + "".join(f" <{name}>" for name, _ in positionals) + " [OPTIONS]"
    try:
        pos, opts = parse(argv[1:], positionals, options, usage)
        return func(host, pos, opts)
    except (ParamError, TaskError) as exc:
        err(str(exc))
        return EXIT_TASK_ERROR
