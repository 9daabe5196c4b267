"""The device side of ``simulate --mode http``: asyncio virtual devices that speak hawkBit's
DDI to a real server, each moving through the same A/B state machine as in-process devices
(:mod:`.devices`, on :mod:`patchgate.domain.ab_state`).

One pass of a virtual device follows the agent's pass (docs/agent.md "What one pass does"):
health telemetry (``POST {base}/health``, with the crashes of the running release since the
last report and the device-hours they cover), then the base poll (``config.polling.sleep``,
``_links``); a ``cancelAction`` is acknowledged (``closed``/``success``); a
``deploymentBase`` is fetched and installed: ``proceeding`` feedback while downloading (the
download is simulated by its duration unless ``fetch_artifacts`` is set), ``proceeding``
while installing, then the final ``closed`` with ``success`` after the healthy reboot or
``failure`` after the A/B revert. Authentication is ``Authorization: TargetToken``. Times
are real seconds divided by ``time_scale``, so a fleet can run hours of rollout in minutes.

Faults come from the scenario's fleet arrays: which devices cannot boot the new image,
where power is cut, how slow each link is.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from patchgate.domain import ab_state
from patchgate.domain.ab_state import Phase

from .devices import CUT_POINTS, EnvTable, Timing, abort, run_install

DEFAULT_SLEEP = 900.0


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """A provisioned device: its controller id and target token."""

    device_id: str
    token: str


@dataclass(frozen=True, slots=True)
class DeviceFaults:
    """What goes wrong on one device: versions its hardware cannot boot, the crash rate per
    device-day of each version (others: ``baseline_crash``), the power cut of its next
    install, and its download time in minutes."""

    unbootable: frozenset[str] = frozenset()
    crash_per_day: Mapping[str, float] = field(default_factory=dict)
    baseline_crash: float = 0.005
    power_cut: Phase | None = None
    outage_minutes: float = 10.0
    download_minutes: float = 1.0


@dataclass
class FleetLog:
    """What the virtual devices did, summed over the fleet."""

    counts: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    installed: set[str] = field(default_factory=set)
    unsound: set[str] = field(default_factory=set)


def parse_sleep(value: object) -> float:
    """DDI ``config.polling.sleep`` (``HH:MM:SS``) in seconds."""
    try:
        hours, minutes, seconds = (int(part) for part in str(value).split(":"))
    except ValueError:
        return DEFAULT_SLEEP
    return float(hours * 3600 + minutes * 60 + seconds)


class VirtualDevice:
    """One simulated device talking DDI (module docstring)."""

    def __init__(
        self,
        credentials: DeviceCredentials,
        *,
        client: httpx.AsyncClient,
        server: str,
        table: EnvTable,
        env: int,
        faults: DeviceFaults,
        log: FleetLog,
        tenant: str = "DEFAULT",
        time_scale: float = 1.0,
        rng: random.Random | None = None,
        fetch_artifacts: bool = False,
    ) -> None:
        self.id = credentials.device_id
        self.headers = {"Authorization": f"TargetToken {credentials.token}"}
        self.client = client
        self.base = f"{server.rstrip('/')}/{tenant}/controller/v1/{self.id}"
        self.table = table
        self.env = env
        self.faults = faults
        self.log = log
        self.scale = time_scale
        self.rng = rng or random.Random(self.id)
        self.fetch_artifacts = fetch_artifacts
        self.last_health = time.monotonic()
        self.timing = Timing()

    @property
    def version(self) -> str | None:
        return self.table.version(self.env)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``; transport errors back off with jitter."""
        failures = 0
        while not stop.is_set():
            try:
                sleep = await self.pass_once()
                failures = 0
            except (httpx.HTTPError, ValueError):
                failures += 1
                self.log.counts["errors"] += 1
                sleep = min(300.0, 5.0 * 2**failures) * self.rng.random()
            try:
                await asyncio.wait_for(stop.wait(), timeout=sleep / self.scale)
            except TimeoutError:
                continue

    async def pass_once(self) -> float:
        """One pass; returns the seconds to sleep (the server's polling interval)."""
        await self._health()
        reply = await self._get(self.base)
        self.log.counts["polls"] += 1
        links = reply.get("_links") or {}
        sleep = parse_sleep((reply.get("config") or {}).get("polling", {}).get("sleep"))
        cancel = _href(links, "cancelAction")
        deployment = _href(links, "deploymentBase")
        if cancel is not None:
            await self._cancel(cancel)
        elif deployment is not None:
            await self._install(await self._get(deployment))
        return sleep

    async def _get(self, url: str) -> Mapping[str, Any]:
        response = await self.client.get(url, headers=self.headers)
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, Mapping):
            raise ValueError(f"{url}: not a JSON object")
        return data

    async def _feedback(self, action_id: str, execution: str, finished: str, *details: str) -> bool:
        """Send DDI feedback; ``False`` when the action is closed already (410 Gone)."""
        body = {
            "status": {
                "execution": execution,
                "result": {"finished": finished},
                "details": list(details),
            }
        }
        url = f"{self.base}/deploymentBase/{action_id}/feedback"
        response = await self.client.post(url, json=body, headers=self.headers)
        if response.status_code == 410:
            return False
        response.raise_for_status()
        return True

    async def _health(self) -> None:
        now = time.monotonic()
        hours = (now - self.last_health) * self.scale / 3600
        self.last_health = now
        version = self.version or ""
        rate = self.faults.crash_per_day.get(version, self.faults.baseline_crash)
        crashes = _poisson(self.rng, rate / 24 * hours)
        env = self.table.env(self.env)
        body = {
            "running_version": version,
            "crash_count": env.failed_trials,
            "crashes": crashes,
            "exposure_hours": round(hours, 6),
            "bootcount": env.bootcount,
            "booted_slot": env.booted_slot,
            "active_slot": env.active_slot,
            "phase": env.phase.value,
            "security_floor": env.security_floor,
        }
        response = await self.client.post(f"{self.base}/health", json=body, headers=self.headers)
        if response.status_code >= 500:
            response.raise_for_status()

    async def _cancel(self, href: str) -> None:
        data = await self._get(href)
        stop_id = str((data.get("cancelAction") or {}).get("stopId", data.get("id", "")))
        body = {"status": {"execution": "closed", "result": {"finished": "success"}}}
        url = f"{self.base}/cancelAction/{stop_id}/feedback"
        response = await self.client.post(url, json=body, headers=self.headers)
        response.raise_for_status()
        self.log.counts["cancelled"] += 1

    async def _install(self, data: Mapping[str, Any]) -> None:
        action_id = str(data["id"])
        chunk = data["deployment"]["chunks"][0]
        artifact = chunk["artifacts"][0]
        version = str(chunk["version"])
        metadata = {str(m["key"]): str(m["value"]) for m in chunk.get("metadata") or []}
        offer = ab_state.Offer(
            action_id=f"{action_id}:{version}",
            version=version,
            sha256=str(artifact["hashes"]["sha256"]),
            size=int(artifact.get("size", 0)),
            security_version=int(metadata.get("security_version", 0)),
            target=metadata.get("tuf_target"),
        )
        key = self.table.register_offer(offer)
        self.log.counts["offers"] += 1
        if version == self.version:
            await self._feedback(action_id, "closed", "success", f"already running {version}")
            return
        self.env = self.table.apply(self.env, "begin_download", key)
        await self._feedback(action_id, "download", "none", f"downloading {version}")
        await self._download(artifact)
        if not await self._feedback(action_id, "downloaded", "none", "downloaded"):
            self.env = abort(self.table, self.env, "action closed by the server")
            self.log.counts["cancelled"] += 1
            return
        await self._feedback(action_id, "proceeding", "none", "installing")
        self.log.installed.add(self.id)
        result = run_install(
            self.table,
            self.env,
            key,
            image_boots=version not in self.faults.unbootable,
            cut=self.faults.power_cut,
            outage=self.faults.outage_minutes,
            timing=self.timing,
        )
        await asyncio.sleep(result.minutes * 60 / self.scale)
        self.env = result.env
        if not result.sound:
            self.log.unsound.add(self.id)
        finished = "success" if result.outcome == "success" else "failure"
        self.log.counts[f"closed-{finished}"] += 1
        await self._feedback(action_id, "closed", finished, f"running version {self.version}")

    async def _download(self, artifact: Mapping[str, Any]) -> None:
        href = _href(artifact.get("_links") or {}, "download-http") or _href(
            artifact.get("_links") or {}, "download"
        )
        if self.fetch_artifacts and href is not None:
            async with self.client.stream("GET", href, headers=self.headers) as response:
                response.raise_for_status()
                async for _ in response.aiter_bytes():
                    pass
        await asyncio.sleep(self.faults.download_minutes * 60 / self.scale)


def faults_for(fleet: Any, index: int, *, bad_version: str | None, scenario: Any) -> DeviceFaults:
    """Device ``index``'s faults from a :class:`~patchgate.sim.scenario.Fleet` (the same
    arrays the in-process mode uses)."""
    cut_code = int(fleet.cut_rollout[index])
    unbootable = frozenset(
        {bad_version} if bad_version and bool(fleet.boot_fails[index]) else set()
    )
    crash = {}
    if bad_version and scenario.fault.kind == "crash":
        crash[bad_version] = scenario.fault.p
    return DeviceFaults(
        unbootable=unbootable,
        crash_per_day=crash,
        baseline_crash=scenario.baseline_crash,
        power_cut=CUT_POINTS[cut_code - 1] if cut_code else None,
        outage_minutes=float(fleet.outage[index]),
        download_minutes=float(fleet.download_minutes[index]),
    )


def _href(links: Mapping[str, Any], name: str) -> str | None:
    link = links.get(name)
    if isinstance(link, Mapping) and isinstance(link.get("href"), str):
        return str(link["href"])
    return None


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for the small means of one device's report)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
