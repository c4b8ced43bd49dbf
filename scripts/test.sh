#!/usr/bin/env bash
# Runs every drswitch test: installs what the tests need when missing,
# starts a throwaway MariaDB on loopback, then runs the Rust suite against
# SQLite and against MariaDB, the lab's own tests, the web UI in a
# real browser (tests/ui), the API against its own OpenAPI document
# (scripts/schemathesis.sh), and the Debian package (scripts/test-package.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

work=$(mktemp -d -t drswitch-test.XXXXXX)
cleanup() {
    bash scripts/mariadb.sh stop "$work/mariadb" || true
    rm -rf "$work"
}
trap cleanup EXIT

url=$(bash scripts/mariadb.sh start "$work/mariadb" | sed -n 's/^DRSWITCH_TEST_MYSQL_URL=//p')

cargo build --all-targets --quiet

echo "== Rust tests on SQLite"
cargo test --quiet 2>&1 | tee "$work/sqlite.out"

echo "== Rust integration tests on MariaDB"
DRSWITCH_TEST_MYSQL_URL="$url" DRSWITCH_TEST_MYSQL_DIR="$work/mariadb" cargo test --quiet --test '*' 2>&1 | tee "$work/mysql.out"

echo "== Lab and break-glass script tests"
/usr/bin/python3 -m unittest discover -s lab/tests 2>&1 | tee "$work/lab.out"

echo "== Web UI in headless Chromium"
/usr/bin/python3 -m unittest discover -s tests/ui 2>&1 | tee "$work/ui.out"

echo "== OpenAPI conformance (schemathesis)"
bash scripts/schemathesis.sh 2>&1 | tee "$work/schemathesis.out"

echo "== Debian package"
bash scripts/test-package.sh 2>&1 | tee "$work/package.out"

passed=$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' "$work/sqlite.out" "$work/mysql.out")
lab=$(sed -n 's/^Ran \([0-9]*\) tests\? .*/\1/p' "$work/lab.out")
ui=$(sed -n 's/^Ran \([0-9]*\) tests\? .*/\1/p' "$work/ui.out")
ui_skipped=$(sed -n 's/^OK (.*skipped=\([0-9]*\).*/\1/p' "$work/ui.out")
package=$(sed -n 's/^package: \([0-9]*\) checks passed$/\1/p' "$work/package.out")
# The whole schemathesis run counts as one test; it failed the script above otherwise.
conformance=$(grep -c '^schemathesis: .* 0 failed' "$work/schemathesis.out" || true)
echo "$((passed + lab + ui - ${ui_skipped:-0} + package + conformance)) passed, 0 failed"
