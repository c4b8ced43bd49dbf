"""`pvesh get <path> [--output-format json|json-pretty] [--<param> <value> …]`.

Answers from the same code as the lab's HTTP API. Only `get` is simulated,
and the `text` output format (tables) falls back to json-pretty.
"""
import json

from .apidata import ApiError, get
from .common import EXIT_TASK_ERROR, err
from .host import Host


def main(argv):
    host = Host.from_env()
    if len(argv) < 2 or argv[0] != "get":
        err("pvesh: only 'pvesh get <api_path>' is simulated")
        return EXIT_TASK_ERROR
    path, fmt, query = argv[1], "text", {}
    rest = argv[2:]
    while rest:
        if not rest[0].startswith("--") or len(rest) < 2:
            err(f"400 unable to parse option\npvesh get {path} [OPTIONS] [FORMAT_OPTIONS]")
            return EXIT_TASK_ERROR
        key, value, rest = rest[0][2:], rest[1], rest[2:]
        if key == "output-format":
            fmt = value
        else:
            query[key] = value
    try:
        data = get(host, path, query)
    except ApiError as exc:
        if exc.errors:
            err(f"{exc.status} {exc.message}")
            for key, text in exc.errors.items():
                err(f"{key}: {text}")
        else:
            err(exc.message)
        return EXIT_TASK_ERROR
    if fmt == "json":
        print(json.dumps(data, separators=(",", ":")))
    else:
        print(json.dumps(data, indent=4, sort_keys=True))
    return 0
