#!/bin/bash
# drswitch break-glass restore: what a drswitch restore task does, by hand, for
# a disaster in which drswitch itself is down. Pushes a vzdump archive to a
# Proxmox VE host with rsync, checks its sha256 there, restores it over the
# replica VM (stopping it first) and starts it. Needs bash, ssh, rsync, sha256sum.
set -euo pipefail

readonly EXIT_USAGE=2 EXIT_SSH=3 EXIT_REMOTE=4 EXIT_CHECKSUM=5
readonly PROG=restore.sh

usage() {
    cat <<'EOF'
Usage: restore.sh --host HOST --archive FILE --vmid VMID --identity KEY --known-hosts FILE
                  [--port 22] [--user root] [--storage local-lvm]
                  [--dump-dir /var/lib/vz/dump] [--no-start] [--keep-archive]

Restores the local vzdump archive FILE as VM VMID on the Proxmox VE host HOST:
  1. if FILE.sha256 exists, check FILE against it
  2. rsync push to DUMP_DIR/.<archive>.partial, sha256 check on HOST, rename
  3. if VMID exists on HOST: qm stop, then qmrestore ARCHIVE VMID --storage S --force 1
     else: qmrestore ARCHIVE VMID --storage S
  4. unless --no-start: qm start VMID and confirm "status: running"
  5. unless --keep-archive: remove the pushed archive from HOST

ssh is key-based with strict host-key checking: the host key must already be
in FILE (--known-hosts); no password is ever asked.

Beware: like Proxmox itself, a qmrestore --force that fails half-way leaves the
old replica destroyed. Re-run with an older archive to get a working replica.

Exit codes:
  0  VM restored (and running unless --no-start)
  2  usage error or invalid argument (nothing was contacted)
  3  ssh failed (host unreachable, key refused, host key unknown or changed)
  4  a remote command (rsync, qm, qmrestore) failed, or the VM did not start
  5  checksum mismatch (local .sha256 file, or after the transfer)
EOF
}

die() {
    local code=$1
    shift
    echo "$PROG: error: $*" >&2
    exit "$code"
}

log() { echo "$PROG: $*" >&2; }

# Single-quote a value for the remote shell. Every value is validated first
# and can never hold a quote; this is a second line of defence.
q() { printf "'%s'" "$1"; }

host="" port=22 user=root archive="" vmid="" storage=local-lvm dump_dir=/var/lib/vz/dump
start=1 keep_archive=0 identity="" known_hosts=""

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --no-start) start=0; shift ;;
        --keep-archive) keep_archive=1; shift ;;
        --host | --port | --user | --archive | --vmid | --storage | --dump-dir | --identity | --known-hosts)
            [[ $# -ge 2 ]] || die $EXIT_USAGE "option $1 needs a value"
            case $1 in
                --host) host=$2 ;;
                --port) port=$2 ;;
                --user) user=$2 ;;
                --archive) archive=$2 ;;
                --vmid) vmid=$2 ;;
                --storage) storage=$2 ;;
                --dump-dir) dump_dir=$2 ;;
                --identity) identity=$2 ;;
                --known-hosts) known_hosts=$2 ;;
            esac
            shift 2 ;;
        *) die $EXIT_USAGE "unknown argument '$1' (see --help)" ;;
    esac
done

# --- validation: nothing below runs with an unchecked value -------------------
[[ -n $host ]] || die $EXIT_USAGE "--host is required"
[[ $host =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] ||
    die $EXIT_USAGE "invalid --host '$host' (a host name or IPv4 address)"
[[ $port =~ ^[0-9]{1,5}$ ]] && ((10#$port >= 1 && 10#$port <= 65535)) ||
    die $EXIT_USAGE "invalid --port '$port' (1-65535)"
[[ $user =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die $EXIT_USAGE "invalid --user '$user'"
[[ -n $vmid ]] || die $EXIT_USAGE "--vmid is required"
[[ $vmid =~ ^[1-9][0-9]{2,8}$ ]] || die $EXIT_USAGE "invalid --vmid '$vmid' (100-999999999)"
[[ -n $archive ]] || die $EXIT_USAGE "--archive is required"
name=${archive##*/}
[[ $name =~ ^vzdump-qemu-[1-9][0-9]{2,8}-[0-9]{4}_[0-9]{2}_[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}\.vma(\.zst|\.lzo|\.gz)?$ ]] ||
    die $EXIT_USAGE "invalid --archive name '$name' (expected vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma[.zst|.lzo|.gz])"
[[ -f $archive && -r $archive ]] || die $EXIT_USAGE "--archive '$archive' is not a readable file"
[[ $storage =~ ^[A-Za-z][A-Za-z0-9_.-]{0,63}$ ]] || die $EXIT_USAGE "invalid --storage '$storage'"
[[ $dump_dir =~ ^/[A-Za-z0-9._/-]*$ && ! $dump_dir =~ (^|/)\.\.(/|$) ]] ||
    die $EXIT_USAGE "invalid --dump-dir '$dump_dir' (an absolute path of letters, digits, . _ - /)"
dump_dir=${dump_dir%/}
for file_opt in identity known_hosts; do
    file=${!file_opt}
    [[ -n $file ]] || die $EXIT_USAGE "--${file_opt//_/-} is required"
    [[ $file =~ ^[A-Za-z0-9._/+-]+$ ]] ||
        die $EXIT_USAGE "--${file_opt//_/-} path '$file' may only hold letters, digits and . _ / + -"
    [[ -f $file && -r $file ]] || die $EXIT_USAGE "--${file_opt//_/-} '$file' is not a readable file"
done

# --- ssh plumbing -------------------------------------------------------------
ssh_opts=(-p "$port" -i "$identity" -o IdentitiesOnly=yes -o BatchMode=yes
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o PasswordAuthentication=no -o ConnectTimeout=15)
rsync_rsh="ssh ${ssh_opts[*]}"

remote() { ssh "${ssh_opts[@]}" "$user@$host" "$1"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- 1. the local copy must be intact ---------------------------------------------
local_sum=$(sha256sum -- "$archive" | cut -d' ' -f1)
if [[ -f $archive.sha256 ]]; then
    expected=$(cut -d' ' -f1 "$archive.sha256")
    [[ $expected == "$local_sum" ]] ||
        die $EXIT_CHECKSUM "$archive does not match $archive.sha256 (expected $expected, got $local_sum)"
fi

if ! remote true 2>"$work/ssh.err"; then
    cat "$work/ssh.err" >&2
    die $EXIT_SSH "cannot log in to $user@$host:$port with strict host-key checking"
fi

# --- 2. push, verify on the host, rename ---------------------------------------------
partial="$dump_dir/.$name.partial"
target="$dump_dir/$name"
log "pushing $name to $host:$dump_dir"
rsync --times -e "$rsync_rsh" -- "$archive" "$user@$host:$partial" ||
    die $EXIT_REMOTE "rsync of $archive to $host failed"
remote_sum=$(remote "sha256sum -- $(q "$partial")" | cut -d' ' -f1) ||
    die $EXIT_REMOTE "sha256sum of $partial failed on $host"
if [[ $remote_sum != "$local_sum" ]]; then
    remote "rm -f -- $(q "$partial")" || true
    die $EXIT_CHECKSUM "checksum mismatch on $host for $name (local $local_sum, remote $remote_sum)"
fi
remote "mv -f -- $(q "$partial") $(q "$target")" || die $EXIT_REMOTE "could not rename $partial on $host"

# --- 3. restore over the replica ---------------------------------------------------
force=()
if remote "qm status $(q "$vmid")" >"$work/status.out" 2>"$work/status.err"; then
    log "VM $vmid exists on $host ($(cat "$work/status.out")): stopping it and restoring with --force"
    remote "qm stop $(q "$vmid")" >&2 || die $EXIT_REMOTE "qm stop $vmid failed on $host"
    force=(--force 1)
elif ! grep -q "does not exist" "$work/status.err"; then
    cat "$work/status.err" >&2
    die $EXIT_REMOTE "qm status $vmid failed on $host"
fi
log "restoring $name as VM $vmid on $host (storage $storage)"
remote "qmrestore $(q "$target") $(q "$vmid") --storage $(q "$storage") ${force[*]}" >&2 ||
    die $EXIT_REMOTE "qmrestore of $name as VM $vmid failed on $host"

# --- 4. start and confirm -----------------------------------------------------------
if ((start)); then
    remote "qm start $(q "$vmid")" >&2 || die $EXIT_REMOTE "qm start $vmid failed on $host"
    status=$(remote "qm status $(q "$vmid")") || die $EXIT_REMOTE "qm status $vmid failed on $host"
    [[ $status == "status: running" ]] || die $EXIT_REMOTE "VM $vmid did not start on $host ($status)"
fi

# --- 5. tidy up ---------------------------------------------------------------------
if ((!keep_archive)); then
    remote "rm -f -- $(q "$target")" || log "warning: could not remove $target on $host"
fi
log "VM $vmid restored on $host from $name$( ((start)) && echo ", running")"
