#!/usr/bin/env bash
# A throwaway MariaDB on loopback for tests and benchmarks.
#   scripts/mariadb.sh start DIR   -> prints DRSWITCH_TEST_MYSQL_URL=mysql://…
#   scripts/mariadb.sh stop DIR
#   scripts/mariadb.sh restart DIR  (same port: clients reconnect)
# The server runs as the current user with its data, socket and pid in DIR.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop|restart DIR" >&2
    exit 2
fi

case "$cmd" in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ ! -d "$dir/data/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
            --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve >"$dir/install.log" 2>&1
    fi
    if [ -n "${MARIADB_PORT:-}" ]; then
        port=$MARIADB_PORT
    else
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    fi
    nohup mariadbd --no-defaults --user="$(id -un)" --datadir="$dir/data" --socket="$dir/sock" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$dir/mariadb.pid" \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --max-connections=500 \
        --innodb-flush-log-at-trx-commit=2 >"$dir/server.log" 2>&1 &
    for _ in $(seq 1 300); do
        if mariadb --no-defaults --socket="$dir/sock" -uroot -e "SELECT 1" >/dev/null 2>&1; then
            break
        fi
        sleep 0.1
    done
    mariadb --no-defaults --socket="$dir/sock" -uroot <<SQL
CREATE USER IF NOT EXISTS 'drswitch'@'127.0.0.1' IDENTIFIED BY 'drswitch-test';
GRANT ALL PRIVILEGES ON *.* TO 'drswitch'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
    echo "$port" >"$dir/port"
    echo "DRSWITCH_TEST_MYSQL_URL=mysql://drswitch:drswitch-test@127.0.0.1:$port"
    ;;
stop)
    if [ -f "$dir/mariadb.pid" ]; then
        kill "$(cat "$dir/mariadb.pid")" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -f "$dir/mariadb.pid" ] || break
            sleep 0.1
        done
    fi
    ;;
restart)
    MARIADB_PORT=$(cat "$dir/port") bash "$0" stop "$dir"
    MARIADB_PORT=$(cat "$dir/port") bash "$0" start "$dir" >/dev/null
    ;;
*)
    echo "usage: $0 start|stop|restart DIR" >&2
    exit 2
    ;;
esac
