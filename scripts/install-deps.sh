#!/usr/bin/env bash
# Installs the Debian packages drswitch's tests, lab and benchmarks need,
# when they are missing. Safe to run again.
set -euo pipefail

# systemd: systemd-analyze, which checks the packaged unit (scripts/test-package.sh).
packages=(openssh-server openssh-client rsync mariadb-server mariadb-client lzop zstd openssl python3 iproute2
          chromium chromium-driver python3-selenium systemd)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
