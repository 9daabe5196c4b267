"""``simulate --mode http``: a real patchgate server, a fresh data folder of its own, and a
fleet of asyncio virtual devices (:mod:`.ddi_fleet`) speaking DDI to it.

The seam: everything the run needs of the server side goes through :class:`ServerSide` —
provision the fleet, create and start the campaign for the release under test, read the
campaign's status, and revert after a halt. Its implementation,
:class:`~patchgate.sim.http_server.CliServerSide`, drives the ``patchgate`` commands
(``device import``, ``release create``, ``campaign create|start|revert``) on the run's own
data folder and ``patchgate serve`` on a free loopback port. :func:`drive` — the devices'
side and the measurement — does not depend on how the server side is reached.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from patchgate.domain import ab_state

from .ddi_fleet import (
    DeviceCredentials,
    FleetGate,
    FleetLog,
    VirtualDevice,
    faults_for,
    stop_fleet,
)
from .devices import EnvTable
from .scenario import Fleet, Scenario


class ServerSide(Protocol):
    """What http mode needs of a running patchgate server (module docstring)."""

    url: str

    def provision(self, scenario: Scenario, fleet: Fleet) -> Sequence[DeviceCredentials]:
        """Register the fleet's devices (groups ``internal``, ``qa``, ``canary-optin`` as
        the fleet's masks say) and return their target tokens."""
        ...

    def start_campaign(self, scenario: Scenario) -> str:
        """Create the release under test and start its campaign; its id."""
        ...

    def status(self, campaign_id: str) -> Mapping[str, Any]:
        """The campaign's status (the fields ``campaign status ID --json`` prints)."""
        ...

    def revert(self, campaign_id: str) -> None:
        """``campaign revert ID``."""
        ...


@dataclass
class HttpRun:
    """What an http-mode run observed."""

    devices: int
    status: Mapping[str, Any]
    log: FleetLog
    wall_seconds: float
    halted_at_seconds: float | None
    halted_at_stage: str | None = None
    new_at_95pct_seconds: float | None = None
    on_new: int = 0
    bricked: int = 0
    final_versions: dict[str, str] | None = None


def fleet_connections(devices: int, poll_minutes: float, time_scale: float) -> int:
    """Requests the fleet keeps in flight: enough that its own queue is not what limits it
    while the server answers within 100 ms (the polls a second the run needs × 0.1 s), at
    least 16 and at most 128 (one process's event loop)."""
    needed = devices / max(1e-9, poll_minutes * 60 / time_scale)
    return max(16, min(128, math.ceil(needed * 0.1)))


async def drive(
    server: ServerSide,
    scenario: Scenario,
    fleet: Fleet,
    credentials: Sequence[DeviceCredentials],
    campaign_id: str,
    *,
    new_version: str,
    old_version: str = "1.0.0",
    time_scale: float = 60.0,
    health_minutes: float = 0.0,
    start_spread: float = 0.0,
    timeout_seconds: float = 3600.0,
    settle_seconds: float = 10.0,
    connections: int | None = None,
    status_every: float = 2.0,
    on_status: Callable[[Mapping[str, Any]], None] | None = None,
) -> HttpRun:
    """Run the virtual devices against ``server`` until the campaign ends (reverting after a
    halt, as the in-process mode does; a revert ends when every exposed device is idle on
    ``old_version`` for ``settle_seconds``) or ``timeout_seconds`` pass."""
    table = EnvTable()
    env0 = table.add(
        ab_state.fresh_env(version=old_version, sha256="0" * 64, size=1, security_version=1)
    )
    log = FleetLog()
    stop = asyncio.Event()
    started = time.monotonic()
    halted_at: float | None = None
    halted_stage: str | None = None
    at_95: float | None = None
    settled_since: float | None = None
    status: Mapping[str, Any] = {}
    if connections is None:
        connections = fleet_connections(len(credentials), scenario.poll_minutes, time_scale)
    gate = FleetGate(connections)
    # aiohttp, not httpx: a virtual device's request costs the fleet's one core about
    # 0.15 ms of CPU against httpx's 1.7 ms (BENCHMARKS.md, "http mode"), and 10,000
    # devices at a 15 s poll ask for ~800 requests a second.
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=120.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        devices = [
            VirtualDevice(
                creds,
                client=client,
                server=server.url,
                table=table,
                env=env0,
                faults=faults_for(fleet, index, bad_version=new_version, scenario=scenario),
                log=log,
                time_scale=time_scale,
                health_minutes=health_minutes,
                start_spread=start_spread,
                gate=gate,
                rng=random.Random(f"{scenario.seed}:{creds.device_id}"),
            )
            for index, creds in enumerate(credentials)
        ]
        tasks = [asyncio.create_task(device.run(stop)) for device in devices]
        try:
            while time.monotonic() - started < timeout_seconds:
                await asyncio.sleep(status_every)
                status = await asyncio.to_thread(server.status, campaign_id)
                if on_status is not None:
                    on_status(status)
                now = time.monotonic() - started
                on_new = sum(1 for d in devices if d.version == new_version)
                if at_95 is None and on_new >= 0.95 * len(devices):
                    at_95 = now
                state = status.get("state")
                if state == "halted" and halted_at is None:
                    halted_at = now
                    halted_stage = (status.get("stage") or {}).get("name")
                    await asyncio.to_thread(server.revert, campaign_id)
                    continue
                if state in ("completed", "cancelled"):
                    break
                if state == "reverting":
                    exposed = log.installing.get(new_version, set())
                    settled = all(
                        not d.busy and d.version == old_version for d in devices if d.id in exposed
                    )
                    if not settled:
                        settled_since = None
                    elif settled_since is None:
                        settled_since = now
                    elif now - settled_since >= settle_seconds:
                        break
        finally:
            cut = await stop_fleet(devices, tasks, stop)
            if cut:
                log.counts["stopped-mid-pass"] += cut
    final: dict[str, str] = {}
    bricked = set(log.unsound)
    for device in devices:
        version = device.version or "none"
        log.versions[version] += 1
        final[device.id] = version
        if ab_state.check_invariants(table.env(device.env)):
            bricked.add(device.id)
    return HttpRun(
        len(devices),
        status,
        log,
        time.monotonic() - started,
        halted_at,
        halted_stage,
        at_95,
        sum(1 for v in final.values() if v == new_version),
        len(bricked),
        final,
    )


def result_json(
    run: HttpRun,
    scenario: Scenario,
    *,
    new_version: str,
    old_version: str,
    time_scale: float,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``simulate --json`` fields of inprocess mode, from an http-mode run (minutes are
    simulated minutes: real seconds × ``time_scale`` / 60, from the campaign's start)."""

    def minutes(seconds: float | None) -> float | None:
        if seconds is None:
            return None
        return round(seconds * time_scale / 60, 1)

    exposed_ids = run.log.installing.get(new_version, set()) if scenario.bad_release else set()
    final = run.final_versions or {}
    on_known_good = sum(1 for d in exposed_ids if final.get(d) == old_version)
    halted = run.halted_at_seconds is not None
    counts = run.log.counts
    reverted = sum(
        1 for d in run.log.installing.get(new_version, set()) if final.get(d) == old_version
    )
    stages = [s.get("name") for s in run.status.get("stages") or []]
    return {
        "strategy": "patchgate",
        "devices": run.devices,
        "exposed": len(exposed_ids),
        "exposed_fraction": round(len(exposed_ids) / max(1, run.devices), 6),
        "bricked": run.bricked,
        "reverted": reverted,
        "halted": halted,
        "halted_at_stage": run.halted_at_stage,
        "minutes_to_halt": minutes(run.halted_at_seconds),
        "patched_fraction_at_deadline": round(run.on_new / max(1, run.devices), 6),
        "minutes_to_95pct": minutes(run.new_at_95pct_seconds),
        "false_halt": halted and not scenario.bad_release,
        "settings": {**settings, "stages": stages},
        "mode": "http",
        "exposed_on_known_good": on_known_good,
        "every_exposed_on_known_good": on_known_good == len(exposed_ids),
        "halt_reason": run.status.get("halt_reason"),
        "campaign_state": run.status.get("state"),
        "campaign_counts": run.status.get("counts"),
        "versions": dict(run.log.versions),
        "ab_reverted": counts.get("closed-failure", 0),
        "installs_succeeded": counts.get("closed-success", 0),
        "cancelled": counts.get("cancelled", 0),
        "polls": counts.get("polls", 0),
        "transport_errors": counts.get("errors", 0),
        "offline_waits": counts.get("offline-waits", 0),
        "stopped_mid_pass": counts.get("stopped-mid-pass", 0),
        "simulated_minutes": minutes(run.wall_seconds),
    }


@dataclass(frozen=True)
class Rehearsal:
    """How an http-mode run is paced (docs/simulator.md "http mode")."""

    time_scale: float = 60.0
    health_minutes: float = 60.0
    timeout_seconds: float = 1800.0
    start_spread: float = 15.0
    on_status: Callable[[Mapping[str, Any]], None] | None = None


def rehearse(
    server: ServerSide,
    scenario: Scenario,
    rehearsal: Rehearsal,
    *,
    new_version: str,
    old_version: str,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Provision the fleet on ``server``, start the campaign, drive the devices to its end
    (or the revert's), and return the ``simulate --json`` fields."""
    fleet = Fleet(scenario)
    provision0 = time.monotonic()
    credentials = server.provision(scenario, fleet)
    provision_seconds = time.monotonic() - provision0
    campaign = server.start_campaign(scenario)
    run = asyncio.run(
        drive(
            server,
            scenario,
            fleet,
            credentials,
            campaign,
            new_version=new_version,
            old_version=old_version,
            time_scale=rehearsal.time_scale,
            health_minutes=rehearsal.health_minutes,
            start_spread=rehearsal.start_spread,
            timeout_seconds=rehearsal.timeout_seconds,
            on_status=rehearsal.on_status,
        )
    )
    scale = rehearsal.time_scale
    out = result_json(
        run,
        scenario,
        new_version=new_version,
        old_version=old_version,
        time_scale=scale,
        settings={
            "time_scale": scale,
            "time_scale_note": (
                f"1 real second = {scale:g} simulated seconds; minutes are simulated"
            ),
            "server": server.url,
            "poll_minutes_simulated": scenario.poll_minutes,
            **settings,
            "health_minutes_simulated": rehearsal.health_minutes,
            "gates": "patchgate defaults (campaign create)",
            "recovery": "campaign revert after the halt",
            "patched_fraction_at_deadline": "share on the new release when the run ended",
            "provision_seconds": round(provision_seconds, 1),
            "timed_out": run.wall_seconds >= rehearsal.timeout_seconds,
        },
    )
    polls = run.log.counts.get("polls", 0)
    # What the fleet asks of the server (every device once per polling interval, in real
    # seconds) and what it got, over the run.
    interval = scenario.poll_minutes * 60 / scale
    out["polls_per_second_needed"] = round(run.devices / max(interval, 1e-9), 1)
    out["polls_per_second"] = round(polls / max(run.wall_seconds, 1e-9), 1)
    out["drive_seconds"] = round(run.wall_seconds, 1)
    out["campaign_id"] = campaign
    return out
