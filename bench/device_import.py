"""``patchgate device import`` of 1,000,000 CSV rows on PostgreSQL (docs/devices.md,
"Importing a fleet"), with the ceiling measured in the same run: the same number of
device rows generated inside PostgreSQL by bench/bulk_devices.sql (no CSV, no checks, no
tokens printed, no group rows), then the same file with a bad row at its end (refused by
line, nothing written). Each figure is printed to stderr as soon as it is measured (a run
cut short by a timeout keeps what it had), the whole as JSON at the end.

While the import runs, the database backend serving it is sampled twice a second
(``pg_stat_activity``: active on a query, waiting and on what, or idle in its transaction
waiting for the client) and the CPU time of the import process and of that backend are
read from ``/proc``, so the figure says which side the time went to.

usage: .venv/bin/python bench/device_import.py [--rows 1000000] [--no-bad-row]
Needs PostgreSQL at $PATCHGATE_BENCH_PG (default postgresql://postgres@127.0.0.1:5432);
the databases ``patchgate_bench_import`` and ``patchgate_bench_ceiling`` are dropped and
created.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Watch:
    """Samples, while a process runs, the database backends of ``database``: what they
    are doing (``pg_stat_activity``) twice a second and their CPU time (``/proc``, the
    server runs on this machine)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.states: collections.Counter[str] = collections.Counter()
        self.backend_cpu: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            while not self.stop.wait(0.5):
                rows = conn.execute(
                    "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.database,),
                ).fetchall()
                for pid, state, wait_type, wait in rows:
                    what = state if wait_type is None else f"{state}: {wait_type}/{wait}"
                    self.states[what or "?"] += 1
                    self.backend_cpu[pid] = max(self.backend_cpu.get(pid, 0.0), _cpu_s(pid))

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join()
        total = sum(self.states.values()) or 1
        return {
            "backend_states_share": {k: round(v / total, 2) for k, v in self.states.most_common(8)},
            "backend_cpu_s": round(sum(self.backend_cpu.values()), 1),
        }


def _timed_import(command: list[str], env: dict[str, str], tokens: Path) -> dict[str, Any]:
    """Run the import, timed, with the sampling of :class:`_Watch`."""
    database = env["PATCHGATE_DATABASE_URL"].rsplit("/", 1)[1]
    watch = _Watch(database)
    start = time.perf_counter()
    with tokens.open("w") as out:
        proc = subprocess.Popen(
            [*PATCHGATE, *command], env=env, stdout=out, stderr=subprocess.PIPE, text=True
        )
        client_cpu = 0.0
        while proc.poll() is None:
            client_cpu = max(client_cpu, _cpu_s(proc.pid))
            time.sleep(0.2)
        stderr = proc.stderr.read() if proc.stderr else ""
    elapsed = time.perf_counter() - start
    figures = {
        "s": round(elapsed, 1),
        "returncode": proc.returncode,
        "stderr_tail": stderr.strip().splitlines()[-1:],
        "client_cpu_s": round(client_cpu, 1),
        **watch.finish(),
    }
    return figures


def _say(out: dict[str, Any], key: str, value: Any) -> None:
    out[key] = value
    print(f"[{time.strftime('%H:%M:%S')}] {key}: {json.dumps(value)}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-bad-row", action="store_true", help="skip the refused file")
    args = parser.parse_args()
    out: dict[str, Any] = {"rows": args.rows}
    _say(out, "load_average_start", os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="patchgate-bench-import-"))
    fleet = work / "fleet.csv"
    _csv(fleet, args.rows)
    out["csv_mb"] = round(fleet.stat().st_size / 1e6, 1)

    env = _fresh("patchgate_bench_import")
    command = ["device", "import", str(fleet), "--group", "imported"]
    out["command"] = "patchgate " + " ".join(command)
    done = _timed_import(command, env, work / "tokens.txt")
    _say(out, "import", done)
    out["import_s"] = done["s"]
    out["import_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    assert done["returncode"] == 0, done["stderr_tail"]
    with psycopg.connect(env["PATCHGATE_DATABASE_URL"]) as conn:
        out["devices_written"] = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        out["group_rows_written"] = conn.execute("SELECT count(*) FROM device_groups").fetchone()[0]
    out["tokens_printed"] = sum(1 for _ in (work / "tokens.txt").open())
    _say(out, "written", [out["devices_written"], out["group_rows_written"], out["tokens_printed"]])
    _say(out, "import_peak_rss_mb", out["import_peak_rss_mb"])
    _say(out, "load_average_after_import", os.getloadavg())

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
    _say(out, "ceiling_bulk_sql_s", round(time.perf_counter() - start, 1))
    _say(out, "load_average_after_ceiling", os.getloadavg())

    if not args.no_bad_row:
        # A bad row at the end: refused by line, nothing written, and how long that takes.
        with fleet.open("a") as more:
            more.write("fleet-x,,demo-gw-1,banana\n")
        env_bad = _fresh("patchgate_bench_import")
        bad = _timed_import(command, env_bad, work / "tokens-bad.txt")
        _say(out, "bad_last_row", bad)
        with psycopg.connect(env_bad["PATCHGATE_DATABASE_URL"]) as conn:
            written = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        _say(out, "bad_last_row_devices_written", written)
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
