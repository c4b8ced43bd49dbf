#!/bin/bash
# Start, inspect and stop the drswitch lab (simulated Proxmox VE hosts on
# loopback) for a person to play with. Tests start lab/lab.py themselves.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_PY="$REPO/lab/lab.py"
PYTHON=/usr/bin/python3

usage() {
    cat <<'EOF'
Usage: scripts/lab.sh up     [--dir DIR] [--hosts dc1,drc1] [--shape NAME:rate=42mbit[,delay=10ms][,loss=0.1%] …]
       scripts/lab.sh status [--dir DIR]
       scripts/lab.sh down   [--dir DIR]

up      creates the drswitch ssh key if missing (${DATA_DIR:-./data}/ssh/id_ed25519),
        two demo VMs (100 running, 101 stopped, 64 MiB disks) on the first host,
        starts the lab in the background and prints what to register in drswitch.
        Host N listens on 127.0.0.N. Hosts keep their keys and VMs between runs.
        --shape (repeatable) puts a host behind a shaped link in its own network
        namespace; it then listens on the link's address (10.213.x.y), shown below.
status  prints the registration details again (or says the lab is not running).
down    stops the lab (sshd and API servers of every host).

DIR defaults to ${LAB_DIR:-./data/lab}. Logs: DIR/lab.log, DIR/<host>/log/.
EOF
}

die() {
    echo "lab.sh: $*" >&2
    exit 1
}

command=${1:-}
[[ -n $command ]] || { usage >&2; exit 2; }
shift
dir=${LAB_DIR:-./data/lab}
hosts=dc1,drc1
shapes=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; dir=$2; shift 2 ;;
        --hosts) [[ $# -ge 2 ]] || die "--hosts needs a value"; hosts=$2; shift 2 ;;
        --shape) [[ $# -ge 2 ]] || die "--shape needs a value"; shapes+=("$2"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $hosts =~ ^[a-zA-Z0-9-]+(,[a-zA-Z0-9-]+)*$ ]] || die "invalid --hosts '$hosts' (e.g. dc1,drc1)"

pid_file="$dir/lab.pid"
out_file="$dir/lab.out"

# The pid file is only trusted if that pid still runs our lab.py.
lab_pid() {
    [[ -f $pid_file ]] || return 1
    local pid
    pid=$(<"$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] && ps -p "$pid" -o args= 2>/dev/null | grep -q "lab.py run" || return 1
    echo "$pid"
}

print_hosts() {
    "$PYTHON" - "$out_file" <<'EOF'
import json
import sys

for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    h = json.loads(line)
    role = "drc" if h["name"].startswith("drc") else "dc"
    print(f"""
{h['name']} — register in drswitch as a hypervisor:
  name:             {h['name']}
  host:             {h['address']}
  ssh_port:         {h['ssh_port']}
  ssh_user:         root
  node:             {h['node']}
  role:             {role}
  api_port:         {h['api_port']}
  api_token_id:     {h['api_token_id']}
  api_token_secret: {h['api_token_secret']}
  tls_fingerprint:  {h['tls_fingerprint']}
  dump_dir:         {h['dump_dir']}
  host key:         {h['host_key_sha256']}  (compare when drswitch pins it)
  known_hosts line: {h['known_hosts_line']}
  files on disk:    {h['root']}""")
    if "link" in h:
        link = h["link"]
        print(f"  shaped link:      {link['rate_bits_per_sec']} bit/s, {link['delay_ms']} ms delay, "
              f"{link['loss_pct']} % loss (netns {h['netns']}, veth {h['veth']})")
EOF
}

ensure_key() {
    local key="${DATA_DIR:-./data}/ssh/id_ed25519"
    if [[ ! -f $key.pub ]]; then
        mkdir -p "$(dirname "$key")"
        chmod 700 "$(dirname "$key")"
        ssh-keygen -q -t ed25519 -N '' -C drswitch -f "$key"
        echo "lab.sh: created the drswitch ssh key $key" >&2
    fi
    realpath "$key.pub"
}

cmd_up() {
    if pid=$(lab_pid); then
        echo "lab.sh: the lab is already running (pid $pid)"
        print_hosts
        return
    fi
    local pubkey first specs=() n=1
    pubkey=$(ensure_key)
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    pid_file="$dir/lab.pid" out_file="$dir/lab.out"
    IFS=, read -ra names <<<"$hosts"
    local shaped=" " shape
    for shape in "${shapes[@]}"; do
        shaped+="${shape%%:*} "
        specs+=(--shape "$shape")
    done
    for name in "${names[@]}"; do
        if [[ $shaped == *" $name "* ]]; then
            specs+=(--host "$name") # its address is the host side of its link
        else
            specs+=(--host "$name:127.0.0.$n")
        fi
        n=$((n + 1))
    done
    first=${names[0]}
    if [[ ! -f $dir/$first/etc/pve/nodes/$first/qemu-server/100.conf ]]; then
        "$PYTHON" "$LAB_PY" create-vm --root "$dir/$first" --node "$first" --vmid 100 --name web01 \
            --disk-size 64M --running >/dev/null
        "$PYTHON" "$LAB_PY" create-vm --root "$dir/$first" --node "$first" --vmid 101 --name db01 \
            --disk-size 64M >/dev/null
        echo "lab.sh: created VMs 100 (web01, running) and 101 (db01, stopped) on $first" >&2
    fi
    rm -f "$out_file"
    nohup "$PYTHON" "$LAB_PY" run --dir "$dir" --authorized-key "$pubkey" "${specs[@]}" \
        --no-stdin-watch </dev/null >"$out_file" 2>"$dir/lab.log" &
    echo $! >"$pid_file"
    local deadline=$((SECONDS + 60))
    until grep -qx READY "$out_file" 2>/dev/null; do
        lab_pid >/dev/null || die "the lab failed to start; see $dir/lab.log"
        ((SECONDS < deadline)) || die "the lab did not get ready in 60 s; see $dir/lab.log"
        sleep 0.1 # waiting for READY in the output file
    done
    echo "lab.sh: lab running (pid $(<"$pid_file")); stop it with: scripts/lab.sh down --dir $dir"
    print_hosts
}

cmd_status() {
    if pid=$(lab_pid); then
        echo "lab.sh: the lab is running (pid $pid)"
        print_hosts
    else
        echo "lab.sh: the lab is not running"
        return 3
    fi
}

cmd_down() {
    local pid
    if ! pid=$(lab_pid); then
        echo "lab.sh: the lab is not running"
        rm -f "$pid_file"
        return
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || die "pid $pid did not stop"
        sleep 0.1 # waiting for the lab to stop its hosts
    done
    rm -f "$pid_file"
    echo "lab.sh: lab stopped"
}

case $command in
    up) cmd_up ;;
    status) cmd_status ;;
    down) cmd_down ;;
    -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
esac
