"""Cost of ``/metrics`` with a fleet of 1,000,000 devices on PostgreSQL or SQLite
(docs/metrics.md).

Builds a fresh installation in a database of its own, bulk-loads the devices with SQL
(``bench/bulk_devices.sql``'s rows, spread over five installed versions), adds a few
vulnerabilities and starts a campaign of the demo release over the fleet, then measures:

- the scrape: ``GET /metrics`` of a real ``patchgate serve`` over HTTP, many times (the
  goal is under 50 ms); the scrape reads no database, so it should not grow with the fleet;
- the refresh: one reading of the figures behind the gauges (``read_figures``), which the
  server's background thread repeats every ``PATCHGATE_METRICS_REFRESH`` seconds.

usage: .venv/bin/python bench/metrics_scrape.py [--devices 1000000] [--scrapes 200]
       [--backend postgresql|sqlite] [--no-campaign]
Env: PATCHGATE_BENCH_POSTGRES, a PostgreSQL URL whose server may create a database
(default postgresql://postgres@127.0.0.1:5432/postgres). Work files go to
${PATCHGATE_BENCH_WORKDIR:-$TMPDIR/patchgate-bench-metrics}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PATCHGATE = ROOT / ".venv" / "bin" / "patchgate"
DB_NAME = "patchgate_bench_metrics"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0")
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"

BULK = """
INSERT INTO devices (tenant_id, controller_id, token_hash, hardware, installed_version,
                     attributes, registered_at, last_seen, group_names, open_action_id,
                     installed_action_id, config_requested, auto_confirm)
SELECT t.id, 'bench-' || g, encode(sha256(gen_random_uuid()::text::bytea), 'hex'),
       'demo-gw-1', (%(versions)s::text[])[1 + g %% 5], '{}'::json, now(), NULL, '[]'::json,
       NULL, NULL, true, false
FROM generate_series(1, %(count)s) AS g, tenants AS t
WHERE t.name = 'DEFAULT'
"""


# The same rows for SQLite (one statement; a recursive CTE stands for generate_series).
BULK_SQLITE = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :count)
INSERT INTO devices (tenant_id, controller_id, token_hash, hardware, installed_version,
                     attributes, registered_at, last_seen, group_names, open_action_id,
                     installed_action_id, config_requested, auto_confirm)
SELECT t.id, 'bench-' || n, lower(hex(randomblob(32))), 'demo-gw-1',
       CASE n % 5 WHEN 0 THEN '1.0.0' WHEN 1 THEN '1.1.0' WHEN 2 THEN '1.2.0'
                  WHEN 3 THEN '2.0.0' ELSE '2.1.0' END,
       '{}', strftime('%Y-%m-%d %H:%M:%f', 'now'), NULL, '[]', NULL, NULL, 1, 0
FROM g, tenants AS t WHERE t.name = 'DEFAULT'
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _database(admin_url: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    return admin_url.rsplit("/", 1)[0] + f"/{DB_NAME}"


def _bulk(url: str, devices: int) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            conn.execute(BULK_SQLITE, {"count": devices})
            conn.execute("ANALYZE")
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BULK, {"versions": list(VERSIONS), "count": devices})
        conn.execute("VACUUM ANALYZE devices")


def _load(env: dict[str, str], url: str, devices: int, *, campaign: bool) -> float:
    subprocess.run(
        [PATCHGATE, "init", "--demo", "--json"], env=env, check=True, capture_output=True
    )
    began = time.perf_counter()
    _bulk(url, devices)
    loaded = time.perf_counter() - began
    for i in range(5):
        args = ["vuln", "add", f"CVE-2026-{i:04d}", "--title", "bench", "--cvss", CRITICAL]
        args += ["--product", "Demo Gateway", "--affected", f"<{VERSIONS[i]}"]
        subprocess.run([PATCHGATE, *args], env=env, check=True, capture_output=True)
    if not campaign:
        return loaded
    # One running campaign of the demo release over the whole fleet: its gauge costs a
    # reading what ``campaign status`` costs.
    made = subprocess.run(
        [PATCHGATE, "campaign", "create", "1", "--stages", "1,100", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    campaign = str(json.loads(made.stdout)["id"])
    subprocess.run(
        [PATCHGATE, "campaign", "start", campaign], env=env, check=True, capture_output=True
    )
    return loaded


def _refresh_seconds(env: dict[str, str], runs: int = 2) -> list[float]:
    code = (
        "import json, sys, time\n"
        "from patchgate.bootstrap import Settings, build\n"
        "from patchgate.services.fleet_figures import timed_reading\n"
        "app = build(Settings.from_env())\n"
        "took = []\n"
        f"for _ in range({runs}):\n"
        "    began = time.perf_counter(); figures, parts = timed_reading(app.context)\n"
        "    took.append(time.perf_counter() - began)\n"
        "    print(json.dumps({k: round(v, 3) for k, v in parts.items()}), file=sys.stderr)\n"
        "print(json.dumps({'took': took, 'devices': sum(figures.devices.values())}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    print(f"reading by part (s): {done.stderr.strip()}", file=sys.stderr)
    answer = json.loads(done.stdout)
    print(f"figures count {answer['devices']} devices", file=sys.stderr)
    return list(answer["took"])


def _scrapes(env: dict[str, str], work: Path, count: int) -> list[float]:
    port = 18097
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [PATCHGATE, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 900
            while "patchgate_devices{" not in _get(client):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not serve the gauges in time")
                time.sleep(0.5)
            took = []
            for _ in range(count):
                began = time.perf_counter()
                answer = client.get("/metrics")
                took.append(time.perf_counter() - began)
                answer.raise_for_status()
            return took
    finally:
        server.terminate()
        server.wait(30)


def _get(client: httpx.Client) -> str:
    try:
        return client.get("/metrics").text
    except httpx.TransportError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--no-campaign", action="store_true", help="measure without a running campaign"
    )
    args = parser.parse_args()
    admin = os.environ.get(
        "PATCHGATE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    default_work = Path(tempfile.gettempdir()) / "patchgate-bench-metrics"
    work = Path(os.environ.get("PATCHGATE_BENCH_WORKDIR", default_work))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if args.backend == "sqlite":
        (work / "data").mkdir()
        url = f"sqlite:///{work / 'data' / 'patchgate.db'}"
    else:
        url = _database(admin)
    env = {
        **os.environ,
        "PATCHGATE_DATA_DIR": str(work / "data"),
        "PATCHGATE_DATABASE_URL": url,
        "PATCHGATE_METRICS_REFRESH": "30",
    }
    loaded = _load(env, url, args.devices, campaign=not args.no_campaign)
    refresh = _refresh_seconds(env)
    scrapes = _scrapes(env, work, args.scrapes)
    print(
        json.dumps(
            {
                "devices": args.devices,
                "backend": args.backend,
                "campaign": not args.no_campaign,
                "bulk_load_seconds": round(loaded, 1),
                "refresh_seconds": [round(t, 3) for t in refresh],
                "scrape_ms": {
                    "median": round(statistics.median(scrapes) * 1000, 2),
                    "p95": round(_percentile(scrapes, 0.95) * 1000, 2),
                    "max": round(max(scrapes) * 1000, 2),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
