"""Server time of each web console page at fleet scale (docs/console.md, "Performance").

Builds a fresh installation per database (SQLite file, PostgreSQL database of its own) with
three products and ten signed releases, then bulk-loads what a fleet of this size has after
a year or so of use:

- 100,000 devices (bulk SQL inserts: hardware of the three products, installed versions
  spread over each product's releases, groups, A/B slot attributes on most, last seen over
  the last days);
- 2,000 vulnerabilities through the register's own ``add`` (scores of every band, awareness
  times over the last months so every SLA state occurs, some exploited) and triage (every
  status), and releases that name some of them as fixed;
- 50 campaigns through the campaign commands (created, started, paused, halted, completed),
  each with its devices' actions and feedback events bulk-inserted (finished, failed,
  running), so stage counts, the failure-rate chart and fix rollouts have real rows, and
  its figures stored as the gate tick leaves them;

then starts ``patchgate serve``, signs in through ``/console/login`` with an admin token
and requests each page over HTTP many times, reporting the median and p95 wall time per
page (loopback client: the server's time plus well under a millisecond).

usage: .venv/bin/python bench/console_pages.py [--backend sqlite|postgres|both]
       [--devices 100000] [--vulns 2000] [--campaigns 50] [--requests 40]
       [--seed-only | --reuse]
Env: PATCHGATE_BENCH_POSTGRES, a PostgreSQL URL whose server may create a database
(default postgresql://postgres@127.0.0.1:5432/postgres); PATCHGATE_BENCH_DB, the name of the
database it makes there (default patchgate_bench_console). Work files go to
${PATCHGATE_BENCH_WORKDIR:-$TMPDIR/patchgate-bench-console}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import httpx

from patchgate.domain.vulnerabilities import MAIN_LINE
from patchgate.sim.http_server import process_tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
# The project's virtualenv, else the one running this script (a checkout without its own).
PATCHGATE = next(
    (p for p in (ROOT / ".venv" / "bin" / "patchgate", Path(sys.executable).parent / "patchgate")
     if p.exists()),
    ROOT / ".venv" / "bin" / "patchgate",
)  # fmt: skip
DB_NAME = os.environ.get("PATCHGATE_BENCH_DB", "patchgate_bench_console")
ADMIN = "bench-admin"

# (product, hardware models, release versions in order; the first is what most devices
# ran before any campaign).
PRODUCTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Demo Gateway", ("demo-gw-1",), ("1.0.0", "1.0.1", "1.1.0", "1.2.0")),
    ("Edge Router", ("er-100", "er-200"), ("3.0.0", "3.1.0", "3.2.0")),
    ("Smart Meter", ("sm-3",), ("0.9.0", "1.0.0", "1.1.0")),
)
EXTRA_PRODUCTS = """
[[products]]
name = "Edge Router"
description = "A branch-office router"
support_start = "2025-06"
support_end = "2032-06"
on_sale = true
member_states = ["DE", "AT"]
update_types = ["security", "feature", "combined"]
hardware = ["er-100", "er-200"]

[[products]]
name = "Smart Meter"
description = "A residential electricity meter"
support_start = "2024-01"
support_end = "2034-12"
on_sale = true
member_states = ["NL", "BE"]
update_types = ["security", "combined"]
hardware = ["sm-3"]
"""
GROUPS = ("internal", "qa", "canary-optin", "site-north", "site-south", "lab")
VECTORS = (
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # 9.8
    "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N",  # 8.1
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N",  # 4.2
    "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N",  # 3.3
    "CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",  # 6.5
)


PAGE_BUDGET_S = 90.0  # per page; a slower page is measured with fewer requests
MIN_REQUESTS = 5


def _cpu_seconds(root: int) -> float:
    """CPU time (user + system) of ``root`` and its descendants (the server's workers): on
    a machine others load, what a page costs the server itself, which wall time on a
    shared CPU does not show. With PostgreSQL the database's own CPU is not in it."""
    return process_tree_cpu_seconds(root) or 0.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(PATCHGATE), *args], env=env, check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"patchgate {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _postgres_url(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    return admin_url.rsplit("/", 1)[0] + f"/{DB_NAME}"


# ---- seeding ---------------------------------------------------------------------------------


def _setup(env: dict[str, str], work: Path) -> str:
    """init --demo, the three products, an admin token (returned)."""
    from patchgate.services.setup import demo_policy_source

    _run(env, "init", "--demo", "--json")
    policy = work / "policy.toml"
    policy.write_text(demo_policy_source().rstrip() + "\n" + EXTRA_PRODUCTS)
    _run(env, "policy", "apply", str(policy), "--replace")
    made = json.loads(_run(env, "token", "create", ADMIN, "--role", "admin", "--json"))
    return str(made["token"])


def _devices(app: Any, count: int, rng: random.Random) -> None:
    """Bulk insert the fleet (rows as ``device import`` writes them, plus what polls add:
    last seen, attributes with the A/B slot)."""
    from sqlalchemy import insert, select

    from patchgate.adapters.db.models import Device, DeviceGroup, Tenant

    now = datetime.now(UTC)
    with app.engines.write.begin() as conn:
        tenant = conn.execute(select(Tenant.id).where(Tenant.name == "DEFAULT")).scalar_one()
        first = conn.execute(select(Device.id).order_by(Device.id.desc()).limit(1)).scalar() or 0
        rows, groups = [], []
        for i in range(count):
            _product, hardware, versions = PRODUCTS[i % 10 % 3]
            groups_of = [g for g in GROUPS if rng.random() < 0.08]
            attributes: dict[str, Any] = {"serial": f"SN{i:08d}"}
            if rng.random() < 0.9:
                attributes["slot"] = rng.choice("ab")
            seen = (
                now - timedelta(seconds=rng.expovariate(1 / 40000)) if rng.random() < 0.97 else None
            )
            rows.append(
                {
                    "tenant_id": tenant,
                    "controller_id": f"dev-{i:06d}",
                    "token_hash": sha256(secrets.token_bytes(16)).hexdigest(),
                    "hardware": hardware[i % len(hardware)],
                    "installed_version": versions[0] if rng.random() < 0.6 else versions[1],
                    "attributes": attributes,
                    "registered_at": now - timedelta(days=rng.uniform(30, 400)),
                    "last_seen": seen,
                    "group_names": groups_of,
                    "config_requested": False,
                    "auto_confirm": False,
                }
            )
            groups.extend({"device_id": first + i + 1, "name": g} for g in groups_of)
            if len(rows) == 10_000:
                conn.execute(insert(Device), rows)
                rows = []
        if rows:
            conn.execute(insert(Device), rows)
        ids = conn.execute(
            select(Device.id, Device.controller_id).where(Device.controller_id.like("dev-%"))
        ).all()
        by_cid = {cid: did for did, cid in ids}
        for g in groups:
            g["device_id"] = by_cid[f"dev-{g['device_id'] - first - 1:06d}"]
        for start in range(0, len(groups), 10_000):
            conn.execute(insert(DeviceGroup), groups[start : start + 10_000])


def _triage(ctx: Any, commands: Any, vuln_id: str, rng: random.Random) -> None:
    """Walk the analysis along the lifecycle as people do: most stay new or triaged."""
    roll = rng.random()
    if roll < 0.4:
        return
    if roll < 0.5:
        commands.triage(ctx, vuln_id, status="not_affected", actor="bench",
                        justification="code_not_present")  # fmt: skip
        return
    if roll < 0.55:
        commands.triage(ctx, vuln_id, status="will_not_fix", actor="bench",
                        justification="the feature is disabled on every shipped image")  # fmt: skip
        return
    for status in MAIN_LINE[1 : rng.randrange(2, len(MAIN_LINE))]:
        commands.triage(ctx, vuln_id, status=status, actor="bench")


def _vulnerabilities(app: Any, count: int, rng: random.Random) -> list[str]:
    from patchgate.services.vulnerabilities import commands

    ctx = app.context
    now = ctx.clock()
    ids = []
    for i in range(count):
        product, _hw, versions = PRODUCTS[i % 3]
        vuln_id = f"CVE-2026-{10000 + i}"
        upper = versions[rng.randrange(1, len(versions))]
        commands.add(
            ctx,
            vuln_id=vuln_id,
            title=f"Flaw {i} in the {rng.choice(['web UI', 'TLS stack', 'DDI client', 'kernel'])}",
            cvss=VECTORS[i % len(VECTORS)],
            actor="bench",
            aware_at=now - timedelta(days=rng.uniform(0, 200)),
            products=[product] if i % 17 else [product, PRODUCTS[(i + 1) % 3][0]],
            affected=[f"<{upper}"],
            exploited=i % 41 == 0,
        )
        _triage(ctx, commands, vuln_id, rng)
        ids.append(vuln_id)
    return ids


def _releases(env: dict[str, str], work: Path, vulns: list[str]) -> dict[tuple[str, str], int]:
    """Every release of the three products but the demo's (made by init); some name
    fixes. {(product, version): release id}."""
    made: dict[tuple[str, str], int] = {("Demo Gateway", "1.0.1"): 1}
    k = 0
    for product, hardware, versions in PRODUCTS:
        for version in versions[1:]:
            if (product, version) in made:
                continue
            artifact = work / f"{product.replace(' ', '-')}-{version}.swu"
            artifact.write_bytes(os.urandom(64 * 1024))
            fixes = ",".join(vulns[k : k + 15])
            k += 15
            args = ["release", "create", product, version, "--artifact", str(artifact)]
            args += [a for h in hardware for a in ("--hardware", h)]
            args += ["--fixes", fixes, "--json"]
            made[(product, version)] = int(json.loads(_run(env, *args))["id"])
    return made


PLAN = (  # per campaign: the state it ends in
    ["completed"] * 34 + ["halted"] * 6 + ["cancelled"] * 4 + ["paused"] * 2 + ["running"] * 3
) + ["draft"]


def _actions(app: Any, campaign: int, release: int, version: str, hardware: tuple[str, ...],
             size: int, fail: float, running: float, rng: random.Random) -> None:  # fmt: skip
    """The campaign's actions as DDI feedback leaves them, bulk-inserted, and the devices
    that finished on the new version."""
    from sqlalchemy import bindparam, insert, select, update

    from patchgate.adapters.db.models import Action, ActionEvent, Device

    now = datetime.now(UTC)
    with app.engines.write.begin() as conn:
        found = conn.execute(
            select(Device.id, Device.tenant_id).where(
                Device.hardware.in_(hardware), Device.open_action_id.is_(None)
            )
        ).all()
        picked = rng.sample(found, min(size, len(found)))
        began = now - timedelta(hours=rng.uniform(6, 24 * 60))
        rows = []
        for device_id, tenant in picked:
            roll = rng.random()
            status = "error" if roll < fail else "running" if roll < fail + running else "finished"
            at = began + timedelta(minutes=rng.uniform(1, 600))
            closed = status != "running"
            rows.append(
                {"tenant_id": tenant, "device_id": device_id, "release_id": release,
                 "campaign_id": campaign, "source": "campaign", "status": status,
                 "active": not closed, "download_type": "forced", "update_type": "forced",
                 "result": {"finished": "success", "error": "failure"}.get(status),
                 "last_execution": "closed" if closed else "proceeding", "created_at": began,
                 "updated_at": at, "closed_at": at if closed else None,
                 "succeeded_at": at if status == "finished" else None, "created_by": "bench"}
            )  # fmt: skip
        if not rows:
            return
        conn.execute(insert(Action), rows)
        actions = conn.execute(
            select(Action.id, Action.device_id, Action.status, Action.closed_at).where(
                Action.campaign_id == campaign
            )
        ).all()
        events = [
            {"action_id": a, "at": closed, "channel": "deployment", "execution": "closed",
             "finished": "success" if status == "finished" else "failure", "details": [],
             "status_after": status}
            for a, _d, status, closed in actions
            if closed is not None
        ]  # fmt: skip
        if events:
            conn.execute(insert(ActionEvent), events)
        done = [{"did": d, "aid": a} for a, d, status, _c in actions if status == "finished"]
        opened = [{"did": d, "aid": a} for a, d, status, _c in actions if status == "running"]
        if done:
            conn.execute(
                update(Device)
                .where(Device.id == bindparam("did"))
                .values(installed_version=version, installed_action_id=bindparam("aid")),
                done,
            )
        if opened:
            conn.execute(
                update(Device)
                .where(Device.id == bindparam("did"))
                .values(open_action_id=bindparam("aid")),
                opened,
            )


def _template(ctx: Any, release: int) -> int:
    """One campaign made by ``campaign create`` (the stored plan, cuts and schedule)."""
    from patchgate.services.campaigns import commands
    from patchgate.services.campaigns.options import CreateOptions

    options = CreateOptions(stages="1,10,50,100", max_failure_rate=0.2, min_finished=20)
    return commands.create(ctx, release, options, actor="bench")


def _copy(app: Any, template: int, release: int, end: str, rng: random.Random) -> int:
    """A campaign row like ``template``'s, for ``release``, in the state ``end`` with the
    times and stage the commands would have left (creating and starting each through the
    commands costs a scan of the fleet each, minutes for 50 at this size)."""
    from sqlalchemy import insert, select

    from patchgate.adapters.db.models import Campaign

    now = datetime.now(UTC)
    with app.engines.write.begin() as conn:
        row = dict(conn.execute(select(Campaign).where(Campaign.id == template)).mappings().one())
        row.pop("id")
        last = len(row["stages"]) - 1
        began = now - timedelta(days=rng.uniform(1, 300))
        row.update(
            release_id=release, state=end, created_at=began - timedelta(hours=2),
            updated_at=now, started_at=None if end == "draft" else began,
            stage_index={"completed": last, "running": 1, "paused": 2}.get(end, rng.randrange(2)),
            stage_started_at=None if end == "draft" else began + timedelta(hours=6),
            halted_at=began + timedelta(hours=9) if end == "halted" else None,
            halt_reason="failure rate 31 % over the gate's 20 %" if end == "halted" else None,
            finished_at=began + timedelta(days=3) if end in ("completed", "cancelled") else None,
            floor_raised=end == "completed",
        )  # fmt: skip
        return int(conn.execute(insert(Campaign).values(**row).returning(Campaign.id)).scalar_one())


def _campaigns(app: Any, releases: dict[tuple[str, str], int], count: int,
               rng: random.Random) -> list[int]:  # fmt: skip
    templates = {
        product: _template(app.context, releases[(product, versions[1])])
        for product, _hw, versions in PRODUCTS
    }
    for template in templates.values():  # created, then cancelled before they started
        _set_state(app, template, "cancelled")
    plan = (PLAN * (count // len(PLAN) + 1))[:count]
    plan.sort(key=lambda s: s in ("paused", "running", "draft"))  # open ones last
    made = []
    for n, end in enumerate(plan):
        product, hardware, versions = PRODUCTS[n % 3]
        version = versions[min(1 + n // 15, len(versions) - 1)]
        release = releases[(product, version)]
        cid = _copy(app, templates[product], release, end, rng)
        made.append(cid)
        if end != "draft":
            fail = 0.3 if end == "halted" else rng.uniform(0.0, 0.05)
            running = 0.2 if end in ("running", "paused") else 0.0
            size = rng.randrange(300, 4000) if end != "running" else 15_000
            _actions(app, cid, release, version, hardware, size, fail, running, rng)
        _store_figures(app, cid)
    return made


def _store_figures(app: Any, cid: int) -> None:
    """Store the campaign's figures as the commands and the gate tick leave them (built at
    create, kept current by every tick while it runs): a copied row has none, and a read
    would build them from the whole fleet each time, which no campaign made by the
    commands does (docs/campaigns.md, "Figures")."""
    from patchgate.services.campaigns.figures import refresh
    from patchgate.services.campaigns.plans import get_campaign, plan_of

    ctx = app.context
    with ctx.uow() as uow:
        rec = get_campaign(uow, cid)
        refresh(ctx, uow, rec, plan_of(uow, rec), ctx.clock())
        uow.commit()


def _set_state(app: Any, cid: int, state: str) -> None:
    from sqlalchemy import update

    from patchgate.adapters.db.models import Campaign

    with app.engines.write.begin() as conn:
        done = datetime.now(UTC) - timedelta(days=310)
        change = update(Campaign).where(Campaign.id == cid)
        conn.execute(change.values(state=state, finished_at=done, created_at=done))


def _analyze(app: Any) -> None:
    from sqlalchemy import text

    engine = app.engines.write
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def seed(env: dict[str, str], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    token = _setup(env, work)
    os.environ.update(env)
    from patchgate.bootstrap import Settings, build

    app = build(Settings.from_env())
    try:
        step = time.perf_counter()
        _devices(app, args.devices, rng)
        timings["devices_s"] = time.perf_counter() - step
        step = time.perf_counter()
        vulns = _vulnerabilities(app, args.vulns, rng)
        timings["vulnerabilities_s"] = time.perf_counter() - step
        releases = _releases(env, work, vulns)
        step = time.perf_counter()
        campaigns = _campaigns(app, releases, args.campaigns, rng)
        timings["campaigns_s"] = time.perf_counter() - step
        _analyze(app)
    finally:
        app.engines.dispose()
    timings["total_s"] = time.perf_counter() - began
    print(f"seeded in {json.dumps({k: round(v, 1) for k, v in timings.items()})}", file=sys.stderr)
    return {
        "devices": args.devices,
        "token": token,
        "vulns": vulns,
        "releases": releases,
        "campaigns": campaigns,
    }


# ---- measuring ---------------------------------------------------------------------------------


def _pages(client: httpx.Client, seeded: dict[str, Any]) -> list[tuple[str, str]]:
    vulns = seeded["vulns"]
    campaigns = seeded["campaigns"]
    running = campaigns[-2]  # the last ones are open (running), see _campaigns
    # A deep keyset page: the cursor the fleet page's "Next" link carries, 1,800 pages in.
    deep = f"dev-{seeded['devices'] * 9 // 10:06d}"
    return [
        ("dashboard", "/console/"),
        ("vulnerabilities", "/console/vulnerabilities"),
        ("vulnerabilities, filtered", "/console/vulnerabilities?severity=critical&state=overdue"),
        ("vulnerabilities, by score", "/console/vulnerabilities?product=Edge+Router&sort=score"),
        ("vulnerability", f"/console/vulnerabilities/{vulns[3]}"),
        ("releases", "/console/releases"),
        ("release", f"/console/releases/{seeded['releases'][('Edge Router', '3.1.0')]}"),
        ("campaigns", "/console/campaigns"),
        ("campaign (running)", f"/console/campaigns/{running}"),
        ("campaign (completed)", f"/console/campaigns/{campaigns[0]}"),
        ("fleet", "/console/devices"),
        ("fleet, deep keyset page", f"/console/devices?after={deep}"),
        ("fleet, filtered", "/console/devices?product=Edge+Router&group=qa"),
        ("device", f"/console/devices/dev-{seeded['devices'] // 2 + 7:06d}"),
        ("compliance", "/console/compliance"),
        ("audit log", "/console/audit"),
        ("advisories", "/console/advisories"),
        ("notifications", "/console/notifications"),
    ]  # fmt: skip


def measure(env: dict[str, str], work: Path, seeded: dict[str, Any], requests: int,
            port: int) -> dict[str, dict[str, float]]:  # fmt: skip
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [str(PATCHGATE), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    out: dict[str, dict[str, float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            deadline = time.monotonic() + 600  # a loaded machine starts a server slowly
            while True:
                try:
                    if client.get("/console/login").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start in time")
                time.sleep(0.3)
            answer = client.post("/console/login", data={"token": seeded["token"]})
            if answer.status_code != 303:
                raise SystemExit(f"sign-in failed: {answer.status_code}")
            for name, path in _pages(client, seeded):
                took: list[float] = []
                budget = time.monotonic() + PAGE_BUDGET_S
                cpu_from = 0.0
                for n in range(requests + 2):
                    if len(took) >= MIN_REQUESTS and time.monotonic() > budget:
                        break  # a slow page: fewer requests, said in the output
                    if n == 2:
                        cpu_from = _cpu_seconds(server.pid)
                    began = time.perf_counter()
                    page = client.get(path)
                    spent = time.perf_counter() - began
                    if page.status_code != 200:
                        raise SystemExit(f"{path}: {page.status_code} {page.text[:300]}")
                    if n >= 2:  # the first two warm the caches
                        took.append(spent * 1000)
                out[name] = {
                    "median_ms": round(statistics.median(took), 1),
                    "p95_ms": round(_percentile(took, 0.95), 1),
                    "requests": len(took),
                    "server_cpu_ms": round(
                        (_cpu_seconds(server.pid) - cpu_from) * 1000 / len(took), 1
                    ),
                }
                print(f"  {name:38} {out[name]}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(30)
    return out


def run(backend: str, args: argparse.Namespace, base: Path, port: int) -> dict[str, Any]:
    work = base / backend
    saved = work / "seeded.json"
    env = {**os.environ, "PATCHGATE_DATA_DIR": str(work / "data")}
    # The server and the CLI run this checkout's code, whatever the virtualenv installed.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env.pop("PATCHGATE_DATABASE_URL", None)
    # The server's own timers (campaign gates, notices, gauges) would run beside the pages
    # and take the write lock; their cost is measured by the campaign and metrics benches.
    # Off (0), not just slow: each one's first run comes at the start, and the gauges and
    # the notices each build every vulnerability's full view, minutes of work at this size.
    env.update({f"PATCHGATE_{name}": "0" for name in ("CAMPAIGN_TICK", "NOTIFY_TICK",
                                                      "METRICS_REFRESH")})  # fmt: skip
    admin = os.environ.get(
        "PATCHGATE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    if args.reuse and saved.exists():  # measure again what an earlier run seeded
        if backend == "postgres":
            env["PATCHGATE_DATABASE_URL"] = admin.rsplit("/", 1)[0] + f"/{DB_NAME}"
        seeded = json.loads(saved.read_text())
        seeded["releases"] = {tuple(k.split("|")): v for k, v in seeded["releases"].items()}
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        if backend == "postgres":
            env["PATCHGATE_DATABASE_URL"] = _postgres_url(admin)
        print(f"{backend}: seeding", file=sys.stderr)
        seeded = seed(env, work, args)
        kept = {**seeded, "releases": {"|".join(k): v for k, v in seeded["releases"].items()}}
        saved.write_text(json.dumps(kept))
        if args.seed_only:
            return {}
    print(f"{backend}: measuring", file=sys.stderr)
    return measure(env, work, seeded, args.requests, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--vulns", type=int, default=2_000)
    parser.add_argument("--campaigns", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--reuse", action="store_true", help="measure the installation an earlier run seeded"
    )
    parser.add_argument(
        "--seed-only",
        action="store_true",
        help="seed and stop (measure later with --reuse: two shorter runs under the lock)",
    )
    args = parser.parse_args()
    default_work = Path(tempfile.gettempdir()) / "patchgate-bench-console"
    base = Path(os.environ.get("PATCHGATE_BENCH_WORKDIR", default_work))
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    results = {}
    for n, backend in enumerate(backends):
        results[backend] = run(backend, args, base, 18110 + n)
    print(
        json.dumps(
            {
                "machine": f"{os.cpu_count()} CPU, Python {sys.version.split()[0]}",
                "devices": args.devices,
                "vulnerabilities": args.vulns,
                "campaigns": args.campaigns,
                "requests_per_page": args.requests,
                "pages": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
