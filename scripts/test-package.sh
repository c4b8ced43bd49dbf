#!/usr/bin/env bash
# Builds drswitch's Debian package and checks it the way an installation
# would meet it: control fields, files and modes, the conffile, the
# maintainer scripts (run against stand-ins for adduser, chown, systemctl…),
# the unit (systemd-analyze verify and security against the package's own
# root), and the installed binary running with the installed settings.
#
#   bash scripts/test-package.sh        # a cheap build (profile deb-test)
#   DEB_PROFILE=release bash scripts/test-package.sh
#
# Ends with "package: N checks passed"; any failed check stops it (exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${DEB_PROFILE:-deb-test}
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version >/dev/null 2>&1; then
    echo "installing cargo-deb into ~/.cargo/bin"
    cargo install --locked --quiet cargo-deb
fi
command -v systemd-analyze >/dev/null || bash scripts/install-deps.sh

work=$(mktemp -d -t drswitch-deb.XXXXXX)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

checks=0
ok() { checks=$((checks + 1)); echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

# --- build ---------------------------------------------------------------
cargo deb --quiet --profile "$profile" -o "$work/" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "cargo deb"; }
deb=$(ls "$work"/drswitch_*.deb)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
ok "built $(basename "$deb") ($(du -h "$deb" | cut -f1), profile $profile)"

# --- control -------------------------------------------------------------
info=$(dpkg-deb --info "$deb")
grep -q "^ Package: drswitch$" <<<"$info" || fail "package name"
grep -q "^ Version: $version-" <<<"$info" || fail "version $version"
depends=$(sed -n 's/^ Depends: //p' <<<"$info")
for dep in adduser openssh-client rsync; do
    grep -qw "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
ok "control: drswitch $version, depends on adduser, openssh-client, rsync"

dpkg-deb --ctrl-tarfile "$deb" | tar -xf - -C "$work" ./conffiles ./postinst ./prerm ./postrm
[ "$(cat "$work/conffiles")" = "/etc/drswitch/drswitch.env" ] || fail "conffiles: $(cat "$work/conffiles")"
ok "conffile: /etc/drswitch/drswitch.env"

# --- files and modes as packed -------------------------------------------
listing=$(dpkg-deb -c "$deb")
# Owner root, by name or number.
mode_of() { awk -v p="./$1" '$6 == p { sub("^0/0$", "root/root", $2); print $1, $2 }' <<<"$listing"; }
[ "$(mode_of usr/bin/drswitch)" = "-rwxr-xr-x root/root" ] || fail "usr/bin/drswitch: $(mode_of usr/bin/drswitch)"
[ "$(mode_of etc/drswitch/drswitch.env)" = "-rw-r----- root/root" ] || fail "env file: $(mode_of etc/drswitch/drswitch.env)"
unit_path=$(awk '$6 ~ /\/systemd\/system\/drswitch\.service$/ { print substr($6, 3) }' <<<"$listing")
[ -n "$unit_path" ] || fail "no drswitch.service in the package"
[ "$(mode_of "$unit_path")" = "-rw-r--r-- root/root" ] || fail "unit mode: $(mode_of "$unit_path")"
ok "files: /usr/bin/drswitch 0755, /etc/drswitch/drswitch.env 0640, /$unit_path 0644"

# --- installed into a root of its own ------------------------------------
# The host's systemd units stand in for a Debian system's (sysinit.target,
# network-online.target…), so the unit is verified against that root.
root="$work/root"
mkdir -p "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
dpkg -x "$deb" "$root"
env_file="$root/etc/drswitch/drswitch.env"
[ "$(stat -c %a "$env_file")" = 640 ] || fail "extracted env file mode $(stat -c %a "$env_file")"
setting() { sed -n "s/^$1=//p" "$env_file"; }
[ "$(setting DATA_DIR)" = /var/lib/drswitch ] || fail "DATA_DIR=$(setting DATA_DIR)"
[ "$(setting DATABASE_URL)" = sqlite:///var/lib/drswitch/drswitch.db ] || fail "DATABASE_URL=$(setting DATABASE_URL)"
for secret in SECRET_KEY ADMIN_PASSWORD; do
    [ -z "$(setting "$secret")" ] || fail "$secret is set in the shipped env file"
done
ok "env file: DATA_DIR and DATABASE_URL under /var/lib/drswitch, no secrets"

unit="$root/$unit_path"
for line in "ExecStart=/usr/bin/drswitch serve" "EnvironmentFile=/etc/drswitch/drswitch.env" "User=drswitch" \
    "WorkingDirectory=/var/lib/drswitch" "ReadWritePaths=/var/lib/drswitch" "ProtectSystem=strict" \
    "NoNewPrivileges=yes" "CapabilityBoundingSet=" "SystemCallFilter=@system-service" "Restart=on-failure"; do
    grep -qxF "$line" "$unit" || fail "unit lacks $line"
done
ok "unit: runs /usr/bin/drswitch serve as drswitch with the env file, hardened"

# verify loads the unit as systemd would (every directive parsed, ExecStart
# present and executable in the root); a warning counts as a failure.
if ! out=$(systemd-analyze --root="$root" verify drswitch.service 2>&1) || [ -n "$out" ]; then
    fail "systemd-analyze verify: ${out:-non-zero exit}"
fi
ok "systemd-analyze verify drswitch.service: clean"

exposure=$(systemd-analyze security --offline=true --root="$root" --threshold=25 drswitch.service 2>&1 |
    sed -n 's/.*Overall exposure level for drswitch.service: \([0-9.]*\).*/\1/p') ||
    fail "systemd-analyze security: exposure above 2.5"
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level"
ok "systemd-analyze security: exposure $exposure (at most 2.5)"

# --- maintainer scripts ---------------------------------------------------
for s in postinst prerm postrm; do
    sh -n "$work/$s" || fail "$s is not valid sh"
done
# postinst against stand-ins that log their arguments: first install (no
# user yet), then an upgrade (the user exists).
shims="$work/shims"
mkdir -p "$shims"
for cmd in adduser mkdir chown chmod deb-systemd-invoke systemctl; do
    printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$cmd" "$work" >"$shims/$cmd"
done
# A fresh system: the unit was never installed or enabled before.
printf '#!/bin/sh\necho "deb-systemd-helper $*" >>"%s/calls"\ncase "$*" in *debian-installed* | *was-enabled*) exit 1 ;; esac\n' \
    "$work" >"$shims/deb-systemd-helper"
printf '#!/bin/sh\n[ -f "%s/user" ]\n' "$work" >"$shims/getent"
printf '#!/bin/sh\nexit 1\n' >"$shims/dpkg-statoverride"
chmod +x "$shims"/*
PATH="$shims:$PATH" sh -e "$work/postinst" configure >/dev/null
calls=$(cat "$work/calls")
grep -q "^adduser --system --group .*--home /var/lib/drswitch .* drswitch$" <<<"$calls" || fail "postinst: $calls"
grep -qx "chown drswitch:drswitch /var/lib/drswitch" <<<"$calls" || fail "postinst data dir: $calls"
grep -qx "chmod 0700 /var/lib/drswitch" <<<"$calls" || fail "postinst data dir mode: $calls"
grep -qx "chown root:drswitch /etc/drswitch/drswitch.env" <<<"$calls" || fail "postinst env file: $calls"
grep -q "^deb-systemd-helper .*enable drswitch.service" <<<"$calls" && fail "postinst enables the service: $calls"
grep -q "^deb-systemd-invoke start" <<<"$calls" && fail "postinst starts the service: $calls"
touch "$work/user"
rm "$work/calls"
PATH="$shims:$PATH" sh -e "$work/postinst" configure "$version-1" >/dev/null
grep -q "^adduser" "$work/calls" && fail "postinst adds the user again on upgrade"
ok "postinst: creates the drswitch user once, owns /var/lib/drswitch (0700), env file root:drswitch; does not start"

# --- the installed binary with the installed settings ---------------------
bin="$root/usr/bin/drswitch"
[ "$("$bin" --version)" = "drswitch $version" ] || fail "--version: $("$bin" --version)"
ok "$("$bin" --version)"

# The shipped settings, moved under the temporary root, must be accepted as
# they are: drswitch reads them, migrates, serves and backs up.
data="$root/var/lib/drswitch"
mkdir -p "$data"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run_env=(env -i PATH=/usr/bin:/bin HOME="$data")
while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    run_env+=("${line//\/var\/lib\/drswitch/$data}")
done <"$env_file"
run_env+=(LISTEN="127.0.0.1:$port" ADMIN_PASSWORD=package-test-pw MONITOR_ENABLED=false)
(cd "$data" && "${run_env[@]}" "$bin" migrate >/dev/null) || fail "migrate with the shipped settings"
(cd "$data" && exec "${run_env[@]}" "$bin" serve >"$work/serve.log" 2>&1) &
server=$!
health=""
for _ in $(seq 1 100); do
    health=$(/usr/bin/python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/api/v1/health').read().decode())" 2>/dev/null) && break
    sleep 0.1
done
grep -q '"status":"ok"' <<<"$health" || fail "serve with the shipped settings: $(tail -n 5 "$work/serve.log")"
(cd "$data" && "${run_env[@]}" "$bin" db backup --out "$work/backup.db" >/dev/null) || fail "db backup"
[ "$(stat -c %a "$work/backup.db")" = 600 ] || fail "backup mode"
[ "$(stat -c %a "$data")" = 700 ] && [ "$(stat -c %a "$data/drswitch.db")" = 600 ] || fail "data dir modes"
ok "shipped settings: migrate, serve (health ok), db backup; data dir 0700, database 0600"

echo "package: $checks checks passed"
