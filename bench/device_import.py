"""``patchgate device import`` of 1,000,000 CSV rows on PostgreSQL (docs/devices.md,
"Importing a fleet"), with the ceiling measured in the same run: the same number of
device rows generated inside PostgreSQL by bench/bulk_devices.sql (no CSV, no checks, no
tokens printed, no group rows).

usage: .venv/bin/python bench/device_import.py [--rows 1000000]
Needs PostgreSQL at $PATCHGATE_BENCH_PG (default postgresql://postgres@127.0.0.1:5432);
the databases ``patchgate_bench_import`` and ``patchgate_bench_ceiling`` are dropped and
created.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
# The CLI, run by the interpreter running this (its virtualenv's package, or a checkout's
# through PYTHONPATH), whether or not the ``patchgate`` script is installed.
PATCHGATE = [sys.executable, "-c", "from patchgate.entrypoints.cli.main import main; main()"]
SERVER = os.environ.get("PATCHGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def _fresh(name: str) -> dict[str, str]:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    env = {
        **os.environ,
        "PATCHGATE_DATABASE_URL": f"{SERVER}/{name}",
        "PATCHGATE_DATA_DIR": tempfile.mkdtemp(prefix=f"{name}-"),
    }
    subprocess.run(
        [*PATCHGATE, "init", "--demo"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def _csv(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("id,groups,hardware,version\n")
        for i in range(rows):
            group = "canary-optin" if i % 10 == 0 else ""
            out.write(f"fleet-{i:07d},{group},demo-gw-1,1.0.0\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    out: dict[str, Any] = {"rows": args.rows}
    work = Path(tempfile.mkdtemp(prefix="patchgate-bench-import-"))
    fleet = work / "fleet.csv"
    _csv(fleet, args.rows)
    out["csv_mb"] = round(fleet.stat().st_size / 1e6, 1)

    env = _fresh("patchgate_bench_import")
    command = ["device", "import", str(fleet), "--group", "imported"]
    out["command"] = "patchgate " + " ".join(command)
    start = time.perf_counter()
    with (work / "tokens.txt").open("w") as tokens:
        done = subprocess.run(
            [*PATCHGATE, *command],
            env=env,
            stdout=tokens,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    out["import_s"] = round(time.perf_counter() - start, 1)
    out["import_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(env["PATCHGATE_DATABASE_URL"]) as conn:
        out["devices_written"] = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        out["group_rows_written"] = conn.execute("SELECT count(*) FROM device_groups").fetchone()[0]
    out["tokens_printed"] = sum(1 for _ in (work / "tokens.txt").open())

    # A bad row at the end: refused by line, nothing written, and how long that takes.
    with fleet.open("a") as more:
        more.write("fleet-x,,demo-gw-1,banana\n")
    env_bad = _fresh("patchgate_bench_import")
    start = time.perf_counter()
    bad = subprocess.run(
        [*PATCHGATE, *command],
        env=env_bad,
        capture_output=True,
        text=True,
        check=False,
    )
    out["bad_last_row_s"] = round(time.perf_counter() - start, 1)
    out["bad_last_row_reply"] = bad.stderr.strip().splitlines()[-1:]
    with psycopg.connect(env_bad["PATCHGATE_DATABASE_URL"]) as conn:
        out["bad_last_row_devices_written"] = conn.execute(
            "SELECT count(*) FROM devices"
        ).fetchone()[0]

    ceiling = _fresh("patchgate_bench_ceiling")
    start = time.perf_counter()
    subprocess.run(
        [
            "psql",
            "-q",
            ceiling["PATCHGATE_DATABASE_URL"],
            "-v",
            "first=0",
            "-v",
            f"last={args.rows - 1}",
            "-f",
            str(ROOT / "bench/bulk_devices.sql"),
        ],
        check=True,
    )
    out["ceiling_bulk_sql_s"] = round(time.perf_counter() - start, 1)
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
