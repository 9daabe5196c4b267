"""The device side of ``simulate --mode http``: asyncio virtual devices that speak hawkBit's
DDI to a real server, each moving through the same A/B state machine as in-process devices
(:mod:`.devices`, on :mod:`patchgate.domain.ab_state`).

One pass of a virtual device follows the agent's pass (docs/agent.md "What one pass does"):
health telemetry (``POST {base}/health``, with the crashes of the running release since the
last report and the device-hours they cover), then the base poll (``config.polling.sleep``,
``_links``); a ``cancelAction`` is acknowledged (``closed``/``success``); a
``deploymentBase`` is fetched (and read by the agent's parser, :mod:`patchgate.agent.ddi`)
and installed: ``download`` feedback while downloading (simulated by its duration, no bytes
are fetched), ``proceeding`` while installing, then the final ``closed`` with ``success``
after the healthy reboot or ``failure`` after the A/B revert. Authentication is
``Authorization: TargetToken``. Times are real seconds divided by ``time_scale``, so a fleet
can run hours of rollout in minutes.

Faults come from the scenario's fleet arrays: which devices cannot boot the new image,
where power is cut, how slow each link is.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from patchgate.agent.ddi import (
    DdiError,
    Deployment,
    link_href,
    parse_deployment,
    parse_sleep,
)
from patchgate.domain import ab_state
from patchgate.domain.ab_state import Phase

from .devices import CUT_POINTS, EnvTable, Timing, abort, run_install

# The polling sleep when the server names none (the server always does).
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
    offline: float = 0.0
    offline_hours: float = 6.0


@dataclass
class FleetLog:
    """What the virtual devices did, summed over the fleet."""

    counts: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    installed: set[str] = field(default_factory=set)
    unsound: set[str] = field(default_factory=set)
    # Devices that started installing each version.
    installing: dict[str, set[str]] = field(default_factory=dict)
    # The last install of each device: (version, "success" | "failure").
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)


class FleetGate:
    """At most ``slots`` requests of the fleet in flight, the others waiting in arrival order.

    ``asyncio.Semaphore`` would do the same, but a waiter that is cancelled removes itself
    from the middle of its queue by a linear scan; when a stopped fleet cancels tens of
    thousands of devices queued behind a slow server that is quadratic (minutes at 100,000
    devices). Here a cancelled waiter is only marked and skipped when its turn comes."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._hand_on()  # handed a slot just as it was cancelled: pass it on
            raise

    async def __aexit__(self, *_exc: object) -> None:
        self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # a cancelled waiter's future is done already
                turn.set_result(None)
                return
        self._free += 1


class VirtualDevice:
    """One simulated device talking DDI (module docstring)."""

    def __init__(
        self,
        credentials: DeviceCredentials,
        *,
        client: aiohttp.ClientSession,
        server: str,
        table: EnvTable,
        env: int,
        faults: DeviceFaults,
        log: FleetLog,
        tenant: str = "DEFAULT",
        time_scale: float = 1.0,
        rng: random.Random | None = None,
        health_minutes: float = 0.0,
        start_spread: float = 0.0,
        gate: FleetGate | None = None,
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
        self.last_health = time.monotonic()
        self.timing = Timing()
        # Health reports at most every ``health_minutes`` of simulated time (0: every pass).
        self.health_minutes = health_minutes
        self.busy = False
        # Between passes (asleep): the fleet cancels such a device's task to stop it; one
        # in the middle of a pass ends the pass first.
        self.idle = False
        self.start_spread = start_spread
        # Polls and health reports in flight across the fleet, shared by every device (http
        # mode: as many as the session has connections), so that thousands of devices do
        # not all queue inside the client's connection pool.
        self.gate = gate or FleetGate(1)
        self.offline_until = 0.0
        if faults.offline > 0 and self.rng.random() < faults.offline:
            self.offline_until = time.monotonic() + self._offline_seconds()

    @property
    def version(self) -> str | None:
        return self.table.version(self.env)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``; transport errors back off with jitter."""
        failures = 0
        # Devices do not all start at the same instant (``start_spread`` real seconds).
        delay = self.rng.random() * self.start_spread
        while not stop.is_set():
            # A plain sleep, cancelled by the fleet at the end (:meth:`idle`). Not
            # ``wait_for(stop.wait())``: each timeout takes its future out of the one
            # event's list of waiters, a scan of the whole fleet (BENCHMARKS.md, "http mode
            # at 100,000 devices").
            self.idle = True
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                return
            finally:
                self.idle = False
            if stop.is_set():
                return
            wait = self.offline_until - time.monotonic()
            if wait > 0:
                self.log.counts["offline-waits"] += 1
                delay = wait
                continue
            try:
                sleep = await self.pass_once()
                failures = 0
                # The server's polling sleep is already compressed by the time scale.
                delay = sleep * self.rng.uniform(0.9, 1.1)
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, DdiError):
                failures += 1
                self.log.counts["errors"] += 1
                delay = min(300.0, 5.0 * 2**failures) * self.rng.random()
                self.busy = False
            self._maybe_go_offline(delay)

    def _offline_seconds(self) -> float:
        """A real-time offline period (exponential, mean ``offline_hours`` simulated)."""
        return self.rng.expovariate(1.0) * self.faults.offline_hours * 3600 / self.scale

    def _maybe_go_offline(self, delay: float) -> None:
        """Two-state Markov model: in the long run a share ``offline`` of devices is away."""
        p = self.faults.offline
        if p <= 0:
            return
        rate_per_hour = p / (1 - p) / self.faults.offline_hours
        hours = delay * self.scale / 3600
        if self.rng.random() < 1 - math.exp(-rate_per_hour * hours):
            self.offline_until = time.monotonic() + self._offline_seconds()

    async def pass_once(self) -> float:
        """One pass; returns the seconds to sleep (the server's polling interval)."""
        await self._health()
        reply = await self._get(self.base)
        self.log.counts["polls"] += 1
        links = reply.get("_links") or {}
        polling = (reply.get("config") or {}).get("polling") or {}
        sleep = parse_sleep(polling.get("sleep"), DEFAULT_SLEEP)
        cancel = link_href(links, "cancelAction")
        deployment = link_href(links, "deploymentBase")
        if cancel is not None:
            await self._cancel(cancel)
        elif deployment is not None:
            await self._install(parse_deployment(await self._get(deployment)))
        return sleep

    async def _get(self, url: str) -> Mapping[str, Any]:
        async with self.gate, self.client.get(url, headers=self.headers) as response:
            response.raise_for_status()
            data = await response.json(content_type=None)
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
        # Feedback does not queue behind the fleet's polls (the gate is for those).
        async with self.client.post(url, json=body, headers=self.headers) as response:
            if response.status == 410:
                return False
            response.raise_for_status()
            return True

    async def _health(self, *, force: bool = False) -> None:
        """``POST …/health``: the crashes of the running release since the last report, over
        the (simulated) seconds it covers, as ``crash_count`` and ``uptime_s``."""
        now = time.monotonic()
        hours = (now - self.last_health) * self.scale / 3600
        if not force and hours * 60 < self.health_minutes:
            return
        self.last_health = now
        version = self.version or ""
        rate = self.faults.crash_per_day.get(version, self.faults.baseline_crash)
        crashes = _poisson(self.rng, rate / 24 * hours)
        self.log.counts["crashes"] += crashes
        env = self.table.env(self.env)
        body = {
            "running_version": version,
            "crash_count": crashes,
            "watchdog_count": 0,
            "uptime_s": round(hours * 3600, 3),
            "boot_count": env.bootcount,
            "metrics": {
                "booted_slot": env.booted_slot,
                "active_slot": env.active_slot,
                "phase": env.phase.value,
                "failed_trials": env.failed_trials,
            },
        }
        url = f"{self.base}/health"
        async with self.gate, self.client.post(url, json=body, headers=self.headers) as response:
            if response.status >= 500:
                response.raise_for_status()

    async def _cancel(self, href: str) -> None:
        data = await self._get(href)
        stop_id = str((data.get("cancelAction") or {}).get("stopId", data.get("id", "")))
        body = {"status": {"execution": "closed", "result": {"finished": "success"}}}
        url = f"{self.base}/cancelAction/{stop_id}/feedback"
        async with self.gate, self.client.post(url, json=body, headers=self.headers) as response:
            response.raise_for_status()
        self.log.counts["cancelled"] += 1

    async def _install(self, deployment: Deployment) -> None:
        action_id = deployment.action_id
        chunk = deployment.chunks[0]
        artifact = chunk.artifacts[0]
        version = chunk.version
        offer = ab_state.Offer(
            # The env's action id is never sent (feedback names the DDI action); one key
            # per release lets the fleet's devices share envs and memoised transitions.
            action_id=f"release:{version}",
            version=version,
            sha256=artifact.hashes["sha256"],
            size=artifact.size,
            security_version=int(chunk.metadata.get("security_version", 0)),
            target=chunk.metadata.get("tuf_target"),
        )
        key = self.table.register_offer(offer)
        self.log.counts["offers"] += 1
        if version == self.version:
            await self._feedback(action_id, "closed", "success", f"already running {version}")
            return
        self.busy = True
        try:
            await self._install_offer(action_id, version, key)
        finally:
            self.busy = False

    async def _install_offer(self, action_id: str, version: str, key: str) -> None:
        self.env = self.table.apply(self.env, "begin_download", key)
        await self._feedback(action_id, "download", "none", f"downloading {version}")
        await self._download()
        if not await self._feedback(action_id, "downloaded", "none", "downloaded"):
            self.env = abort(self.table, self.env, "action closed by the server")
            self.log.counts["cancelled"] += 1
            return
        await self._feedback(action_id, "proceeding", "none", "installing")
        self.log.installed.add(self.id)
        self.log.installing.setdefault(version, set()).add(self.id)
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
        self.log.outcomes[self.id] = (version, finished)
        await self._health(force=True)

    async def _download(self) -> None:
        await asyncio.sleep(self.faults.download_minutes * 60 / self.scale)


async def stop_fleet(
    devices: Sequence[VirtualDevice],
    tasks: Sequence[asyncio.Task[None]],
    stop: asyncio.Event,
    *,
    grace: float = 60.0,
) -> int:
    """End the devices' :meth:`VirtualDevice.run` tasks: ``stop`` is set, a device asleep
    between passes is cancelled at once, one in the middle of a pass is given ``grace``
    real seconds to end it. A device still in its pass then (queued behind a saturated
    server, say) is cancelled at the request it waits on, which for its A/B slots is a
    power cut at that point; the number of those is returned."""
    stop.set()
    for device, task in zip(devices, tasks, strict=True):
        if device.idle:
            task.cancel()
    late: set[asyncio.Task[None]] = set()
    pending = [task for task in tasks if not task.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return len(late)


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
        offline=float(scenario.offline),
        offline_hours=float(scenario.offline_hours),
    )


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for the small means of one device's report)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
