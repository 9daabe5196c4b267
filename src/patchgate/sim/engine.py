"""The in-process fleet simulation: a discrete-event simulation on a virtual clock that
drives the campaign core exactly as the server does (docs/campaign-core.md "The poll",
"Feedback, counts and gates"), with devices that move through the A/B state machine
(:mod:`.devices`). This module holds the run's state, the campaign's side (transitions,
the gate timer, health tallies) and the event loop; a device's own events (polls, offers,
downloads, install passes) are in :mod:`.device_events` and its feedback's fold in
:mod:`.feedback`. The fixed parts of the simulated campaign live in :mod:`.model`, the
pending events in :mod:`.events`, the offline model in :mod:`.offline` and the figures in
:mod:`.results`.

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

import gc
import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from patchgate.domain import ab_state
from patchgate.domain import executions as ex
from patchgate.domain.actions import client_kind
from patchgate.domain.campaigns import (
    COMPLETED,
    HALTED,
    PAUSED,
    REVERTING,
    RUNNING,
    CampaignPlan,
    CompleteCampaign,
    Delivery,
    Progress,
    RevertCampaign,
    Selector,
    Snapshot,
    StartCampaign,
    apply_verdict,
    transition,
)
from patchgate.domain.gates import StageFigures
from patchgate.domain.ratelimit import RateLimit, TokenBucket
from patchgate.domain.stages import parse_stages

from .clients import configured_kinds
from .device_events import DeviceEvents
from .devices import EnvTable, InstallResult, Timing
from .events import CONFIRM_DUE, DOWNLOAD_DONE, FINISH, KINDS, POLL, WRITTEN, EventQueue
from .model import (
    CAMPAIGN_ID,
    EARLY_MINUTES,
    NEW,
    OLD,
    PRODUCT,
    PUSH_DEFAULT,
    PUSH_LATENCY,
    REVERT_ACTION,
    ROLLOUT_ACTION,
    SAMPLE_MINUTES,
    at,
    build_stages,
    policy_for,
)
from .offline import OfflineModel
from .results import RunResult, Timeline, build_result, deadline_report, flags
from .scenario import GROUPS_OF, OPTIN, Fleet, Scenario

__all__ = ["Run", "RunResult", "Timeline", "simulate"]


class Run(DeviceEvents):
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
        self.bad_release = scenario.bad_release
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
        # Per-device state the event loop reads and writes one item at a time: a list of
        # env indices and bytearrays of codes and flags (an item of either is several
        # times cheaper to read or write than a NumPy scalar); :mod:`.results` reads the
        # bytearrays as NumPy arrays without a copy (``flags``).
        self.env: list[int] = [self.env0] * n
        self.status = bytearray(n)
        self.rstatus = bytearray(n)
        self.exposed = bytearray(n)
        self.installed = bytearray(n)
        self.ab_reverted = bytearray(n)
        self.revert_ok = bytearray(n)
        self.on_new = bytearray(n)
        self.unsound = bytearray(n)
        self.n_installed = 0
        self.offline = OfflineModel(n, scenario.offline, scenario.offline_hours, self.nrng)
        # Each device's open execution (None when it has none) and its kind (rollout or
        # revert: meaningful while it is open), and its install pass while one runs.
        self.open: list[ex.Execution | None] = [None] * n
        self.open_kind = bytearray(n)
        # Each device's install pass while one runs, with the minute it began and that
        # minute as the clock's datetime.
        self.pending: list[tuple[InstallResult, float, datetime] | None] = [None] * n
        self.queue = EventQueue()
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
        self.now = 0.0
        self.push = PUSH_DEFAULT[strategy] if scenario.push is None else scenario.push
        self.waiting: deque[int] = deque()
        # DDI client kinds (.clients): each group mask's kind by the server's rule.
        configured = configured_kinds(scenario.client_kinds)
        self.client_of_mask = [client_kind(groups, configured) for groups in GROUPS_OF]
        self.items = fleet.items
        self.mask_list: list[int] = self.items.mask
        self.ids = fleet.ids
        self.salt = fleet.salt
        self.buckets = fleet.bucket_list
        window = ex.DEFAULT_EXECUTION_POLICY.confirmation_window
        self.confirm_minutes = window.total_seconds() / 60
        # Every device's execution events, in order, when a test asks for them.
        self.trace: dict[int, list[ex.Event]] | None = None

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
            self._schedule_batch(np.flatnonzero(flags(self.on_new)), t)
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
        self.queue.add_polls(times, devices)

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
            self.at_deadline = deadline_report(self, t)

    def _evaluate(self, t: float) -> None:
        """Evaluate the current stage's gate with the strategy's policy and apply the
        verdict (docs/campaign-core.md "Feedback, counts and gates")."""
        now = at(t)
        progress = self.plan.progress
        if progress.state in (RUNNING, PAUSED):
            if self.rate is not None:
                rate = self.policy.rate_per_minute(self.total())
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

    def total(self) -> ex.Counts:
        total = ex.Counts()
        for stage in range(len(self.stages)):
            total = total.plus(self.counts(stage))
        return total

    def _sample(self, t: float) -> None:
        tl = self.timeline
        total = self.total()
        tl.minutes.append(t)
        tl.on_new.append(self.n_new)
        tl.installing.append(self.in_flight)
        failures = total.failed + total.reverted + total.timed_out
        tl.failures.append(failures)
        tl.finished.append(failures + total.succeeded)
        tl.offered.append(self.n_installed)

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
        # The loop makes no reference cycles (every object it makes is freed by its
        # reference count), so the cycle collector would only walk the live executions
        # and the fleet's lists, again and again (a tenth of the CPU time of a
        # 100,000-device run, more with more devices alive at once).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if collecting:
                gc.enable()

    def _run(self) -> RunResult:
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
                # Every tick in the first hours (a halt takes minutes), then coarser.
                next_sample = t + (tick if t < EARLY_MINUTES else SAMPLE_MINUTES)
                if self.progress_cb is not None:
                    self.progress_cb(t, max(budget, t))
            if self._stop(t):
                break
            t += tick
        if self.at_deadline is None:
            self.at_deadline = deadline_report(self, t)
        return build_result(self, t)

    def _drain(self, until: float) -> None:
        queue = self.queue
        by_kind = {
            POLL: self._on_poll,
            DOWNLOAD_DONE: self._on_download_done,
            FINISH: self._on_finish,
            WRITTEN: self._on_written,
            CONFIRM_DUE: self._on_confirm_due,
        }
        handlers = tuple(by_kind[kind] for kind in range(len(by_kind)))
        pop_due = queue.pop_due
        while True:
            current = queue.current
            if current and not queue.batches:
                # The usual case, without a call: the current bucket's earliest event.
                t, code = current[-1]
                if t > until:
                    return
                current.pop()
                device, kind = divmod(code, KINDS)
            else:
                due = pop_due(until)
                if due is None:
                    return
                t, device, kind = due
            self.now = t
            handlers[kind](device, t)


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
