#!/bin/bash
# drswitch break-glass backup: what a drswitch backup task does, by hand, for a
# disaster in which drswitch itself is down. Runs vzdump on a Proxmox VE host
# over ssh, pulls the archive with rsync, checks its sha256 on both ends and
# removes the source copy. Needs only bash, ssh, rsync and sha256sum.
set -euo pipefail

readonly EXIT_USAGE=2 EXIT_SSH=3 EXIT_REMOTE=4 EXIT_CHECKSUM=5
readonly PROG=backup.sh

usage() {
    cat <<'EOF'
Usage: backup.sh --host HOST --vmid VMID --dest DIR --identity KEY --known-hosts FILE
                 [--port 22] [--user root] [--dump-dir /var/lib/vz/dump]
                 [--compress zstd|lzo|gzip|none] [--mode snapshot|suspend|stop]

Backs up VM VMID of the Proxmox VE host HOST into the local directory DIR:
  1. vzdump VMID --dumpdir DUMP_DIR --compress C --mode M   (on HOST, over ssh)
  2. sha256sum of the archive on HOST
  3. rsync pull to DIR/.<archive>.partial, sha256 check, rename to DIR/<archive>
  4. write DIR/<archive>.sha256 and remove the archive from HOST
The local archive path is printed on stdout; progress goes to stderr.

ssh is key-based with strict host-key checking: the host key must already be
in FILE (--known-hosts); no password is ever asked.

Exit codes:
  0  archive stored and verified
  2  usage error or invalid argument (nothing was contacted)
  3  ssh failed (host unreachable, key refused, host key unknown or changed)
  4  a remote command (vzdump, sha256sum, rsync) failed
  5  checksum mismatch after the transfer (the partial copy is removed)
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

host="" port=22 user=root vmid="" dest="" dump_dir=/var/lib/vz/dump
compress=zstd mode=snapshot identity="" known_hosts=""

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --host | --port | --user | --vmid | --dest | --dump-dir | --compress | --mode | --identity | --known-hosts)
            [[ $# -ge 2 ]] || die $EXIT_USAGE "option $1 needs a value"
            case $1 in
                --host) host=$2 ;;
                --port) port=$2 ;;
                --user) user=$2 ;;
                --vmid) vmid=$2 ;;
                --dest) dest=$2 ;;
                --dump-dir) dump_dir=$2 ;;
                --compress) compress=$2 ;;
                --mode) mode=$2 ;;
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
[[ -n $dest ]] || die $EXIT_USAGE "--dest is required"
[[ -d $dest && -w $dest ]] || die $EXIT_USAGE "--dest '$dest' is not a writable directory"
[[ $dump_dir =~ ^/[A-Za-z0-9._/-]*$ && ! $dump_dir =~ (^|/)\.\.(/|$) ]] ||
    die $EXIT_USAGE "invalid --dump-dir '$dump_dir' (an absolute path of letters, digits, . _ - /)"
dump_dir=${dump_dir%/}
case $compress in
    zstd | lzo | gzip) ;;
    none) compress=0 ;;
    *) die $EXIT_USAGE "invalid --compress '$compress' (zstd, lzo, gzip or none)" ;;
esac
case $mode in
    snapshot | suspend | stop) ;;
    *) die $EXIT_USAGE "invalid --mode '$mode' (snapshot, suspend or stop)" ;;
esac
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
partial=""
cleanup() {
    rm -rf "$work"
    [[ -z $partial ]] || rm -f "$partial"
}
trap cleanup EXIT

if ! remote true 2>"$work/ssh.err"; then
    cat "$work/ssh.err" >&2
    die $EXIT_SSH "cannot log in to $user@$host:$port with strict host-key checking"
fi

# --- 1. vzdump ----------------------------------------------------------------
log "running vzdump $vmid on $host (compress $compress, mode $mode)"
if ! remote "vzdump $(q "$vmid") --dumpdir $(q "$dump_dir") --compress $(q "$compress") --mode $(q "$mode")" \
    | tee "$work/vzdump.log" >&2; then
    die $EXIT_REMOTE "vzdump of VM $vmid failed on $host"
fi
archive=$(sed -n "s/^INFO: creating vzdump archive '\(.*\)'\$/\1/p" "$work/vzdump.log" | tail -n 1)
name=${archive##*/}
[[ ${archive%/*} == "$dump_dir" &&
    $name =~ ^vzdump-qemu-$vmid-[0-9]{4}_[0-9]{2}_[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}\.vma(\.zst|\.lzo|\.gz)?$ ]] ||
    die $EXIT_REMOTE "vzdump did not report a usable archive path (got '$archive')"

# --- 2. checksum at the source --------------------------------------------------
src_sum=$(remote "sha256sum -- $(q "$archive")" | cut -d' ' -f1) ||
    die $EXIT_REMOTE "sha256sum of $archive failed on $host"
[[ $src_sum =~ ^[0-9a-f]{64}$ ]] || die $EXIT_REMOTE "unexpected sha256sum output from $host"

# --- 3. pull, verify, rename ------------------------------------------------------
partial="$dest/.$name.partial"
log "pulling $name"
rsync --times -e "$rsync_rsh" "$user@$host:$archive" "$partial" ||
    die $EXIT_REMOTE "rsync of $archive from $host failed"
local_sum=$(sha256sum -- "$partial" | cut -d' ' -f1)
[[ $local_sum == "$src_sum" ]] ||
    die $EXIT_CHECKSUM "checksum mismatch for $name (source $src_sum, copy $local_sum)"
mv -f -- "$partial" "$dest/$name"
partial=""
printf '%s  %s\n' "$local_sum" "$name" >"$dest/$name.sha256"

# --- 4. source copy no longer needed -----------------------------------------------
remote "rm -f -- $(q "$archive")" || log "warning: could not remove $archive on $host"
log "stored $dest/$name (sha256 $local_sum)"
echo "$dest/$name"
