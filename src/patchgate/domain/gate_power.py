"""What a stage's gates can see: the statistical power of a stage's gates for its size and
soak (docs/gates.md "What a small canary can see").

A gate can only halt on what its devices show. With few devices the failure-rate gate
(docs/gates.md rules 1, 2 and 5) decides on a handful of finished installs, and the
crash-rate comparison (rule 3) on a few device-days of exposure: a regression the gate is
built to catch may pass unseen. Two figures, for the stage's own devices:

* **Failure-rate power**: the probability that the gate halts a release whose failure rate
  is ``FAILURE_MULTIPLE`` times the stage's ``max_failure_rate`` R, by the time the stage
  may advance (``max(min(min_finished, n), ⌈min_finished_fraction·n⌉)`` finished
  devices). Computed exactly: the distribution of failures among the finished devices
  after each one, with the sequential test's halting boundary absorbing (rule 2), then the
  observed-rate rule at the decision (rule 5).
* **Crash-rate reach**: the device-days of exposure after which the sequential crash-rate
  test is expected to halt a release that multiplies the crash rate by its ``crash_ratio``
  θ, for a baseline of ``baseline_crash`` crashes per device-day: Wald's expected drift of
  the log-likelihood ratio per updated device-day is ``λ0·(θ·ln θ − θ + 1)`` (the updated
  cohort is small against the baseline), so the halt boundary ``ln((1−β)/α)`` is reached
  after ``boundary / drift`` device-days; divided by the stage's devices, the soak it
  takes; divided by the soak, the devices it takes.

A stage is *weak* when its failure-rate power is under ``POWER_TARGET`` or its soak is
under half the crash-rate test's reach. The advice names a longer soak or a larger stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from patchgate.domain.durations import format_duration
from patchgate.domain.gates import StageGates
from patchgate.domain.stages import Stage

FAILURE_MULTIPLE: Final = 2.0
POWER_TARGET: Final = 0.8
# Crashes per device-day of a release in good health (the fleet simulator's default).
BASELINE_CRASH: Final = 0.005


def decision_size(gates: StageGates, devices: int) -> int:
    """Finished devices when the stage may advance (docs/gates.md rule 4)."""
    wanted = max(min(gates.min_finished, devices), math.ceil(gates.min_finished_fraction * devices))
    return min(devices, wanted)


def failure_power(gates: StageGates, devices: int, rate: float) -> float:
    """The probability that the failure-rate gate halts by the decision when each finished
    device fails with probability ``rate`` (module docstring)."""
    n = decision_size(gates, devices)
    if n <= 0:
        return 0.0
    limit = gates.max_failure_rate
    alt = min(3 * limit, (1 + limit) / 2)
    up, down = math.log(alt / limit), math.log((1 - alt) / (1 - limit))
    bound = math.log(1 / gates.failure_alpha)
    # alive[f]: not halted yet, with f failures so far; a state whose log-likelihood
    # ratio reaches the boundary is absorbed (halted), so few states stay alive.
    alive = [1.0]
    halted = 0.0
    keep = 1 - rate
    for k in range(1, n + 1):
        # After device k: f failures if it kept f (and did not fail) or had f - 1 (and
        # failed); the two products are summed as they are in any order (a + b == b + a).
        step = [p * keep + q * rate for p, q in zip([*alive, 0.0], [0.0, *alive], strict=True)]
        for failures in range(len(step) - 1, -1, -1):
            if failures * up + (k - failures) * down < bound:
                break
            halted += step.pop()
        alive = step
    # Rule 5: at the decision, an observed rate above the limit halts.
    halted += sum(p for failures, p in enumerate(alive) if failures / n > limit)
    return min(1.0, halted)


def crash_reach(gates: StageGates, baseline: float = BASELINE_CRASH) -> float | None:
    """Device-days after which the crash-rate test expects to halt a θ-fold regression
    (module docstring); None without the test or without crashes to see."""
    test = gates.crash_test
    if test is None or baseline <= 0:
        return None
    theta = test.crash_ratio
    drift = baseline * (theta * math.log(theta) - theta + 1)
    return test.halt_bound / drift if drift > 0 else None


@dataclass(frozen=True, slots=True)
class StagePower:
    """What one stage's gates can see (module docstring)."""

    stage: str
    devices: int
    soak: timedelta
    failure_rate: float
    failure_power: float
    crash_device_days: float | None
    fleet: int = 0
    devices_for_power: int | None = None

    @property
    def crash_soak(self) -> timedelta | None:
        """The soak at which the crash-rate test expects to halt a regression."""
        if self.crash_device_days is None or self.devices <= 0:
            return None
        return timedelta(days=self.crash_device_days / self.devices)

    @property
    def weak(self) -> bool:
        crash = self.crash_soak
        return self.failure_power < POWER_TARGET or (crash is not None and self.soak < crash / 2)

    def advice(self) -> str:
        """One line for ``campaign create`` and the simulator's plan."""
        failure = (
            f"stage {self.stage} holds {self.devices:,} devices: the failure-rate gate halts "
            f"a release failing {self.failure_rate:.0%} of installs with probability "
            f"{self.failure_power:.0%}"
        )
        if self.failure_power < POWER_TARGET and self.devices_for_power:
            failure += f" ({self.devices_for_power:,} devices give {POWER_TARGET:.0%})"
        parts = [failure]
        crash = self.crash_soak
        if crash is not None and self.crash_device_days is not None:
            days = self.soak.total_seconds() / 86400
            needed = math.ceil(self.crash_device_days / days) if days > 0 else None
            if needed and self.fleet and needed > self.fleet:
                larger = ", more devices than the fleet has for this soak"
            else:
                larger = f" or {needed:,} devices for this soak" if needed else ""
            parts.append(
                f"a doubled crash rate takes about {format_duration(_round(crash))} of soak "
                f"to show{larger} (soak planned: {format_duration(self.soak)})"
            )
        return "; ".join(parts) + ": consider a longer soak or a larger stage"


def stage_power(
    stage: Stage, devices: int, baseline: float = BASELINE_CRASH, *, fleet: int = 0
) -> StagePower:
    """The power of ``stage``'s gates with ``devices`` devices of a ``fleet``."""
    gates = stage.gates
    rate = min(0.99, FAILURE_MULTIPLE * gates.max_failure_rate)
    power = failure_power(gates, devices, rate)
    enough = None
    if power < POWER_TARGET:
        enough = _devices_for(gates, rate, devices, max(fleet, devices))
    return StagePower(
        stage.name,
        devices,
        gates.min_soak,
        rate,
        power,
        crash_reach(gates, baseline),
        fleet,
        enough,
    )


def _devices_for(gates: StageGates, rate: float, start: int, most: int) -> int | None:
    """The smallest stage size from ``start`` up to ``most`` (at most ~40 sizes tried,
    growing by 10 %) whose failure-rate power reaches the target."""
    size = start
    for _ in range(40):
        size = min(most, max(size + 1, math.ceil(size * 1.1)))
        if failure_power(gates, size, rate) >= POWER_TARGET:
            return size
        if size >= most:
            return None
    return None


def power_warnings(
    stages: Sequence[Stage], sizes: Sequence[int], baseline: float = BASELINE_CRASH
) -> list[str]:
    """The advice for the first stage that samples the fleet (the canary, else the first
    percentage stage), when its gates are weak for its size."""
    for stage, size in zip(stages, sizes, strict=True):
        if stage.percent is None:
            continue  # a lab group: chosen devices, not a sample of the fleet
        power = stage_power(stage, size, baseline, fleet=sum(sizes))
        return [power.advice()] if power.weak else []
    return []


def _round(value: timedelta) -> timedelta:
    """A duration to the hour (to the minute under an hour), for reading."""
    unit = 3600 if value >= timedelta(hours=1) else 60
    return timedelta(seconds=unit * max(1, round(value.total_seconds() / unit)))
