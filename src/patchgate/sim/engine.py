"""The in-process fleet simulation: a discrete-event simulation on a virtual clock that
drives the campaign core exactly as the server does (docs/campaign-core.md "The poll",
"Feedback, counts and gates"), with devices that move through the A/B state machine
(:mod:`.devices`).

Per device, the events are the ones the server sees: a poll answered by
:func:`~patchgate.domain.campaigns.decide` (offer, cancel, or nothing); DDI feedback folded
into the device's :class:`~patchgate.domain.executions.Execution` with
:func:`~patchgate.domain.executions.step` (offered, downloading, downloaded, installing,
then ``closed`` success after the healthy reboot or the revert); and health telemetry
(crashes over device-hours) summed into the two cohorts' tallies. A timer evaluates the
current stage's gate every ``tick_minutes`` with the strategy's policy, and every verdict
goes through :func:`~patchgate.domain.campaigns.apply_verdict` /
:func:`~patchgate.domain.campaigns.transition`; the snapshot the polls read is rebuilt, with
a new state version, on every transition. A halt is followed by ``campaign revert`` (the
same recovery for every strategy, so their blast radius is compared on equal terms).

Shortcuts that keep a million devices fast, none of which changes an answer:

* A device not admitted by the current stage would hear ``not-in-stage`` from ``decide``
  at every poll until the stage changes, so those polls are not simulated; when a stage
  starts, its newly admitted devices are scheduled to poll at a uniformly random point of
  their poll interval (their phase). Likewise a device that finished, or that ``decide``
  told nothing for a reason only a transition can change, polls again only after one.
* Devices do not go offline in the middle of an install; offline periods (a two-state
  Markov process with mean offline time ``offline_hours`` and a stationary offline share
  ``offline``) are sampled lazily at each poll.
* Crash telemetry is summed per tick over each cohort (Poisson counts over the cohort's
  device-hours), as the server's tallies sum the devices' health reports.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from patchgate.domain import ab_state
from patchgate.domain import executions as ex
from patchgate.domain.campaigns import (
    COMPLETED,
    HALTED,
    PAUSED,
    RATE_LIMITED,
    RETRY_BACKOFF,
    REVERTING,
    RUNNING,
    CampaignPlan,
    CompleteCampaign,
    Delivery,
    DeviceFacts,
    Offer,
    Progress,
    ReleaseRef,
    RevertCampaign,
    Selector,
    Snapshot,
    StartCampaign,
    apply_verdict,
    decide,
    open_action_of,
    transition,
)
from patchgate.domain.gates import StageFigures
from patchgate.domain.planning import FleetTiming, plan_schedule, stage_sizes
from patchgate.domain.ratelimit import RateLimit, TokenBucket
from patchgate.domain.stages import Stage, default_stages, parse_stages
from patchgate.sim.strategies import AwsJobsPolicy, HawkbitPolicy, PatchgatePolicy

from .devices import CUT_POINTS, EnvTable, Timing, abort
from .scenario import GROUPS_OF, INTERNAL, OPTIN, QA, Fleet, Scenario, device_id

T0: Final = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
PRODUCT: Final = "sim-device"
CAMPAIGN_ID: Final = 1
OLD = ReleaseRef(1, PRODUCT, "1.0.0", security_version=1)
NEW = ReleaseRef(2, PRODUCT, "1.1.0", security_version=2)
ROLLOUT_ACTION: Final = "c1-rollout"
REVERT_ACTION: Final = "c1-revert"
SAMPLE_MINUTES: Final = 10.0
PUSH_LATENCY: Final = 1.0
# Push notices (docs/push.md; AWS IoT Jobs' notify-next); hawkBit's DDI is
# poll only.
PUSH_DEFAULT: Final = {"patchgate": True, "hawkbit": False, "aws": True}

_POLL, _DL_DONE, _FINISH = 0, 1, 2
_ROLLOUT, _REVERT = 0, 1
_CODE = {
    ex.NONE: 0,
    ex.S_OFFERED: 1,
    ex.S_DOWNLOADING: 2,
    ex.S_INSTALLING: 3,
    ex.S_CONFIRMING: 4,
    ex.S_RETRYING: 5,
    ex.SUCCEEDED: 6,
    ex.FAILED: 7,
    ex.REVERTED: 8,
    ex.TIMED_OUT: 9,
    ex.CANCELLED: 10,
}
_TERMINAL_CODES = frozenset(_CODE[s] for s in ex.TERMINAL)
_VERSIONS: Final = {_ROLLOUT: NEW.version, _REVERT: OLD.version}
_FINISHED = frozenset({CAMPAIGN_ID})
_NOTHING: frozenset[int] = frozenset()


def at(minutes: float) -> datetime:
    """The virtual clock: ``minutes`` after the release (the campaign starts then)."""
    global _last_at
    last = _last_at
    if minutes == last[0]:
        return last[1]
    value = T0 + timedelta(minutes=minutes)
    _last_at = (minutes, value)  # one object: a reader never sees half an update
    return value


# The last instant converted: a device's poll, offer and first events share one instant.
_last_at: tuple[float, datetime] = (math.nan, T0)


@dataclass
class Timeline:
    """The fleet over time, sampled every ``SAMPLE_MINUTES`` (for ``--plot``)."""

    minutes: list[float] = field(default_factory=list)
    on_new: list[int] = field(default_factory=list)
    installing: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)


@dataclass
class RunResult:
    """What a run measured (docs/contract.md ``simulate --json`` fields and more)."""

    strategy: str
    devices: int
    release_bad: bool
    installed: int
    exposed: int
    bricked: int
    reverted: int
    ab_reverted: int
    revert_installed: int
    exposed_on_known_good: int
    halted: bool
    halted_at_stage: str | None
    halted_at_stage_index: int | None
    minutes_to_halt: float | None
    halt_reason: str | None
    completed: bool
    minutes_to_complete: float | None
    patched_at_deadline: int
    patched_fraction_at_deadline: float
    minutes_to_95pct: float | None
    false_halt: bool
    offline_at_deadline: int
    unpatched_at_deadline: int
    unpatched_offline_at_deadline: int
    unpatched_offline_ids: list[str]
    power_cuts: int
    counts: dict[str, int]
    stages: list[dict[str, Any]]
    settings: dict[str, Any]
    simulated_minutes: float
    timeline: Timeline
    deadline_minutes: float

    def to_json(self) -> dict[str, Any]:
        """The ``simulate --json`` object of one strategy (timeline left out)."""
        out = {k: v for k, v in self.__dict__.items() if k != "timeline"}
        out["exposed_fraction"] = round(self.exposed / self.devices, 6)
        out["every_exposed_on_known_good"] = self.exposed_on_known_good == self.exposed
        out["patched_fraction_at_deadline"] = round(self.patched_fraction_at_deadline, 6)
        for key in ("minutes_to_halt", "minutes_to_95pct", "minutes_to_complete"):
            if out[key] is not None:
                out[key] = round(out[key], 1)
        out["simulated_minutes"] = round(self.simulated_minutes, 1)
        order = [
            "strategy",
            "devices",
            "exposed",
            "exposed_fraction",
            "bricked",
            "reverted",
            "halted",
            "halted_at_stage",
            "minutes_to_halt",
            "patched_fraction_at_deadline",
            "minutes_to_95pct",
            "false_halt",
            "settings",
        ]
        return {**{k: out[k] for k in order}, **{k: v for k, v in out.items() if k not in order}}


def build_stages(scenario: Scenario, fleet: Fleet) -> tuple[tuple[Stage, ...], dict[str, Any]]:
    """patchgate's stages for the scenario: the ``--stages`` spec or the guide's default
    plan, with soaks planned for the deadline (:func:`planning.plan_schedule`)."""
    groups = ("internal", "qa") if scenario.group_size else ()
    stages = parse_stages(scenario.stages, groups) if scenario.stages else default_stages(groups)
    sizes = stage_sizes(
        stages,
        fleet=fleet.n,
        group_sizes={"internal": fleet.group_count(INTERNAL), "qa": fleet.group_count(QA)},
    )
    timing = FleetTiming(poll_interval=timedelta(minutes=scenario.poll_minutes))
    schedule = plan_schedule(
        stages,
        start=T0,
        sizes=sizes,
        timing=timing,
        deadline=at(scenario.deadline_hours * 60),
    )
    plan = {
        "spec": ",".join(s.spec() for s in stages),
        "planned_soaks_hours": [round(s.total_seconds() / 3600, 3) for s in schedule.soaks],
        "plan_warnings": list(schedule.warnings),
    }
    return schedule.apply(stages), plan


# The three policies of domain.strategies (each satisfies its GatePolicy protocol).
Policy = PatchgatePolicy | HawkbitPolicy | AwsJobsPolicy


def policy_for(name: str, stages: tuple[Stage, ...]) -> Policy:
    if name == "patchgate":
        return PatchgatePolicy([s.gates for s in stages])
    if name == "hawkbit":
        return HawkbitPolicy()
    if name == "aws":
        return AwsJobsPolicy()
    raise ValueError(name)


class Run:
    """One strategy's run over a fleet (module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        fleet: Fleet,
        strategy: str,
        progress: Callable[[float, float], None] | None = None,
    ) -> None:
        self.sc = scenario
        self.fleet = fleet
        self.strategy = strategy
        self.progress_cb = progress
        self.rng = random.Random(scenario.seed * 1_000_003 + 17)
        self.nrng = np.random.default_rng([scenario.seed, 1])
        n = fleet.n
        pg_stages, plan_info = build_stages(scenario, fleet)
        if strategy == "aws":
            stages = parse_stages("all:100", ())
            self.plan_info: dict[str, Any] = {"spec": "all:100"}
        else:
            stages = pg_stages
            self.plan_info = plan_info if strategy == "patchgate" else {"spec": plan_info["spec"]}
        self.stages = stages
        self.policy = policy_for(strategy, stages)
        optin = fleet.group_count(OPTIN)
        cuts = tuple(s.cut(fleet=n, optin=optin, fill_from_others=False) for s in stages)
        self.stage_of = fleet.stages_of(cuts)
        # The same as a list: the per-event tally update reads one device's stage, and a
        # list item is several times cheaper to read than a NumPy scalar.
        self.stage_list: list[int] = self.stage_of.tolist()
        self.eligible = [int(np.count_nonzero(self.stage_of == i)) for i in range(len(stages))]
        # Devices by execution status per stage (a status name is its Counts field name);
        # Counts objects are built from these when a gate reads them.
        self.tallies: list[dict[str, int]] = [{} for _ in self.eligible]
        self.revert_tally: dict[str, int] = {}
        self.rate: float | None = None
        delivery = Delivery()
        if strategy == "aws":
            self.rate = self.policy.rate_per_minute(ex.Counts())
            delivery = Delivery(rate=RateLimit.per_min(self.rate or 1))
        self.plan = CampaignPlan(
            id=CAMPAIGN_ID,
            salt=fleet.salt,
            release=NEW,
            selector=Selector(PRODUCT),
            stages=stages,
            cuts=cuts,
            progress=Progress(),
            delivery=delivery,
            revert_to=OLD,
        )
        self.state_version = 0
        self.snapshot = Snapshot.build(0, [self.plan])
        self.tokens: dict[int, TokenBucket] = {}
        # The device model.
        self.table = EnvTable()
        env0 = ab_state.fresh_env(
            version=OLD.version, sha256="0" * 64, size=1, security_version=OLD.security_version
        )
        self.env0 = self.table.add(env0)
        for offer in (
            ab_state.Offer(ROLLOUT_ACTION, NEW.version, "1" * 64, 1, NEW.security_version),
            ab_state.Offer(REVERT_ACTION, OLD.version, "0" * 64, 1, OLD.security_version),
        ):
            self.table.register_offer(offer)
        self.env = np.full(n, self.env0, dtype=np.int32)
        self.status = np.zeros(n, dtype=np.uint8)
        self.rstatus = np.zeros(n, dtype=np.uint8)
        self.exposed = np.zeros(n, dtype=np.bool_)
        self.installed = np.zeros(n, dtype=np.bool_)
        self.ab_reverted = np.zeros(n, dtype=np.bool_)
        self.revert_ok = np.zeros(n, dtype=np.bool_)
        self.on_new = np.zeros(n, dtype=np.bool_)
        self.unsound = np.zeros(n, dtype=np.bool_)
        self.off_state = self.nrng.random(n) < scenario.offline
        self.off_t = np.zeros(n, dtype=np.float64)
        self.open: dict[int, ex.Execution] = {}
        self.open_kind: dict[int, int] = {}
        self.pending: dict[int, Any] = {}
        self.heap: list[tuple[float, int]] = []
        self.batches: list[list[Any]] = []
        self.n_new = 0
        self.in_flight = 0
        self.power_cuts = 0
        self.updated = ex.NO_HEALTH
        self.baseline = ex.NO_HEALTH
        self.health_started = False
        self.halted_at: float | None = None
        self.halt_stage: int | None = None
        self.halt_reason: str | None = None
        self.completed_at: float | None = None
        self.reached_95: float | None = None
        self.deadline = scenario.deadline_hours * 60
        self.at_deadline: dict[str, Any] | None = None
        self.timeline = Timeline()
        self.timing = Timing()
        self.poll = scenario.poll_minutes
        self.off_mean = scenario.offline_hours * 60
        off = scenario.offline
        self.off_rate = (1 / self.off_mean) / (1 - off) if off > 0 else 0.0
        self.now = 0.0
        self.push = PUSH_DEFAULT[strategy] if scenario.push is None else scenario.push
        self.waiting: deque[int] = deque()

    # ---- the campaign --------------------------------------------------------------

    def _set_progress(self, progress: Progress) -> None:
        old = self.plan.progress
        self.plan = replace(self.plan, progress=progress)
        self.state_version += 1
        self.snapshot = Snapshot.build(self.state_version, [self.plan])
        t = self.now
        if progress.state == RUNNING and (
            old.state != RUNNING or progress.stage_index != old.stage_index
        ):
            self._admit(progress.stage_index, t)
        if progress.state == HALTED:
            self.halted_at = t
            self.halt_stage = progress.stage_index
            self.halt_reason = progress.halt_reason
            # The rollback plan: revert the devices that took the release.
            tr = transition(progress, RevertCampaign(), stages=len(self.stages), now=at(t))
            self._set_progress(tr.progress)
        elif progress.state == REVERTING and old.state != REVERTING:
            # The same recovery for every strategy: an unthrottled revert, pushed or polled.
            self.rate = None
            self.waiting.clear()
            self.plan = replace(self.plan, delivery=Delivery())
            self.state_version += 1
            self.snapshot = Snapshot.build(self.state_version, [self.plan])
            self._schedule_batch(np.flatnonzero(self.on_new), t)
        elif progress.state == COMPLETED and old.state != COMPLETED:
            self.completed_at = t

    def _admit(self, stage: int, t: float) -> None:
        devices = np.flatnonzero(self.stage_of == stage)
        self._schedule_batch(devices, t)

    def _schedule_batch(self, devices: npt.NDArray[np.intp], t: float) -> None:
        """The devices' next polls after a transition: with push, the notice makes them
        poll within ``PUSH_LATENCY`` minutes; otherwise at a random point of their interval."""
        if not len(devices):
            return
        spread = PUSH_LATENCY if self.push else self.poll
        times = t + self.nrng.uniform(0.0, spread, len(devices))
        order = np.argsort(times, kind="stable")
        # Python lists: the event loop reads them one item at a time, which is several
        # times cheaper from a list than from an array.
        self.batches.append([times[order].tolist(), devices[order].tolist(), 0])

    def _push(self, t: float, device: int, kind: int) -> None:
        heapq.heappush(self.heap, (t, device * 4 + kind))

    def _next_poll(self, t: float) -> float:
        j = self.sc.poll_jitter
        return t + self.poll * (1 + j * (2 * self.rng.random() - 1))

    # ---- devices -------------------------------------------------------------------

    def _online(self, device: int, t: float) -> bool:
        off = self.sc.offline
        if off <= 0:
            return True
        since = t - float(self.off_t[device])
        s0 = 1.0 if self.off_state[device] else 0.0
        if since < 0:
            p_off = 1.0
        else:
            p_off = off + (s0 - off) * math.exp(-since * (1 / self.off_mean + self.off_rate))
        if self.rng.random() < p_off:
            back = max(t, float(self.off_t[device])) + self.rng.expovariate(1 / self.off_mean)
            self.off_state[device] = False
            self.off_t[device] = back
            self._push(back, device, _POLL)
            return False
        self.off_state[device] = False
        self.off_t[device] = t
        return True

    def _facts(self, device: int) -> DeviceFacts:
        env = self.table.env(int(self.env[device]))
        action = None
        execution = self.open.get(device)
        if execution is not None:
            release = OLD if self.open_kind[device] == _REVERT else NEW
            action = open_action_of(execution, device + 1, CAMPAIGN_ID, release)
        return DeviceFacts(
            device_id(device),
            PRODUCT,
            groups=GROUPS_OF[int(self.fleet.mask[device])],
            installed_version=env.installed_version,
            security_floor=env.security_floor,
            open_action=action,
            finished_campaigns=_FINISHED if self.status[device] in _TERMINAL_CODES else _NOTHING,
            finished_reverts=_FINISHED if self.rstatus[device] in _TERMINAL_CODES else _NOTHING,
        )

    def _on_poll(self, device: int, t: float) -> None:
        if device in self.open:
            return  # mid-install: the agent does not poll until its pass ends
        if not self._online(device, t):
            return
        decision = decide(self._facts(device), self.snapshot, at(t), self.tokens)
        if decision.offer is not None:
            if decision.tokens is not None:
                self.tokens[CAMPAIGN_ID] = decision.tokens
            self._start(device, t, decision.offer)
        elif decision.reason == RATE_LIMITED and self.push:
            self.waiting.append(device)  # notified; dispatched when the rate allows
        elif decision.reason in (RATE_LIMITED, RETRY_BACKOFF):
            self._push(self._next_poll(t), device, _POLL)

    def _dispatch(self, t: float) -> None:
        """Offer to notified devices waiting for the rate limit, in order, while tokens
        last (a pushed job reaches a device when the rollout rate lets it)."""
        waiting = self.waiting
        while waiting:
            device = waiting[0]
            if device in self.open:
                waiting.popleft()
                continue
            decision = decide(self._facts(device), self.snapshot, at(t), self.tokens)
            if decision.reason == RATE_LIMITED:
                return
            waiting.popleft()
            if decision.offer is not None:
                if decision.tokens is not None:
                    self.tokens[CAMPAIGN_ID] = decision.tokens
                self._start(device, t, decision.offer)

    def _event(self, device: int, event: ex.Event) -> None:
        kind = self.open_kind[device]
        old = self.open[device]
        new = ex.step(ex.settle(old, event.at), event, _VERSIONS[kind])
        old_status, status = old.status, new.status
        if old_status != status:
            # The device moves from one status count to the other (its stage's, or the
            # revert's); a device of no stage is counted nowhere.
            if kind == _REVERT:
                tally: dict[str, int] | None = self.revert_tally
            else:
                stage = self.stage_list[device]
                tally = self.tallies[stage] if stage >= 0 else None
            if tally is not None:
                if old_status != ex.NONE:
                    tally[old_status] -= 1
                if status != ex.NONE:
                    tally[status] = tally.get(status, 0) + 1
        if status in ex.TERMINAL:
            del self.open[device]
            del self.open_kind[device]
            (self.rstatus if kind == _REVERT else self.status)[device] = _CODE[status]
        else:
            self.open[device] = new

    def _start(self, device: int, t: float, offer: Offer) -> None:
        kind = _REVERT if offer.kind == "revert" else _ROLLOUT
        now = at(t)
        self.open[device] = ex.NEW
        self.open_kind[device] = kind
        self._event(device, ex.Event(ex.OFFERED, now))
        key = REVERT_ACTION if kind == _REVERT else ROLLOUT_ACTION
        self.env[device] = self.table.apply(int(self.env[device]), "begin_download", key)
        self._event(device, ex.Event(ex.DOWNLOADING, now))
        self.in_flight += 1
        self._push(t + float(self.fleet.download_minutes[device]), device, _DL_DONE)

    def _on_download_done(self, device: int, t: float) -> None:
        now = at(t)
        kind = self.open_kind[device]
        state = self.plan.state
        cancelled = kind == _ROLLOUT and state not in (RUNNING, PAUSED, COMPLETED)
        if cancelled:
            # The halt cancelled the action before it installed: the device's next contact
            # gets cancelAction (410 for its feedback) and it keeps its running slot.
            self.env[device] = abort(self.table, int(self.env[device]), "cancelled by server")
            self._event(device, ex.Event(ex.CANCELLED_EVENT, now))
            self.in_flight -= 1
            self._after(device, t)
            return
        self._event(device, ex.Event(ex.DOWNLOADED, now))
        self._event(device, ex.Event(ex.INSTALLING, now))
        cuts = self.fleet.cut_revert if kind == _REVERT else self.fleet.cut_rollout
        cut_code = int(cuts[device])
        cut = CUT_POINTS[cut_code - 1] if cut_code else None
        boots = not (kind == _ROLLOUT and bool(self.fleet.boot_fails[device]))
        key = REVERT_ACTION if kind == _REVERT else ROLLOUT_ACTION
        result = self.table.install(
            int(self.env[device]),
            key,
            image_boots=boots,
            cut=cut,
            outage=float(self.fleet.outage[device]),
            timing=self.timing,
        )
        if kind == _ROLLOUT:
            self.installed[device] = True
            if self.sc.bad_release:
                self.exposed[device] = True
        if cut is not None:
            self.power_cuts += 1
        self.pending[device] = result
        self._push(t + result.minutes, device, _FINISH)

    def _on_finish(self, device: int, t: float) -> None:
        result = self.pending.pop(device)
        now = at(t)
        kind = self.open_kind[device]
        self.env[device] = result.env
        self.in_flight -= 1
        if not result.sound:
            self.unsound[device] = True
        if result.outcome == "success":
            self._event(device, ex.Event(ex.SUCCESS_REPORTED, now, confirmed=True))
            if kind == _ROLLOUT:
                self._set_new(device, True)
            else:
                self._set_new(device, False)
                self.revert_ok[device] = True
        else:
            self._event(device, ex.Event(ex.REVERTED_EVENT, now))
            if kind == _ROLLOUT:
                self.ab_reverted[device] = True
                # Gates are evaluated when feedback arrives; a failure is the feedback
                # that can halt, so it is evaluated at once (the timer covers the rest).
                self._evaluate(t)
        self._after(device, t)

    def _after(self, device: int, t: float) -> None:
        if self.plan.state == REVERTING and self.on_new[device]:
            self._push(self._next_poll(t), device, _POLL)

    def _set_new(self, device: int, value: bool) -> None:
        if bool(self.on_new[device]) != value:
            self.on_new[device] = value
            self.n_new += 1 if value else -1
            if value and not self.health_started:
                self.health_started = True

    # ---- the timer -----------------------------------------------------------------

    def _tick(self, t: float, dt: float) -> None:
        now = at(t)
        sc = self.sc
        if self.health_started:
            hours = dt / 60
            n1 = self.n_new
            n0 = self.fleet.n - n1 - self.in_flight
            new_rate = sc.fault.p if sc.fault.kind == "crash" else sc.baseline_crash
            c1 = int(self.nrng.poisson(new_rate / 24 * hours * n1)) if n1 else 0
            c0 = int(self.nrng.poisson(sc.baseline_crash / 24 * hours * n0)) if n0 > 0 else 0
            self.updated = ex.HealthTally(
                self.updated.crashes + c1, self.updated.exposure_hours + n1 * hours
            )
            self.baseline = ex.HealthTally(
                self.baseline.crashes + c0, self.baseline.exposure_hours + max(0, n0) * hours
            )
        progress = self.plan.progress
        if progress.state in (RUNNING, PAUSED):
            self._evaluate(t)
            if self.waiting:
                self._dispatch(t)
        elif progress.state == REVERTING and self.n_new == 0 and self.in_flight == 0:
            done = transition(progress, CompleteCampaign(), stages=len(self.stages), now=now)
            self._set_progress(done.progress)
        if self.reached_95 is None and self.n_new >= 0.95 * self.fleet.n:
            self.reached_95 = t
        if self.at_deadline is None and t >= self.deadline:
            self.at_deadline = self._deadline_report(t)

    def _evaluate(self, t: float) -> None:
        """Evaluate the current stage's gate with the strategy's policy and apply the
        verdict (docs/campaign-core.md "Feedback, counts and gates")."""
        now = at(t)
        progress = self.plan.progress
        if progress.state in (RUNNING, PAUSED):
            if self.rate is not None:
                rate = self.policy.rate_per_minute(self._total())
                if rate is not None and rate != self.rate:
                    self.rate = rate
                    delivery = replace(self.plan.delivery, rate=RateLimit.per_min(rate))
                    self.plan = replace(self.plan, delivery=delivery)
                    self.state_version += 1
                    self.snapshot = Snapshot.build(self.state_version, [self.plan])
            stage = progress.stage_index
            assert progress.stage_started_at is not None
            figures = StageFigures(
                self.counts(stage),
                progress.stage_started_at,
                updated=self.updated,
                baseline=self.baseline,
                approved=progress.approved,
            )
            verdict = self.policy.evaluate(stage, figures, now)
            moved = apply_verdict(progress, verdict, stages=len(self.stages), now=now)
            if moved.progress != progress:
                self._set_progress(moved.progress)

    def counts(self, stage: int) -> ex.Counts:
        """Stage ``stage``'s own devices' counts (``eligible``: those it admits first)."""
        return ex.Counts(eligible=self.eligible[stage], **self.tallies[stage])

    def _total(self) -> ex.Counts:
        total = ex.Counts()
        for stage in range(len(self.stages)):
            total = total.plus(self.counts(stage))
        return total

    def _deadline_report(self, t: float) -> dict[str, Any]:
        patched = self.on_new.copy()
        off = self.sc.offline
        if off > 0:
            since = t - self.off_t
            s0 = self.off_state.astype(np.float64)
            p_off = off + (s0 - off) * np.exp(
                -np.maximum(since, 0) * (1 / self.off_mean + self.off_rate)
            )
            p_off = np.where(since < 0, 1.0, p_off)
            busy = np.zeros(self.fleet.n, dtype=np.bool_)
            if self.open:
                busy[np.fromiter(self.open.keys(), dtype=np.int64)] = True
            offline = (self.nrng.random(self.fleet.n) < p_off) & ~busy
        else:
            offline = np.zeros(self.fleet.n, dtype=np.bool_)
        unpatched_offline = np.flatnonzero(offline & ~patched)
        return {
            "patched": int(np.count_nonzero(patched)),
            "offline": int(np.count_nonzero(offline)),
            "unpatched": int(self.fleet.n - np.count_nonzero(patched)),
            "unpatched_offline": len(unpatched_offline),
            "ids": [device_id(int(i)) for i in unpatched_offline[:1000]],
        }

    def _sample(self, t: float) -> None:
        tl = self.timeline
        total = self._total()
        tl.minutes.append(t)
        tl.on_new.append(self.n_new)
        tl.installing.append(self.in_flight)
        tl.failures.append(total.failed + total.reverted + total.timed_out)
        tl.offered.append(int(np.count_nonzero(self.installed)))

    # ---- the loop ------------------------------------------------------------------

    def _stop(self, t: float) -> bool:
        sc = self.sc
        state = self.plan.state
        if t >= sc.horizon_hours * 60:
            return True
        if sc.stop_hours is not None and t >= sc.stop_hours * 60:
            return True
        if sc.stop_after_stage is not None:
            names = [s.name for s in self.stages]
            limit = names.index(sc.stop_after_stage) if sc.stop_after_stage in names else 0
            if self.halted_at is not None or self.plan.progress.stage_index > limit:
                return True
            if state == COMPLETED:
                return True
        finished = state == COMPLETED and self.in_flight == 0
        return finished and t >= self.deadline

    def run(self) -> RunResult:
        """Simulate until the campaign finished and the deadline passed (or the horizon)."""
        tick = self.sc.tick_minutes
        self.now = 0.0
        start = transition(Progress(), StartCampaign(), stages=len(self.stages), now=at(0))
        self._set_progress(start.progress)
        t = 0.0
        next_sample = 0.0
        budget = max(self.deadline, sum(s.gates.min_soak.total_seconds() / 60 for s in self.stages))
        while True:
            self._drain(t)
            self.now = t
            self._tick(t, tick)
            if t >= next_sample:
                self._sample(t)
                next_sample += SAMPLE_MINUTES
                if self.progress_cb is not None:
                    self.progress_cb(t, max(budget, t))
            if self._stop(t):
                break
            t += tick
        if self.at_deadline is None:
            self.at_deadline = self._deadline_report(t)
        return self._result(t)

    def _drain(self, until: float) -> None:
        heap = self.heap
        batches = self.batches
        while True:
            best_t = heap[0][0] if heap else math.inf
            best_batch = -1
            for index, batch in enumerate(batches):
                times, _, pos = batch
                if times[pos] < best_t:
                    best_t = times[pos]
                    best_batch = index
            if best_t > until:
                return
            self.now = best_t
            if best_batch >= 0:
                batch = batches[best_batch]
                device = batch[1][batch[2]]
                batch[2] += 1
                if batch[2] >= len(batch[0]):
                    batches.pop(best_batch)
                self._on_poll(device, best_t)
                continue
            _, code = heapq.heappop(heap)
            device, kind = divmod(code, 4)
            if kind == _POLL:
                self._on_poll(device, best_t)
            elif kind == _DL_DONE:
                self._on_download_done(device, best_t)
            else:
                self._on_finish(device, best_t)

    def _result(self, t: float) -> RunResult:
        n = self.fleet.n
        assert self.at_deadline is not None
        # Bricked: a final env that breaks a safety invariant, or a sound-less env at a cut.
        final_unsound = np.zeros(n, dtype=np.bool_)
        for index in np.unique(self.env):
            if not self.table.sound(int(index)):
                final_unsound |= self.env == index
        bricked = int(np.count_nonzero(final_unsound | self.unsound))
        on_old = np.zeros(n, dtype=np.bool_)
        for index in np.unique(self.env):
            if self.table.version(int(index)) == OLD.version:
                on_old |= self.env == index
        exposed = int(np.count_nonzero(self.exposed))
        back = int(np.count_nonzero(self.exposed & on_old))
        recovered = self.ab_reverted | self.revert_ok
        total = self._total()
        halted = self.halted_at is not None
        stage_rows = []
        for index, stage in enumerate(self.stages):
            stage_rows.append({"name": stage.name, **self.counts(index).to_json()})
        settings = {**self.policy.settings(), **self.plan_info}
        if self.strategy == "aws":
            settings["target"] = "one job for the whole fleet"
        settings["push"] = self.push
        settings["recovery"] = "campaign revert after the halt (same for every strategy)"
        deadline = self.at_deadline
        return RunResult(
            strategy=self.strategy,
            devices=n,
            release_bad=self.sc.bad_release,
            installed=int(np.count_nonzero(self.installed)),
            exposed=exposed,
            bricked=bricked,
            reverted=int(np.count_nonzero(recovered & self.installed)),
            ab_reverted=int(np.count_nonzero(self.ab_reverted)),
            revert_installed=int(np.count_nonzero(self.revert_ok)),
            exposed_on_known_good=back,
            halted=halted,
            halted_at_stage=None if self.halt_stage is None else self.stages[self.halt_stage].name,
            halted_at_stage_index=self.halt_stage,
            minutes_to_halt=self.halted_at,
            halt_reason=self.halt_reason,
            completed=self.completed_at is not None and not halted,
            minutes_to_complete=None if halted else self.completed_at,
            patched_at_deadline=deadline["patched"],
            patched_fraction_at_deadline=deadline["patched"] / n,
            minutes_to_95pct=self.reached_95,
            false_halt=halted and not self.sc.bad_release,
            offline_at_deadline=deadline["offline"],
            unpatched_at_deadline=deadline["unpatched"],
            unpatched_offline_at_deadline=deadline["unpatched_offline"],
            unpatched_offline_ids=deadline["ids"],
            power_cuts=self.power_cuts,
            counts=total.to_json(),
            stages=stage_rows,
            settings=settings,
            simulated_minutes=t,
            timeline=self.timeline,
            deadline_minutes=self.deadline,
        )


def simulate(
    scenario: Scenario,
    strategies: tuple[str, ...],
    *,
    progress: Callable[[str, float, float], None] | None = None,
    fleet: Fleet | None = None,
) -> dict[str, RunResult]:
    """Run every strategy on the same fleet, faults and seed."""
    fleet = fleet or Fleet(scenario)
    out = {}
    for name in strategies:

        def report(t: float, total: float, name: str = name) -> None:
            if progress is not None:
                progress(name, t, total)

        out[name] = Run(scenario, fleet, name, report).run()
    return out
