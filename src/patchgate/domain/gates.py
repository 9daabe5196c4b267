"""Stage gates: when a stage may advance, must wait, or halts the campaign (docs/gates.md
explains the statistics at more length).

A gate is evaluated on figures folded from execution events (:mod:`executions`) and on
health telemetry tallies; it returns a :class:`GateResult` with a verdict (``advance``,
``wait``, ``halt``, ``await_approval``), the reasons, and every figure it used. Evaluation
is constant-time: no per-device work.

Rules, in the order they are applied:

1. **Certain breach → halt.** If the stage's failures already exceed
   ``max_failure_rate × eligible``, no outcome of the remaining devices can bring the
   stage under the limit.
2. **Failure-rate SPRT → halt.** Wald's sequential probability ratio test on the finished
   executions of the stage, each a Bernoulli trial (failure or not), of H0: p = R against
   H1: p = p1 with R = ``max_failure_rate`` and p1 = ``min(3R, (1+R)/2)``. The log
   likelihood ratio is ``F·ln(p1/R) + S·ln((1−p1)/(1−R))`` for F failures and S successes;
   it halts when it reaches ``ln(1/alpha)``. Under H0 the likelihood ratio is a
   martingale, so by Ville's inequality the chance that it *ever* crosses, however often
   it is evaluated, is at most ``alpha`` (0.01 by default); for a release whose true
   failure rate is below R it is smaller still. A release failing 30 % of boots at R = 5 %
   halts after about 18 finished devices on average.
3. **Crash-rate comparison → halt.** Post-update crashes of the updated cohort (``C1``
   crashes over ``E1`` device-hours since their healthy boot) against the baseline cohort
   still on the previous release (``C0`` over ``E0``), over the same period. Under equal
   rates, conditional on ``N = C1 + C0`` the count ``C1`` is Binomial(N, π) with
   π = E1/(E1+E0), whatever the common rate (the classical conditional test for two
   Poisson rates). Against the alternative that the new release multiplies the crash rate
   by θ (``crash_ratio``, default 2), π1 = θE1/(θE1+E0). The sequential test (Wald's SPRT
   on this conditional binomial) has log likelihood ratio
   ``C1·ln(π1/π) + C0·ln((1−π1)/(1−π))`` and halts when it reaches
   ``ln((1−beta)/alpha)``; with ``alpha`` = 0.01 and ``beta`` = 0.05 a release with an
   unchanged crash rate is halted with probability ≤ about 1 %, and one that doubles it
   is halted with probability ≥ about 95 % once enough exposure has accumulated. The
   Monte-Carlo test in ``tests/unit/test_gates.py`` checks both figures, and a 4× regression
   on a 2,000-device canary, under simulated hourly evaluation. The lower boundary
   ``ln(beta/(1−alpha))`` is reported (``crash_accepts``: evidence that the rate has not
   doubled) but never required: the minimum soak truncates the test.
4. **Waiting.** The stage waits until at least ``min(min_finished, eligible)`` devices
   finished, at least ``min_finished_fraction`` of its eligible devices finished, and
   ``min_soak`` has passed since the stage started.
5. **Observed rate at decision time → halt.** When nothing is left to wait for, a stage
   whose observed failure rate F/finished exceeds R halts instead of advancing.
6. **Approval.** A stage with ``manual`` approval returns ``await_approval`` until
   ``approved``; otherwise ``advance`` (for the last stage: the campaign completes).

Which outcomes count as failures is configurable (``failure_outcomes``: any of
``failed``, ``reverted``, ``timed_out``; all three by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from patchgate.domain.durations import format_duration
from patchgate.domain.errors import InvalidInput
from patchgate.domain.executions import (
    FAILED,
    NO_HEALTH,
    REVERTED,
    TIMED_OUT,
    Counts,
    HealthTally,
)

ADVANCE: Final = "advance"
WAIT: Final = "wait"
HALT: Final = "halt"
AWAIT_APPROVAL: Final = "await_approval"

FAILURE_OUTCOMES: Final = frozenset({FAILED, REVERTED, TIMED_OUT})


@dataclass(frozen=True, slots=True)
class CrashTest:
    """Settings of the sequential crash-rate comparison (rule 3)."""

    crash_ratio: float = 2.0
    alpha: float = 0.01
    beta: float = 0.05

    @property
    def halt_bound(self) -> float:
        """Wald's upper boundary ``ln((1−β)/α)``."""
        return math.log((1 - self.beta) / self.alpha)

    @property
    def accept_bound(self) -> float:
        """Wald's lower boundary ``ln(β/(1−α))``."""
        return math.log(self.beta / (1 - self.alpha))


@dataclass(frozen=True, slots=True)
class StageGates:
    """The gates of one stage (defaults: the guide's phased rollout with sane numbers)."""

    min_finished: int = 10
    min_finished_fraction: float = 0.5
    max_failure_rate: float = 0.05
    failure_outcomes: frozenset[str] = FAILURE_OUTCOMES
    min_soak: timedelta = timedelta(0)
    manual: bool = False
    failure_alpha: float = 0.01
    crash_test: CrashTest | None = field(default_factory=CrashTest)

    def __post_init__(self) -> None:
        problems = []
        if self.min_finished < 0:
            problems.append("min finished: must not be negative")
        if not 0 <= self.min_finished_fraction <= 1:
            problems.append("min finished fraction: must be between 0 and 1")
        if not 0 < self.max_failure_rate < 1:
            problems.append("max failure rate: must be more than 0 and less than 1")
        if not self.failure_outcomes <= FAILURE_OUTCOMES:
            unknown = ", ".join(sorted(self.failure_outcomes - FAILURE_OUTCOMES))
            problems.append(
                f"failure outcomes: unknown {unknown} (known: failed, reverted, timed_out)"
            )
        if self.min_soak < timedelta(0):
            problems.append("soak: must not be negative")
        if problems:
            raise InvalidInput(problems[0], problems=problems)

    @property
    def failure_alternative(self) -> float:
        """p1 of rule 2."""
        r = self.max_failure_rate
        return min(3 * r, (1 + r) / 2)


@dataclass(frozen=True, slots=True)
class StageFigures:
    """What a gate is evaluated on. ``counts`` are the stage's own devices' executions
    (those first admitted in this stage); ``updated`` and ``baseline`` are the health
    tallies of the campaign's updated cohort and of devices still on the previous release
    over the same period."""

    counts: Counts
    stage_started_at: datetime
    updated: HealthTally = NO_HEALTH
    baseline: HealthTally = NO_HEALTH
    approved: bool = False


@dataclass(frozen=True, slots=True)
class GateResult:
    """A verdict with its reasons and the figures behind it (``last_gate`` in status)."""

    verdict: str
    reasons: tuple[str, ...]
    figures: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The ``last_gate`` object of ``campaign status --json``."""
        return {"verdict": self.verdict, "reasons": list(self.reasons), **self.figures}


def failure_llr(failures: int, finished: int, gates: StageGates) -> float:
    """The failure-rate SPRT's log likelihood ratio (rule 2)."""
    r, p1 = gates.max_failure_rate, gates.failure_alternative
    successes = finished - failures
    return failures * math.log(p1 / r) + successes * math.log((1 - p1) / (1 - r))


def crash_llr(updated: HealthTally, baseline: HealthTally, test: CrashTest) -> float | None:
    """The crash comparison's log likelihood ratio (rule 3), ``None`` without exposure in
    both cohorts."""
    e1, e0 = updated.exposure_hours, baseline.exposure_hours
    if e1 <= 0 or e0 <= 0:
        return None
    pi0 = e1 / (e1 + e0)
    pi1 = test.crash_ratio * e1 / (test.crash_ratio * e1 + e0)
    return updated.crashes * math.log(pi1 / pi0) + baseline.crashes * math.log(
        (1 - pi1) / (1 - pi0)
    )


def evaluate_gate(gates: StageGates, figures: StageFigures, now: datetime) -> GateResult:
    """The verdict of ``gates`` on ``figures`` at ``now`` (module rules 1–6, in order)."""
    counts = figures.counts
    eligible = counts.eligible
    failures = sum(counts.of(outcome) for outcome in gates.failure_outcomes)
    finished = counts.finished
    rate = failures / finished if finished else 0.0
    soaked = max(timedelta(0), now - figures.stage_started_at)
    f_llr = failure_llr(failures, finished, gates)
    f_bound = math.log(1 / gates.failure_alpha)
    c_llr = (
        crash_llr(figures.updated, figures.baseline, gates.crash_test) if gates.crash_test else None
    )
    need = min(gates.min_finished, eligible)
    need_fraction = math.ceil(gates.min_finished_fraction * eligible - 1e-9)
    out: dict[str, Any] = {
        "eligible": eligible,
        "finished": finished,
        "failures": failures,
        "failure_rate": round(rate, 6),
        "max_failure_rate": gates.max_failure_rate,
        "failure_outcomes": sorted(gates.failure_outcomes),
        "min_finished": max(need, need_fraction),
        "soak": format_duration(soaked),
        "min_soak": format_duration(gates.min_soak),
        "failure_llr": round(f_llr, 4),
        "failure_halt_bound": round(f_bound, 4),
        "updated_crashes": figures.updated.crashes,
        "updated_exposure_hours": round(figures.updated.exposure_hours, 3),
        "baseline_crashes": figures.baseline.crashes,
        "baseline_exposure_hours": round(figures.baseline.exposure_hours, 3),
        "crash_llr": None if c_llr is None else round(c_llr, 4),
    }
    if gates.crash_test:
        out["crash_halt_bound"] = round(gates.crash_test.halt_bound, 4)
        out["crash_accepts"] = c_llr is not None and c_llr <= gates.crash_test.accept_bound

    halts = []
    if failures > gates.max_failure_rate * eligible:
        halts.append(
            f"failure rate breached for certain: {failures} failures among {eligible} "
            f"devices exceed {gates.max_failure_rate:.1%}"
        )
    elif f_llr >= f_bound:
        halts.append(
            f"failure rate above {gates.max_failure_rate:.1%}: {failures} of {finished} "
            f"finished failed (sequential test, log LR {f_llr:.2f} ≥ {f_bound:.2f})"
        )
    if c_llr is not None and gates.crash_test and c_llr >= gates.crash_test.halt_bound:
        halts.append(
            "post-update crash rate above the previous release's: "
            f"{_rate(figures.updated)} vs {_rate(figures.baseline)} per device-day "
            f"(sequential test, log LR {c_llr:.2f} ≥ {gates.crash_test.halt_bound:.2f})"
        )
    if halts:
        return GateResult(HALT, tuple(halts), out)

    waits = []
    if finished < need:
        waits.append(f"{finished} of at least {need} devices finished")
    if finished < need_fraction:
        waits.append(
            f"{finished} of {eligible} devices finished, {gates.min_finished_fraction:.0%} needed"
        )
    if soaked < gates.min_soak:
        waits.append(f"soaking for {format_duration(soaked)} of {format_duration(gates.min_soak)}")
    if waits:
        return GateResult(WAIT, tuple(waits), out)
    if finished and rate > gates.max_failure_rate:
        return GateResult(
            HALT,
            (
                f"failure rate {rate:.1%} ({failures} of {finished}) exceeds "
                f"{gates.max_failure_rate:.1%}",
            ),
            out,
        )
    if gates.manual and not figures.approved:
        return GateResult(AWAIT_APPROVAL, ("gates passed; the stage waits for approve",), out)
    return GateResult(ADVANCE, ("gates passed",), out)


def _rate(tally: HealthTally) -> str:
    rate = tally.rate_per_day
    return "n/a" if rate is None else f"{rate:.4f}"
