#!/usr/bin/env bash
# Installs the Debian packages drswitch's tests, lab and benchmarks need,
# when they are missing. Safe to run again.
set -euo pipefail

# systemd: systemd-analyze, which checks the packaged unit (scripts/test-package.sh).
# python3-venv and util-linux (unshare, setpriv): the schemathesis run (scripts/schemathesis.sh).
packages=(openssh-server openssh-client rsync mariadb-server mariadb-client lzop zstd openssl python3 iproute2
          chromium chromium-driver python3-selenium systemd python3-venv util-linux)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# schemathesis, pinned, in a venv of the system python (scripts/schemathesis.sh).
SCHEMATHESIS_VERSION=4.32.5
venv=${SCHEMATHESIS_VENV:-/var/cache/drswitch-test/venv}
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    echo "installing: schemathesis $SCHEMATHESIS_VERSION in $venv"
    $SUDO mkdir -p "$(dirname "$venv")"
    $SUDO /usr/bin/python3 -m venv "$venv"
    $SUDO "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
