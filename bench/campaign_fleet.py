"""Campaign engine at fleet scale on PostgreSQL (docs/campaigns.md, "Figures").

Seeds a fresh database with 1,000,000 targeted devices (bench/bulk_devices.sql) and a
running campaign whose first stage (10 %) holds 100,000 open actions, then measures:

- one gate tick (``campaign tick``: catch-up of the stored figures and the gate verdict)
  with no change since the last tick and with 1,000 / 10,000 device feedback steps since;
- ``campaign status`` (the view the CLI, API and console read);
- the two ways of keeping per-stage counts: the stored executions' one indexed aggregate
  (used) and a counts table updated in the same transaction as each action change;
- ``campaign halt`` through the CLI (a separate process, as an operator runs it), and
  that at its commit every pending action reads as ``canceling`` (read by another
  process through the repository); then the sweep's tick that marks the rows.

usage: .venv/bin/python bench/campaign_fleet.py [--devices 1000000] [--actions 100000]
Needs PostgreSQL at $PATCHGATE_BENCH_PG (default postgresql://postgres@127.0.0.1:5432);
the database $PATCHGATE_BENCH_DB (default ``patchgate_bench_campaign``) is dropped and
created.

The halt alone, several times on one seeded fleet (the seeding and the campaign's start
take minutes; run them apart, at low priority, and only the timed part under the
benchmark lock)::

    PATCHGATE_DATA_DIR=/tmp/fleet nice -n 19 .venv/bin/python bench/campaign_fleet.py --setup-only
    PATCHGATE_DATA_DIR=/tmp/fleet .venv/bin/python bench/campaign_fleet.py --halts 5

``--halts N`` puts the campaign back to the moment before its halt (running, its actions
``offered``) before each run, times ``campaign halt`` through the CLI N times, checks what
every read says after each, and splits one more run into the CLI's start-up (interpreter,
imports, settings, engine, schema check), the halt's transaction and the reply.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
# The CLI, run by the interpreter running this (its virtualenv's package, or a checkout's
# through PYTHONPATH), whether or not the ``patchgate`` script is installed.
PATCHGATE = [sys.executable, "-c", "from patchgate.entrypoints.cli.main import main; main()"]
SERVER = os.environ.get("PATCHGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DB = os.environ.get("PATCHGATE_BENCH_DB", "patchgate_bench_campaign")
URL = f"{SERVER}/{DB}"


def _timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    """Wall time and this process's CPU time (the database's is not in it) per call."""
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return {
        "min_ms": round(min(times), 1),
        "median_ms": round(statistics.median(times), 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
    }


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PATCHGATE, *args], capture_output=True, text=True, check=False)


# The same CLI with the halt's service call timed from inside: when it was entered and
# left, and when the process exited, each from the interpreter's first line.
PHASED = [
    sys.executable,
    "-c",
    "import atexit, json, sys, time\n"
    "t0 = time.perf_counter()\n"
    "from patchgate.services.campaigns import commands\n"
    "marks = {}\n"
    "real = commands.halt\n"
    "def halt(*args, **kwargs):\n"
    "    marks['enter'] = time.perf_counter() - t0\n"
    "    try:\n"
    "        return real(*args, **kwargs)\n"
    "    finally:\n"
    "        marks['leave'] = time.perf_counter() - t0\n"
    "commands.halt = halt\n"
    "def done():\n"
    "    marks['exit'] = time.perf_counter() - t0\n"
    "    sys.stderr.write('PHASES ' + json.dumps(marks) + '\\n')\n"
    "atexit.register(done)\n"
    "from patchgate.entrypoints.cli.main import main\n"
    "main()\n",
]

# The state right before the halt: the campaign running, its actions offered, nothing
# marked by a sweep (what a halt finds).
BEFORE_HALT = (
    "UPDATE campaigns SET state = 'running', halted_at = NULL, halt_reason = NULL "
    "WHERE id = %(campaign)s",
    "DELETE FROM action_events WHERE status_after = 'canceling'",
    "UPDATE actions SET status = 'offered', cancel_requested_at = NULL "
    "WHERE campaign_id = %(campaign)s AND status = 'canceling'",
)


def _fresh_database(devices: int) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.execute(f"CREATE DATABASE {DB}")
    done = _cli("init", "--demo", "--json")
    assert done.returncode == 0, done.stderr
    subprocess.run(
        [
            "psql",
            "-q",
            URL,
            "-v",
            "first=0",
            "-v",
            f"last={devices - 1}",
            "-f",
            str(ROOT / "bench/bulk_devices.sql"),
        ],
        check=True,
    )


def _open_actions(campaign_id: int, release_id: int, device_ids: list[int]) -> None:
    """Open actions (offered, with their offer step) for these devices, bulk-written as
    the poll writes them one by one (services/actions.py)."""
    with psycopg.connect(URL) as conn:
        start = conn.execute("SELECT coalesce(max(id), 0) FROM actions").fetchone()[0] + 1
        ids = list(range(start, start + len(device_ids)))
        with conn.cursor() as cur:
            with cur.copy(
                "COPY actions (id, tenant_id, device_id, release_id, campaign_id, source, status,"
                " active, download_type, update_type, created_at, updated_at, created_by)"
                " FROM STDIN"
            ) as copy:
                for action_id, device_id in zip(ids, device_ids, strict=True):
                    copy.write_row(
                        (
                            action_id,
                            1,
                            device_id,
                            release_id,
                            campaign_id,
                            "campaign",
                            "offered",
                            True,
                            "forced",
                            "forced",
                            "now",
                            "now",
                            f"campaign:{campaign_id}",
                        )
                    )
            with cur.copy(
                "COPY action_events (action_id, at, channel, details, status_after) FROM STDIN"
            ) as copy:
                for action_id in ids:
                    copy.write_row((action_id, "now", "server", '["offered"]', "offered"))
            cur.execute(
                "UPDATE devices d SET open_action_id = a.id FROM actions a "
                "WHERE a.device_id = d.id AND a.campaign_id = %s",
                (campaign_id,),
            )
            cur.execute("SELECT setval('actions_id_seq', (SELECT max(id) FROM actions))")
        conn.execute("ANALYZE")


def _feedback(campaign_id: int, count: int, step: str) -> None:
    """``count`` devices of the campaign report a DDI step (one action event each)."""
    with psycopg.connect(URL) as conn:
        conn.execute(
            "INSERT INTO action_events (action_id, at, channel, details, status_after) "
            "SELECT id, now(), 'device', '[]', %s FROM actions WHERE campaign_id = %s "
            "AND active ORDER BY random() LIMIT %s",
            (step, campaign_id, count),
        )


def _marked_rows(conn: psycopg.Connection[Any], campaign: int) -> dict[str, int]:
    """The campaign's action rows as stored: still pending, marked, cancellation times."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status IN ('offered','downloading','downloaded')),"
        " count(*) FILTER (WHERE status = 'canceling'),"
        " count(DISTINCT cancel_requested_at) FROM actions WHERE campaign_id = %s",
        (campaign,),
    ).fetchone()
    assert row is not None
    return {"pending": row[0], "canceling": row[1], "distinct_cancel_times": row[2]}


def _counts_table_idea(changes: int) -> dict[str, Any]:
    """The other idea: a (campaign, stage, status) counts table updated in the same
    transaction as each action change. Reading it is trivial; what it costs is one more
    contended row update per action change (measured here), and the timeouts of rule 2
    still need the per-execution due times."""
    with psycopg.connect(URL) as conn:
        conn.execute(
            "CREATE TEMP TABLE counts_idea (campaign_id bigint, stage int, status text, "
            "n bigint, PRIMARY KEY (campaign_id, stage, status))"
        )
        conn.execute(
            "INSERT INTO counts_idea SELECT campaign_id, stage, status, count(*) "
            "FROM campaign_executions GROUP BY 1, 2, 3"
        )
        start = time.perf_counter()
        for _ in range(changes):
            with conn.transaction():
                conn.execute(
                    "UPDATE counts_idea SET n = n - 1 WHERE campaign_id = 1 AND stage = 0 "
                    "AND status = 'offered'"
                )
                conn.execute(
                    "UPDATE counts_idea SET n = n + 1 WHERE campaign_id = 1 AND stage = 0 "
                    "AND status = 'downloading'"
                )
        per_change = (time.perf_counter() - start) / changes * 1000
        start = time.perf_counter()
        conn.execute("SELECT stage, status, n FROM counts_idea WHERE campaign_id = 1").fetchall()
        read = (time.perf_counter() - start) * 1000
    return {"read_ms": round(read, 2), "added_per_action_change_ms": round(per_change, 3)}


def _put_back_before_halt(campaign: int) -> None:
    with psycopg.connect(URL) as conn:
        for statement in BEFORE_HALT:
            conn.execute(statement, {"campaign": campaign})
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE actions")


def _halts(runs: int) -> dict[str, Any]:
    """Time ``campaign halt`` through the CLI ``runs`` times on the seeded fleet, then one
    run split into start-up, the halt's transaction and the reply."""
    from patchgate.bootstrap import Settings, build

    ctx = build(Settings.from_env()).context
    with psycopg.connect(URL) as conn:
        campaign = conn.execute("SELECT max(id) FROM campaigns").fetchone()[0]
    out: dict[str, Any] = {"campaign": campaign, "runs": []}
    for _ in range(runs + 1):
        _put_back_before_halt(campaign)
        with psycopg.connect(URL) as conn:
            pending = conn.execute(
                "SELECT count(*) FROM actions WHERE campaign_id = %s AND status = 'offered'",
                (campaign,),
            ).fetchone()[0]
        phased = len(out["runs"]) == runs
        load = os.getloadavg()[0]
        command = [*(PHASED if phased else PATCHGATE), "campaign", "halt", str(campaign)]
        start = time.perf_counter()
        halted = subprocess.run(
            [*command, "--reason", "bench", "--json"], capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
        assert halted.returncode == 0, halted.stderr
        assert json.loads(halted.stdout)["state"] == "halted"
        with psycopg.connect(URL) as conn:
            canceling = conn.execute(
                "SELECT details->>'cancelled_actions' FROM audit_entries "
                "WHERE action = 'campaign.halted' ORDER BY id DESC LIMIT 1"
            ).fetchone()[0]
        with ctx.read_uow() as uow:  # as every read says it from the commit
            tallies = dict(uow.fleet.campaign_tallies([campaign])[campaign])
        run = {"wall_s": round(wall, 3), "load_1min": load, "pending_before": pending}
        run["audit_cancelled_actions"] = canceling
        run["canceling_read_after"] = tallies.get("canceling", 0)
        if phased:
            line = next(x for x in halted.stderr.splitlines() if x.startswith("PHASES "))
            marks = json.loads(line.removeprefix("PHASES "))
            run["startup_s"] = round(wall - (marks["exit"] - marks["enter"]), 3)
            run["halt_s"] = round(marks["leave"] - marks["enter"], 3)
            run["reply_s"] = round(marks["exit"] - marks["leave"], 3)
            out["split"] = run
        else:
            out["runs"].append(run)
    walls = [r["wall_s"] for r in out["runs"]]
    out["wall_min_s"], out["wall_median_s"] = min(walls), statistics.median(walls)
    start = time.perf_counter()
    _cli("--version")
    out["version_s"] = round(time.perf_counter() - start, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=100_000)
    parser.add_argument(
        "--setup-only", action="store_true", help="Seed and start the campaign, then stop."
    )
    parser.add_argument(
        "--halts", type=int, metavar="N", help="On a fleet seeded before: time the halt N times."
    )
    args = parser.parse_args()
    if args.halts:
        if "PATCHGATE_DATA_DIR" not in os.environ:
            parser.error("--halts needs PATCHGATE_DATA_DIR, the data folder of --setup-only")
        os.environ["PATCHGATE_DATABASE_URL"] = URL
        print(json.dumps(_halts(args.halts), indent=2, default=str))
        return
    work = Path(os.environ.get("PATCHGATE_DATA_DIR") or "")
    if not os.environ.get("PATCHGATE_DATA_DIR"):
        work = Path(tempfile.mkdtemp(prefix="patchgate-bench-campaign-"))
    os.environ["PATCHGATE_DATA_DIR"] = str(work)
    os.environ["PATCHGATE_DATABASE_URL"] = URL
    out: dict[str, Any] = {"devices": args.devices, "open_actions": args.actions}

    start = time.perf_counter()
    _fresh_database(args.devices)
    out["seed_devices_s"] = round(time.perf_counter() - start, 1)

    from patchgate.bootstrap import Settings, build
    from patchgate.services import releases
    from patchgate.services.campaigns import commands, views
    from patchgate.services.campaigns.options import CreateOptions
    from patchgate.services.campaigns.plans import plan_of

    app = build(Settings.from_env())
    ctx = app.context
    release = releases.create_release(
        ctx,
        product="Demo Gateway",
        version="2.0.0",
        artifacts=[releases.ArtifactUpload("fw.bin", [b"bench firmware"])],
        actor="bench",
        security_version=2,
        update_type="security",
    )
    options = CreateOptions(stages="10,50,100", soak="1h")
    start = time.perf_counter()
    campaign = commands.create(ctx, release.id, options, actor="bench")
    out["create_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    commands.start(ctx, campaign, actor="bench")
    out["start_s"] = round(time.perf_counter() - start, 1)

    with ctx.read_uow() as uow:
        plan = plan_of(uow, uow.campaigns.get(campaign))  # type: ignore[arg-type]
    with psycopg.connect(URL) as conn:
        rows = conn.execute(
            "SELECT id, controller_id FROM devices WHERE controller_id LIKE 'bench-%%'"
        ).fetchall()
    first_stage = [i for i, cid in rows if plan.stage_of(cid, frozenset()) == 0]
    _open_actions(campaign, release.id, first_stage[: args.actions])
    out["first_stage_devices"] = len(first_stage)

    start = time.perf_counter()
    commands.tick(ctx)  # folds in the 100,000 new actions once
    out["tick_after_100k_new_actions_s"] = round(time.perf_counter() - start, 1)
    if args.setup_only:
        out["data_dir"] = str(work)
        print(json.dumps(out, indent=2, default=str))
        return

    out["tick_no_change"] = _timed(lambda: commands.tick(ctx), 10)
    for changes in (100, 1_000, 10_000):
        per = []
        for step in ("downloading", "downloaded", "running"):
            _feedback(campaign, changes, step)
            per.append(_timed(lambda: commands.tick(ctx), 1))
        out[f"tick_after_{changes}_feedback_steps"] = {
            key: round(statistics.median(p[key] for p in per), 1) for key in per[0]
        }
    out["status_view"] = _timed(lambda: views.status(ctx, campaign), 10)
    with ctx.read_uow() as uow:
        now = ctx.clock()
        out["aggregate_idea"] = _timed(lambda: uow.campaigns.execution_counts(campaign, now), 10)
    out["counts_table_idea"] = _counts_table_idea(1_000)
    status = views.status(ctx, campaign)
    out["counts_before_halt"] = status.counts.to_json()

    out["load_average"] = os.getloadavg()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        cProfile.runctx(
            "commands.halt(ctx, campaign, reason='bench', actor='bench'); "
            "views.status(ctx, campaign)",
            globals(),
            {"commands": commands, "views": views, "ctx": ctx, "campaign": campaign},
            sort="cumtime",
        )
        return
    with psycopg.connect(URL) as conn:
        version_before = conn.execute("SELECT max(version) FROM state_version").fetchone()[0]
    start = time.perf_counter()
    halted = _cli("campaign", "halt", str(campaign), "--reason", "bench", "--json")
    out["halt_cli_s"] = round(time.perf_counter() - start, 2)
    assert halted.returncode == 0, halted.stderr
    out["halt_reply_state"] = json.loads(halted.stdout)["state"]
    with ctx.read_uow() as uow:
        # As every read says it from the commit (docs/campaigns.md, "Halt").
        tallies = dict(uow.fleet.campaign_tallies([campaign])[campaign])
    with psycopg.connect(URL) as conn:
        version_after = conn.execute("SELECT max(version) FROM state_version").fetchone()[0]
        audit = conn.execute(
            "SELECT details FROM audit_entries WHERE action = 'campaign.halted' ORDER BY id DESC"
        ).fetchone()
        rows_before_sweep = _marked_rows(conn, campaign)
    out["after_halt"] = {
        "statuses_read": tallies,
        "state_version_moves": version_after - version_before,
        "audit_details": audit[0] if audit else None,
        "rows_marked_by_the_halt": rows_before_sweep,
    }
    # The sweep: the next tick of the halted campaign marks the rows, 10,000 a transaction.
    start = time.perf_counter()
    commands.tick(ctx)
    out["sweep_tick_s"] = round(time.perf_counter() - start, 2)
    with psycopg.connect(URL) as conn:
        out["after_sweep"] = _marked_rows(conn, campaign)
    start = time.perf_counter()
    _cli("--version")
    out["cli_startup_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
