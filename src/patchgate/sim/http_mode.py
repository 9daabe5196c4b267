"""``simulate --mode http``: a real patchgate server, a fresh data folder of its own, and at
least 10,000 asyncio virtual devices (:mod:`.ddi_fleet`) speaking DDI to it.

The seam: everything the run needs of the server side goes through :class:`ServerSide` —
provision the fleet, create and start the campaign for the release under test, read
``campaign status --json``, and revert after a halt. Its implementation drives the
``patchgate`` commands of INTERFACES.md (``device import``, ``release create``,
``campaign create|start|status|revert``) on the run's own data folder, and
``patchgate serve`` on a free loopback port; it is wired once the campaign service
(issue 6: storage, CLI/REST, DDI integration) is merged. :func:`drive` — the devices'
side and the measurement — does not depend on how the server side is reached.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from patchgate.domain import ab_state

from .ddi_fleet import DeviceCredentials, FleetLog, VirtualDevice, faults_for
from .devices import EnvTable
from .scenario import Fleet, Scenario

MIN_HTTP_DEVICES = 10_000
TERMINAL_STATES = frozenset({"halted", "reverting", "completed", "cancelled"})


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
        """``campaign status ID --json``."""
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
    timeout_seconds: float = 3600.0,
    connections: int = 512,
    status_every: float = 2.0,
    on_status: Callable[[Mapping[str, Any]], None] | None = None,
) -> HttpRun:
    """Run the virtual devices against ``server`` until the campaign ends (reverting after a
    halt, as the in-process mode does) or ``timeout_seconds`` pass."""
    table = EnvTable()
    env0 = table.add(
        ab_state.fresh_env(version=old_version, sha256="0" * 64, size=1, security_version=1)
    )
    log = FleetLog()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    started = time.monotonic()
    halted_at: float | None = None
    status: Mapping[str, Any] = {}
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0)) as client:
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
                state = status.get("state")
                if state == "halted" and halted_at is None:
                    halted_at = time.monotonic() - started
                    await asyncio.to_thread(server.revert, campaign_id)
                if state in ("completed", "cancelled"):
                    break
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    for device in devices:
        log.versions[device.version or "none"] += 1
    return HttpRun(len(devices), status, log, time.monotonic() - started, halted_at)
