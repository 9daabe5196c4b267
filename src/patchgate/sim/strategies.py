"""Gate strategies as pure policies over the same events, so the simulator can replay one
fleet and one fault under patchgate's gates and under the rules of two well-known tools
(docs/simulator.md, "Strategies"). Every setting is data, printed by :meth:`settings`.

* ``patchgate`` — the stage gates of :mod:`gates` (sequential tests, soak, fraction).
* ``hawkbit`` — Eclipse hawkBit's rollout builder defaults: cascading groups (here of the
  same sizes as patchgate's stages); a group's *success condition* is met when
  ``success_threshold`` (50 %) of its targets finished successfully, which starts the next
  group; its *error condition* is met when ``error_threshold`` (50 %) of its targets are in
  error, and the error action *pauses* the rollout (a halt, for the comparison). hawkBit
  learns of an A/B revert as an error feedback, so ``reverted`` counts as an error; it has
  no action timeout, so ``timed_out`` does not (``error_outcomes``). No soak, no health
  telemetry.
* ``aws`` — AWS IoT Jobs: one job for the whole target, rolled out at an exponential rate
  (``base_per_minute`` 50, multiplied by ``increment_factor`` 2 each time another
  ``increase_after_succeeded`` 50 devices succeeded, capped at ``maximum_per_minute``
  1000); an abort criterion cancels the job when more than ``abort_threshold`` (10 %) of
  executed devices failed, once at least ``abort_min_executed`` (10) executions finished.
  Failure types counted: failed, reverted (reported as FAILED), timed out
  (``failure_outcomes``, AWS ``failureType: ALL``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from patchgate.domain.executions import FAILED, REVERTED, TIMED_OUT, Counts
from patchgate.domain.gates import (
    ADVANCE,
    HALT,
    WAIT,
    GateResult,
    StageFigures,
    StageGates,
    evaluate_gate,
)


class GatePolicy(Protocol):
    """What the simulator needs from a strategy."""

    name: str

    def settings(self) -> dict[str, Any]:
        """The strategy's parameters, as printed in the simulator's ``settings``."""
        ...

    def evaluate(self, stage_index: int, figures: StageFigures, now: datetime) -> GateResult:
        """The verdict for stage ``stage_index`` on ``figures``."""
        ...

    def rate_per_minute(self, counts: Counts) -> float | None:
        """Offers per minute allowed now (``None``: unlimited, or the campaign's rate)."""
        ...


@dataclass(frozen=True)
class PatchgatePolicy:
    """patchgate's own gates, one :class:`StageGates` per stage."""

    stage_gates: Sequence[StageGates]
    name: str = "patchgate"

    def settings(self) -> dict[str, Any]:
        """Every stage's gate settings."""
        return {
            "stages": [
                {
                    "min_finished": g.min_finished,
                    "min_finished_fraction": g.min_finished_fraction,
                    "max_failure_rate": g.max_failure_rate,
                    "failure_outcomes": sorted(g.failure_outcomes),
                    "min_soak_hours": g.min_soak.total_seconds() / 3600,
                    "manual": g.manual,
                    "failure_alpha": g.failure_alpha,
                    "crash_test": None
                    if g.crash_test is None
                    else {
                        "crash_ratio": g.crash_test.crash_ratio,
                        "alpha": g.crash_test.alpha,
                        "beta": g.crash_test.beta,
                    },
                }
                for g in self.stage_gates
            ]
        }

    def evaluate(self, stage_index: int, figures: StageFigures, now: datetime) -> GateResult:
        """:func:`gates.evaluate_gate` with this stage's gates."""
        return evaluate_gate(self.stage_gates[stage_index], figures, now)

    def rate_per_minute(self, counts: Counts) -> float | None:
        """patchgate's rate is the campaign's ``--rate`` (or none)."""
        return None


@dataclass(frozen=True)
class HawkbitPolicy:
    """hawkBit rollout groups with threshold success and error conditions."""

    success_threshold: float = 0.5
    error_threshold: float = 0.5
    error_outcomes: frozenset[str] = frozenset({FAILED, REVERTED})
    name: str = "hawkbit"

    def settings(self) -> dict[str, Any]:
        """hawkBit's builder defaults as used here."""
        return {
            "groups": "same sizes as patchgate's stages",
            "success_condition": f"THRESHOLD {self.success_threshold:.0%} finished",
            "success_action": "NEXTGROUP",
            "error_condition": f"THRESHOLD {self.error_threshold:.0%} error",
            "error_action": "PAUSE",
            "error_outcomes": sorted(self.error_outcomes),
        }

    def evaluate(self, stage_index: int, figures: StageFigures, now: datetime) -> GateResult:
        """Error condition first (pause → halt), then success condition (next group)."""
        counts = figures.counts
        total = max(1, counts.eligible)
        errors = sum(counts.of(o) for o in self.error_outcomes)
        figures_out = {"eligible": counts.eligible, "errors": errors, "succeeded": counts.succeeded}
        if errors / total >= self.error_threshold:
            return GateResult(
                HALT, (f"error condition: {errors} of {counts.eligible} in error",), figures_out
            )
        if counts.succeeded / total >= self.success_threshold:
            return GateResult(ADVANCE, ("success condition met",), figures_out)
        return GateResult(WAIT, ("success condition not met",), figures_out)

    def rate_per_minute(self, counts: Counts) -> float | None:
        """hawkBit does not throttle a group."""
        return None


@dataclass(frozen=True)
class AwsJobsPolicy:
    """AWS IoT Jobs exponential rollout with an abort configuration."""

    base_per_minute: float = 50
    increment_factor: float = 2
    increase_after_succeeded: int = 50
    maximum_per_minute: float = 1000
    abort_threshold: float = 0.10
    abort_min_executed: int = 10
    failure_outcomes: frozenset[str] = frozenset({FAILED, REVERTED, TIMED_OUT})
    name: str = "aws"

    def settings(self) -> dict[str, Any]:
        """The job's rollout and abort configuration, in AWS's terms."""
        return {
            "jobExecutionsRolloutConfig": {
                "exponentialRate": {
                    "baseRatePerMinute": self.base_per_minute,
                    "incrementFactor": self.increment_factor,
                    "rateIncreaseCriteria": {
                        "numberOfSucceededThings": self.increase_after_succeeded
                    },
                },
                "maximumPerMinute": self.maximum_per_minute,
            },
            "abortConfig": {
                "criteriaList": [
                    {
                        "failureType": "ALL",
                        "action": "CANCEL",
                        "thresholdPercentage": self.abort_threshold * 100,
                        "minNumberOfExecutedThings": self.abort_min_executed,
                    }
                ]
            },
            "failure_outcomes": sorted(self.failure_outcomes),
        }

    def evaluate(self, stage_index: int, figures: StageFigures, now: datetime) -> GateResult:
        """Abort (halt) when the failure share of executed devices exceeds the threshold
        after the minimum number of executions; otherwise the job keeps going."""
        counts = figures.counts
        executed = counts.finished
        failures = sum(counts.of(o) for o in self.failure_outcomes)
        figures_out = {"executed": executed, "failures": failures}
        if executed >= self.abort_min_executed and failures / executed > self.abort_threshold:
            return GateResult(
                HALT,
                (f"abort criteria: {failures} of {executed} executions failed",),
                figures_out,
            )
        if counts.eligible and executed >= counts.eligible:
            return GateResult(ADVANCE, ("all executions finished",), figures_out)
        return GateResult(WAIT, ("job in progress",), figures_out)

    def rate_per_minute(self, counts: Counts) -> float | None:
        """The exponential rate after ``counts.succeeded`` successes."""
        steps = counts.succeeded // self.increase_after_succeeded
        rate = self.base_per_minute * self.increment_factor ** min(steps, 64)
        return float(min(self.maximum_per_minute, rate))


STRATEGIES: Final = ("patchgate", "hawkbit", "aws")
