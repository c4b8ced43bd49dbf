#!/usr/bin/env bash
# Fuzzes drswitch's API from its own OpenAPI document with schemathesis:
# every check, every phase (examples, coverage, fuzzing, stateful), as the
# admin through an API token. Ends with one line,
# `schemathesis: N suites (…), F failed, seed, S s`, and exits non-zero on any
# failure or error.
#
# The fuzzed server can reach nothing: it runs in a network namespace of its
# own that has only loopback (where nothing but itself listens), so
# hypervisors, webhooks or mail servers that the fuzzer registers are never
# contacted; it runs as `nobody` (when started as root), so a command target
# the fuzzer registers runs with no rights; and its worker, scheduler and
# monitor are off, so queued tasks stay queued.
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 10 per operation),
# SCHEMATHESIS_SEED (default fixed, `random` for a new one), and
# SCHEMATHESIS_VENV (default /var/cache/drswitch-test/venv, made by
# scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SCHEMATHESIS_VENV:-/var/cache/drswitch-test/venv}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-10}
seed=${SCHEMATHESIS_SEED:-20240611}
[ "$seed" = random ] && seed=$RANDOM$RANDOM

if [ "${1:-}" != --inside ]; then
    [ -x "$venv/bin/schemathesis" ] || { echo "schemathesis: not installed in $venv; run scripts/install-deps.sh" >&2; exit 1; }
    cargo build --quiet --bin drswitch
    export DRSWITCH_BIN="${CARGO_TARGET_DIR:-target}/debug/drswitch" SCHEMATHESIS_SEED=$seed
    # A network namespace of our own: only loopback, nothing else reachable.
    if [ "$(id -u)" -eq 0 ]; then
        exec unshare --net -- bash "$0" --inside
    else
        exec unshare --map-root-user --net -- bash "$0" --inside
    fi
fi

ip link set lo up
work=$(mktemp -d -t drswitch-schemathesis.XXXXXX)
chmod 0755 "$work"
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

install -m 0755 "$DRSWITCH_BIN" "$work/drswitch"
mkdir -p "$work/data"
# As root, the server runs as nobody in its own directory; in a user
# namespace (not root) there is no other user to become.
as_nobody=()
if [ "$(id -u)" -eq 0 ] && [ -z "$(cat /proc/self/uid_map | awk '$1 == 0 && $2 != 0')" ]; then
    chown -R nobody: "$work/data"
    as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --no-new-privs)
fi

password=fuzz-admin-password-1
(
    cd "$work/data"
    exec env -i PATH=/usr/bin:/bin HOME="$work/data" \
        DATABASE_URL="sqlite://$work/data/drswitch.db" DATA_DIR="$work/data" LISTEN=127.0.0.1:0 \
        SECRET_KEY=schemathesis-secret-key-0123456789abcdef \
        ADMIN_USERNAME=admin ADMIN_PASSWORD="$password" \
        WORKER_ENABLED=false SCHEDULER_ENABLED=false MONITOR_ENABLED=false \
        SSH_CONNECT_TIMEOUT_SECS=2 RUST_LOG=warn,drswitch=info \
        "${as_nobody[@]}" "$work/drswitch" serve
) >"$work/server.log" 2>&1 &
pid=$!

base=""
for _ in $(seq 600); do
    base=$(sed -n 's/.*drswitch listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/server.log" | head -n1)
    [ -n "$base" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "schemathesis: drswitch did not start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { echo "schemathesis: drswitch did not start within 60 s" >&2; exit 1; }

# The admin's API token: log in, then ask for one.
token=$("$venv/bin/python" - "$base" "$password" <<'EOF'
import sys, requests
base, password = sys.argv[1], sys.argv[2]
s = requests.Session()
s.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": password}).raise_for_status()
r = s.post(f"{base}/api/v1/tokens", json={"name": "schemathesis"})
r.raise_for_status()
print(r.json()["token"])
EOF
)

start=$(date +%s)
status=0
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/scripts" \
    "$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "$base/api/v1/openapi.json" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 2 \
    --generation-database none \
    --request-timeout 30 \
    --no-color \
    --report junit --report-junit-path "$work/junit.xml" \
    -H "Authorization: Bearer $token" 2>&1 | tee "$work/run.out" || status=$?
elapsed=$(($(date +%s) - start))
cp "$work/server.log" "${SCHEMATHESIS_SERVER_LOG:-/dev/null}" 2>/dev/null || true

if ! kill -0 "$pid" 2>/dev/null; then
    echo "schemathesis: drswitch died during the run" >&2
    tail -n 50 "$work/server.log" >&2
    status=1
fi
if grep -q " ERROR drswitch" "$work/server.log"; then
    echo "schemathesis: drswitch logged errors:" >&2
    grep " ERROR drswitch" "$work/server.log" | head -n 20 >&2
fi

cases=$(sed -n 's/.*tests="\([0-9]*\)".*/\1/p' "$work/junit.xml" 2>/dev/null | head -n1)
failures=$(sed -n 's/.*failures="\([0-9]*\)".*/\1/p' "$work/junit.xml" 2>/dev/null | head -n1)
echo "schemathesis: ${cases:-?} suites (59 operations + stateful), ${failures:-?} failed, seed $seed, ${elapsed} s, exit $status"
exit "$status"
