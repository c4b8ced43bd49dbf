#!/usr/bin/python3
"""The fault suite as one table: runs tests/faults.rs on SQLite and on a
throwaway MariaDB and prints one row per scenario and database (tasks
stuck, archives corrupt or lost, replicas lost, secrets leaked, time to
recover, outcome). Every row must read 0 / 0 / 0 / 0; the tests assert it.

    bench/faults.py [--sqlite-only]
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def run(table, env):
    env = dict(os.environ, DRSWITCH_FAULT_TABLE=table, **env)
    r = subprocess.run(["cargo", "test", "--quiet", "--test", "faults"], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stdout.write(r.stdout[-4000:])
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqlite-only", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="drswitch-faults-")
    table = os.path.join(work, "rows.md")
    ok = run(table, {})
    if not args.sqlite_only:
        mdb = os.path.join(work, "mariadb")
        out = subprocess.run(["bash", "scripts/mariadb.sh", "start", mdb], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        url = next(l.split("=", 1)[1] for l in out.splitlines() if l.startswith("DRSWITCH_TEST_MYSQL_URL="))
        try:
            ok = run(table, {"DRSWITCH_TEST_MYSQL_URL": url, "DRSWITCH_TEST_MYSQL_DIR": mdb}) and ok
        finally:
            subprocess.run(["bash", "scripts/mariadb.sh", "stop", mdb], cwd=ROOT)
    rows = sorted(open(table).read().splitlines()) if os.path.exists(table) else []
    print("| scenario | database | tasks stuck | archives corrupt or lost | replicas lost | secrets leaked "
          "| time to recover | outcome |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    print(f"\n{len(rows)} rows; {'all 0 / 0 / 0 / 0' if ok else 'SOME ROWS FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
