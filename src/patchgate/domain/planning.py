"""Deadline-aware plans (docs/campaigns.md): a stage schedule
that reaches the last stage before the earliest vulnerability due date, and a forecast of
completion from the adoption observed so far.

Model. A stage's devices poll every ``poll_interval`` and then need ``install_time`` to
download, install, reboot and confirm, so a stage *reaches* its devices in
``poll_interval + install_time``, plus ``size / rate`` when a rate limit applies. A stage
lasts ``max(reach, soak)`` (its soak runs from the stage's start). The deadline is met when
the last stage has reached its devices: ``start + Σ(stages before the last) + reach(last)``
— the last stage's soak only delays completion (and the security floor), not patching.

Schedule rule. If the requested soaks fit, they are kept. Otherwise every soak before the
last is shrunk towards its floor (:data:`stages.MIN_SOAK`) by the same fraction of its
excess, just enough to fit. If even the floors do not fit, the floors are used, the plan is
marked infeasible, and a warning says by how much the deadline is missed.

Offline devices. A share ``offline_share`` of the fleet is offline at any moment, for
``offline_hours`` on average (exponentially distributed, as a two-state Markov fleet): an
offline device of a stage takes the release when it comes back, so it is patched by the
deadline only if it returns before then. Expected patched share at the deadline: for each
stage, its online devices if the stage is reached by then, plus its offline devices times
``1 - exp(-(deadline - reached) / offline_hours)``. With an offline share, the schedule
rule aims the last stage's reach at ``deadline - catch_up`` (the time by which 95 % of the
offline devices are back: ``offline_hours · ln 20``) instead of the deadline; where the
floors do not allow that, the soaks go down to their floors, which is as early as a safe
plan can be. The schedule states the expected patched share.

Forecast rule. In the current stage the observed time to reach its devices is the elapsed
time scaled to the stage's ``min_finished_fraction`` (elapsed × target ÷ finished share);
the ratio of that to the model's reach time (at least 1 until something is observed, so an
empty stage is not optimistic) scales the reach time of every later stage.
``deadline_at_risk`` is true when the forecast reach of the last stage is after the
deadline, or the campaign is halted or cancelled with a deadline (a paused campaign's
elapsed time keeps counting, so pausing for long raises the risk by itself).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from patchgate.domain.campaigns import CANCELLED, HALTED, Progress
from patchgate.domain.clock import rfc3339
from patchgate.domain.durations import format_duration
from patchgate.domain.stages import Stage, min_soak

# The share of offline devices a plan leaves time to come back before the deadline.
CATCH_UP_SHARE = 0.95


@dataclass(frozen=True, slots=True)
class FleetTiming:
    """How fast the fleet takes an offer."""

    poll_interval: timedelta = timedelta(minutes=15)
    install_time: timedelta = timedelta(minutes=20)
    rate_per_minute: float | None = None
    offline_share: float = 0.0
    offline_hours: float = 6.0

    def catch_up(self, back: float = CATCH_UP_SHARE) -> timedelta:
        """Time by which a share ``back`` of the devices offline now are online again
        (module "Offline devices"); zero without offline devices."""
        if self.offline_share <= 0:
            return timedelta(0)
        return timedelta(hours=self.offline_hours * math.log(1 / (1 - back)))

    def patched_by(self, reached: datetime, deadline: datetime) -> float:
        """The expected share of a stage's devices patched at ``deadline`` when the stage
        reaches its online devices at ``reached``."""
        if reached > deadline:
            return 0.0
        off = self.offline_share
        if off <= 0:
            return 1.0
        hours = (deadline - reached).total_seconds() / 3600
        return (1 - off) + off * (1 - math.exp(-hours / self.offline_hours))

    def reach(self, size: int) -> timedelta:
        """Time for a stage of ``size`` new devices to reach them (module "Model")."""
        base = self.poll_interval + self.install_time
        if self.rate_per_minute:
            base += timedelta(minutes=size / self.rate_per_minute)
        return base


def stage_sizes(
    stages: Sequence[Stage], *, fleet: int, group_sizes: Mapping[str, int]
) -> tuple[int, ...]:
    """Estimated new devices per stage: group stages by their groups' sizes, the canary by
    its aim (its opt-in devices are mostly new), percentage stages by the growth of their
    share of ``fleet`` over the devices admitted before (cumulative stages)."""
    sizes = []
    admitted = 0
    for stage in stages:
        if stage.percent is None:
            size = sum(group_sizes.get(g, 0) for g in stage.groups)
        elif stage.canary:
            size = math.ceil(stage.percent / 100 * fleet)
        else:
            total = math.ceil(stage.percent / 100 * fleet)
            size = max(0, total - admitted)
        admitted += size
        sizes.append(min(size, max(0, fleet - (admitted - size))))
    return tuple(sizes)


@dataclass(frozen=True, slots=True)
class PlannedStage:
    """One stage of a schedule: when it starts, reaches its devices, and may end."""

    name: str
    starts_at: datetime
    reached_at: datetime
    soak: timedelta
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stage schedule (module "Schedule rule")."""

    stages: tuple[PlannedStage, ...]
    last_stage_reached_at: datetime
    complete_at: datetime
    deadline_at: datetime | None
    feasible: bool
    shortened: bool
    warnings: tuple[str, ...]
    expected_patched_at_deadline: float | None = None

    @property
    def soaks(self) -> tuple[timedelta, ...]:
        """The planned soak of every stage."""
        return tuple(s.soak for s in self.stages)

    def apply(self, stages: Sequence[Stage]) -> tuple[Stage, ...]:
        """``stages`` with their minimum soaks set to this schedule's."""
        return tuple(
            replace(stage, gates=replace(stage.gates, min_soak=planned.soak))
            for stage, planned in zip(stages, self.stages, strict=True)
        )

    def to_json(self) -> dict[str, object]:
        """The plan as ``campaign status --json`` may show it."""
        return {
            "feasible": self.feasible,
            "shortened": self.shortened,
            "warnings": list(self.warnings),
            "deadline_at": rfc3339(self.deadline_at),
            "last_stage_reached_at": rfc3339(self.last_stage_reached_at),
            "complete_at": rfc3339(self.complete_at),
            "expected_patched_at_deadline": self.expected_patched_at_deadline,
            "stages": [
                {
                    "name": s.name,
                    "starts_at": rfc3339(s.starts_at),
                    "reached_at": rfc3339(s.reached_at),
                    "soak": format_duration(s.soak),
                    "ends_at": rfc3339(s.ends_at),
                }
                for s in self.stages
            ],
        }


def plan_schedule(
    stages: Sequence[Stage],
    *,
    start: datetime,
    sizes: Sequence[int],
    timing: FleetTiming,
    deadline: datetime | None,
) -> Schedule:
    """A schedule that reaches the last stage before ``deadline`` when it can (module
    "Schedule rule"), early enough for offline devices to come back ("Offline devices");
    without a deadline, the requested soaks."""
    count = len(stages)
    reach = [timing.reach(size) for size in sizes]
    soaks = [s.gates.min_soak for s in stages]
    floors = [min(min_soak(s, i == count - 1), soaks[i]) for i, s in enumerate(stages)]
    warnings: list[str] = []
    feasible, shortened = True, False
    if deadline is not None and count:
        budget = deadline - start
        # A stage lasts max(reach, soak): shrinking a soak below its reach saves nothing.
        lows = [min(soaks[i], max(floors[i], reach[i])) for i in range(count)]
        aim = budget - timing.catch_up()
        planned = _shrink(soaks, lows, reach, aim)
        if planned is None and _to_last(reach, lows) <= budget:
            # As early as the floors allow, still before the deadline.
            planned = ([*lows[:-1], soaks[-1]], 0.0)
        if planned is not None:
            soaks, keep = planned
            shortened = keep < 1
            if shortened:
                target = "the deadline" if aim == budget else "the offline devices' return"
                warnings.append(
                    f"soaks shortened to {_fraction(keep)} of their excess over the minimum "
                    f"to reach the last stage in time for {target}"
                )
        else:
            soaks = [floors[i] if i < count - 1 else soaks[i] for i in range(count)]
            shortened = any(f < s.gates.min_soak for f, s in zip(floors, stages, strict=True))
            feasible = False
            missed = _to_last(reach, soaks) - budget
            warnings.append(
                "deadline cannot be met: even the minimum soaks reach the last stage "
                f"{format_duration(missed)} after it"
            )
    return _schedule(
        stages, start, reach, soaks, sizes, timing, deadline, feasible, shortened, warnings
    )


def _shrink(
    soaks: Sequence[timedelta],
    lows: Sequence[timedelta],
    reach: Sequence[timedelta],
    budget: timedelta,
) -> tuple[list[timedelta], float] | None:
    """The soaks before the last shrunk by one fraction of their excess over ``lows``,
    just enough to reach the last stage within ``budget``; None if even ``lows`` do not."""
    count = len(soaks)
    needed = _to_last(reach, soaks)
    if needed <= budget:
        return list(soaks), 1.0
    slack = sum((soaks[i] - lows[i] for i in range(count - 1)), timedelta(0))
    over = needed - budget
    if slack <= timedelta(0) or over > slack:
        return None
    keep = 1 - over / slack
    shrunk = [
        lows[i] + (soaks[i] - lows[i]) * keep if i < count - 1 else soaks[i] for i in range(count)
    ]
    return [timedelta(seconds=math.floor(s.total_seconds())) for s in shrunk], keep


def _schedule(
    stages: Sequence[Stage],
    start: datetime,
    reach: Sequence[timedelta],
    soaks: Sequence[timedelta],
    sizes: Sequence[int],
    timing: FleetTiming,
    deadline: datetime | None,
    feasible: bool,
    shortened: bool,
    warnings: list[str],
) -> Schedule:
    planned: list[PlannedStage] = []
    at = start
    for i, stage in enumerate(stages):
        ends = at + max(reach[i], soaks[i])
        planned.append(PlannedStage(stage.name, at, at + reach[i], soaks[i], ends))
        at = ends
    last_reached = planned[-1].reached_at if planned else start
    complete = planned[-1].ends_at if planned else start
    expected = None
    total = sum(sizes)
    if deadline is not None and total:
        by_stage = (
            size * timing.patched_by(p.reached_at, deadline)
            for size, p in zip(sizes, planned, strict=True)
        )
        expected = round(sum(by_stage) / total, 4)
        if timing.offline_share > 0:
            warnings.append(
                f"expected patched at the deadline: {expected:.1%} of the fleet "
                f"({timing.offline_share:.0%} offline at a time, back after "
                f"{timing.offline_hours:g} h on average)"
            )
    return Schedule(
        tuple(planned),
        last_reached,
        complete,
        deadline,
        feasible,
        shortened,
        tuple(warnings),
        expected,
    )


def _to_last(reach: Sequence[timedelta], soaks: Sequence[timedelta]) -> timedelta:
    total = sum((max(r, s) for r, s in zip(reach[:-1], soaks[:-1], strict=True)), timedelta(0))
    return total + reach[-1]


def _fraction(value: float) -> str:
    return f"{max(0.0, value):.0%}"


@dataclass(frozen=True, slots=True)
class Forecast:
    """When the campaign is expected to reach its last stage's devices and to complete,
    and whether the deadline is at risk (``forecast_complete_at``, ``deadline_at``,
    ``deadline_at_risk`` in ``campaign status``)."""

    last_stage_reached_at: datetime | None
    complete_at: datetime | None
    deadline_at: datetime | None
    deadline_at_risk: bool
    pace: float


def forecast(
    stages: Sequence[Stage],
    progress: Progress,
    *,
    sizes: Sequence[int],
    timing: FleetTiming,
    eligible: int,
    finished: int,
    now: datetime,
    deadline: datetime | None,
) -> Forecast:
    """The forecast from the current stage's observed adoption (module "Forecast rule");
    ``eligible`` and ``finished`` are the current stage's own devices."""
    if progress.state in (HALTED, CANCELLED) or progress.stage_started_at is None:
        return Forecast(None, None, deadline, deadline is not None, 0.0)
    index = progress.stage_index
    stage = stages[index]
    started = progress.stage_started_at
    elapsed = max(timedelta(0), now - started)
    planned_reach = timing.reach(sizes[index])
    target = stage.gates.min_finished_fraction or 1.0
    share = finished / eligible if eligible else 1.0
    if share >= target:
        # Reached at some time within ``elapsed``: faster than the model if that is short.
        observed = min(elapsed, planned_reach)
        pace = max(0.05, observed / planned_reach)
    elif share > 0:
        observed = max(elapsed, elapsed * (target / share))
        pace = max(1.0, observed / planned_reach)
    else:
        observed = elapsed + planned_reach
        pace = observed / planned_reach
    at = started + max(observed, stage.gates.min_soak)
    last_reached = started + observed
    if index == len(stages) - 1:
        complete = at
    else:
        for j in range(index + 1, len(stages)):
            reach = timing.reach(sizes[j]) * pace
            last_reached = at + reach
            at = at + max(reach, stages[j].gates.min_soak)
        complete = at
    risk = deadline is not None and last_reached > deadline
    return Forecast(last_reached, complete, deadline, risk, round(pace, 3))
