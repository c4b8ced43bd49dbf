"""Command-line parsing the way PVE's CLIHandler/JSONSchema does it.

Reproduced on purpose: booleans take an *optional* value (so `--force /x.vma`
swallows the path), parameter errors are reported as
"400 Parameter verification failed." followed by one line per parameter and
the usage line, and VMIDs are checked with pve-vmid's own regex.

An options table maps a name to its kind. A key may also be a compiled regex
(numbered options such as net0 … net31), and a kind may be a function
(name, value) -> error text or None, for formats only one tool knows.
Errors of a named *format* (pve-tag-list, dns-name, pve-configid-list) end
with a newline of their own, which gives the blank line PVE prints after them.
"""
import re

from .common import EXIT_TASK_ERROR, VMID_RE, TaskError, err, split_list

BOOLEAN = "boolean"
INTEGER = "integer"
STRING = "string"
VMID = "vmid"
VMID_LIST = "vmid-list"
TAG_LIST = "pve-tag-list"
DNS_NAME = "dns-name"
CONFIGID_LIST = "pve-configid-list"

TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-\+\.]*$", re.I)  # PVE::JSONSchema::PVE_TAG_RE
_DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
DNS_NAME_RE = re.compile(rf"^({_DNS_LABEL}\.)*{_DNS_LABEL}$")
CONFIGID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.I)

_TRUE = re.compile(r"^(1|yes|on|true)$", re.I)
_FALSE = re.compile(r"^(0|no|off|false)$", re.I)


class ParamError(Exception):
    """Text for stderr, already formatted like PVE prints it."""


class CodeParamError(ParamError):
    """A parameter error the command itself finds (raise_param_exc): {param:
    text}; `dispatch` adds the usage line, as RESTHandler::cli_handler does."""

    def __init__(self, errors):
        super().__init__("400 Parameter verification failed.\n"
                         + "".join(f"{name}: {text}\n" for name, text in errors.items()))


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
    elif kind in (TAG_LIST, DNS_NAME, CONFIGID_LIST):
        problem = _format_problem(kind, value)
        return f"{name}: invalid format - {problem}\n" if problem else None
    elif callable(kind):
        return kind(name, value)
    return None


def _format_problem(kind, value):
    """The die message of a pve-common format check (check_format), or None."""
    if kind == TAG_LIST:
        if any(not TAG_RE.match(tag) for tag in split_list(value)):
            return "invalid characters in tag"
    elif kind == DNS_NAME:
        if not DNS_NAME_RE.match(value):
            return "value does not look like a valid DNS name"
    elif kind == CONFIGID_LIST:
        for item in split_list(value):
            if not CONFIGID_RE.match(item):
                return f"invalid configuration ID '{item}'"
    return None


def option_kind(options, name):
    """The kind of option `name`: its own entry, else that of the first regex
    key it matches in full; None for an unknown option."""
    if name in options:
        return options[name]
    for key, kind in options.items():
        if isinstance(key, re.Pattern) and key.fullmatch(name):
            return kind
    return None


def _read_option(argv, i, options, usage):
    """Parse the option at argv[i]; return (name, raw value, next index)."""
    name = argv[i].lstrip("-")
    value = None
    if "=" in name:
        name, value = name.split("=", 1)
    kind = option_kind(options, name)
    if kind is None:
        raise ParamError(f"Unknown option: {name}\n400 unable to parse option\n{usage}")
    i += 1
    if value is None:
        takes_next = i < len(argv) and not argv[i].startswith("-")
        if kind == BOOLEAN:
            # Getopt::Long ":s": the next word is taken as the value unless it
            # looks like an option; a missing value means 1.
            value = argv[i] if takes_next else "1"
            i += 1 if takes_next else 0
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            raise ParamError(f"Option {name} requires an argument\n400 unable to parse option\n{usage}")
    if kind == BOOLEAN:
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
    errors += [e for name, value in opts.items()
               if (e := check_value(name, option_kind(options, name), value))]
    if errors:
        raise ParamError("400 Parameter verification failed.\n" + "\n".join(errors) + f"\n{usage}")
    return pos, opts


def usage_line(prefix, positionals, options):
    """RESTHandler::getopt_usage 'short': `<prefix> <arg> …`, then ` [OPTIONS]`
    only when the method has options (so `qm guest cmd <vmid> <command>` has
    none, and a command without positionals keeps the blank after its name)."""
    args = " ".join(f"<{name}>" for name, _ in positionals)
    return f"{prefix} {args}" + (" [OPTIONS]" if options else "")


def dispatch(tool, commands, host, argv):
    """Run `<tool> <command> …` from a table of command -> (function,
    positionals, options), printing errors the way PVE's CLI does."""
    if not argv or argv[0] not in commands:
        err(f"unknown command '{tool} {argv[0]}'" if argv else "ERROR: no command specified")
        return EXIT_TASK_ERROR
    func, positionals, options = commands[argv[0]]
    usage = usage_line(f"{tool} {argv[0]}", positionals, options)
    try:
        pos, opts = parse(argv[1:], positionals, options, usage)
        return func(host, pos, opts)
    except CodeParamError as exc:
        err(str(exc) + usage)
        return EXIT_TASK_ERROR
    except (ParamError, TaskError) as exc:
        err(str(exc))
        return EXIT_TASK_ERROR
