"""What `qm` and `pct` share about guest configs: showing them (`config`) and
changing them (`set`).

Follows qemu-server's update_vm_api and pve-container's update_pct_config:
`--delete` items are checked before the guest is touched, deleting a key that
is not set only warns, and tags are stored the way get_unique_tags leaves them.
"""
from .cliargs import CodeParamError
from .common import encode_text, err, split_list


def config_lines(config):
    """`key: value` lines as `qm config` / `pct config` print them: every key
    sorted, the description among them, encode_text'ed (a newline shows as
    %0A); `digest` and raw `lxc.*` keys left out."""
    values = {k: v for k, v in config.values.items() if k != "digest" and not k.startswith("lxc.")}
    if config.description:
        values["description"] = encode_text(config.description)
    return [f"{key}: {values[key]}" for key in sorted(values)]


def unique_tags(value):
    """PVE::GuestHelpers::get_unique_tags with the default tag style: lower
    case, sorted case-insensitively, duplicates dropped, joined with ';'."""
    tags = []
    for tag in sorted(split_list(value), key=str.lower):
        if tag.lower() not in tags:
            tags.append(tag.lower())
    return ";".join(tags)


def check_deletes(opts, changes, option_exists):
    """The keys of `--delete`, refused like the API does before it loads the
    config (a parameter error, so the CLI adds the usage line)."""
    keys = split_list(opts.get("delete", ""))
    for key in keys:
        if key in changes:
            raise CodeParamError({"delete": f"you can't use '-{key}' and -delete {key}' at the same time"})
        if not option_exists(key):
            raise CodeParamError({"delete": f"unknown option '{key}'"})
    return keys


def is_set(config, key):
    """Whether a --delete has something to remove; warns (and the tool goes
    on) when not, as both tools do."""
    present = bool(config.description) if key == "description" else key in config.values
    if not present:
        err(f"cannot delete '{key}' - not set in current configuration!")
    return present


def apply_common(config, changes):
    """The options both tools store as given (tags normalised, the
    description as `#` lines); returns the ones it did not handle."""
    rest = {}
    for key, value in changes.items():
        if key == "tags":
            tags = unique_tags(value)
            if tags:
                config.values["tags"] = tags
            else:
                config.values.pop("tags", None)  # PVE writes an empty `tags:` it cannot read back
        elif key == "description":
            config.description = value
        elif key in ("onboot", "name"):
            config.values[key] = value
        else:
            rest[key] = value
    return rest
