from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain.errors import InvalidInput
from patchgate.domain.executions import FAILED, REVERTED, TIMED_OUT, Counts, HealthTally
from patchgate.domain.gates import (
    ADVANCE,
    AWAIT_APPROVAL,
    HALT,
    WAIT,
    CrashTest,
    StageFigures,
    StageGates,
    crash_llr,
    evaluate_gate,
    failure_llr,
)
from patchgate.sim.strategies import AwsJobsPolicy, HawkbitPolicy, PatchgatePolicy

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GATES = StageGates(min_finished=10, min_finished_fraction=0.5, min_soak=timedelta(hours=1))


def figures(
    eligible: int,
    succeeded: int = 0,
    failed: int = 0,
    reverted: int = 0,
    timed_out: int = 0,
    updated: HealthTally | None = None,
    baseline: HealthTally | None = None,
    approved: bool = False,
) -> StageFigures:
    counts = Counts(
        eligible=eligible,
        succeeded=succeeded,
        failed=failed,
        reverted=reverted,
        timed_out=timed_out,
    )
    return StageFigures(
        counts=counts,
        stage_started_at=T0,
        updated=updated or HealthTally(),
        baseline=baseline or HealthTally(),
        approved=approved,
    )


def later(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_healthy_stage_waits_for_its_soak_then_advances() -> None:
    f = figures(100, succeeded=60)
    result = evaluate_gate(GATES, f, later(0.5))
    assert result.verdict == WAIT and "soaking" in result.reasons[0]
    assert evaluate_gate(GATES, f, later(1)).verdict == ADVANCE


def test_a_stage_waits_for_its_minimum_finished_and_its_fraction() -> None:
    few = evaluate_gate(GATES, figures(100, succeeded=9), later(2))
    assert few.verdict == WAIT
    assert any("at least 10" in r for r in few.reasons)
    assert any("50% needed" in r for r in few.reasons)
    small = evaluate_gate(GATES, figures(4, succeeded=4), later(2))
    assert small.verdict == ADVANCE  # min_finished is capped by the stage's size


def test_failures_beyond_the_rate_times_the_stage_size_halt_at_once() -> None:
    result = evaluate_gate(GATES, figures(20, succeeded=1, failed=2), later(0))
    assert result.verdict == HALT and "for certain" in result.reasons[0]
    assert result.figures["failures"] == 2


def test_a_clearly_bad_release_halts_before_the_minimum_is_reached_by_the_sequential_test() -> None:
    result = evaluate_gate(GATES, figures(2000, succeeded=2, failed=6), later(0.2))
    assert result.verdict == HALT and "sequential test" in result.reasons[0]


def test_a_few_failures_among_many_successes_do_not_halt_early() -> None:
    result = evaluate_gate(GATES, figures(2000, succeeded=100, failed=4), later(0.5))
    assert result.verdict == WAIT


def test_an_observed_rate_over_the_limit_at_decision_time_halts() -> None:
    gates = StageGates(min_finished=10, min_finished_fraction=0, max_failure_rate=0.05)
    result = evaluate_gate(gates, figures(1000, succeeded=93, failed=7), later(1))
    assert result.verdict == HALT and "7.0%" in result.reasons[0]


def test_which_outcomes_count_as_failures_is_configurable() -> None:
    only_failed = StageGates(
        min_finished=1, min_finished_fraction=0, failure_outcomes=frozenset({FAILED})
    )
    f = figures(20, succeeded=10, timed_out=5)
    assert evaluate_gate(only_failed, f, later(1)).verdict == ADVANCE
    all_three = StageGates(min_finished=1, min_finished_fraction=0)
    assert evaluate_gate(all_three, f, later(1)).verdict == HALT
    with_reverted = StageGates(failure_outcomes=frozenset({REVERTED, TIMED_OUT}))
    assert evaluate_gate(with_reverted, figures(20, reverted=3), later(1)).verdict == HALT


def test_manual_stages_await_approval_until_approved() -> None:
    gates = StageGates(min_finished=1, min_finished_fraction=0, manual=True)
    assert evaluate_gate(gates, figures(5, succeeded=5), later(1)).verdict == AWAIT_APPROVAL
    assert evaluate_gate(gates, figures(5, succeeded=5, approved=True), later(1)).verdict == ADVANCE


def test_a_crash_regression_against_the_previous_release_halts_with_its_figures() -> None:
    updated = HealthTally(crashes=30, exposure_hours=2000 * 24)  # 1.5 %/day
    baseline = HealthTally(crashes=490, exposure_hours=98_000 * 24)  # 0.5 %/day
    result = evaluate_gate(
        GATES, figures(2000, succeeded=2000, updated=updated, baseline=baseline), later(24)
    )
    assert result.verdict == HALT
    assert "crash rate" in result.reasons[0]
    body = result.to_json()
    assert body["verdict"] == "halt" and body["updated_crashes"] == 30
    assert body["crash_llr"] >= body["crash_halt_bound"]


def test_an_unchanged_crash_rate_does_not_halt_and_is_eventually_accepted() -> None:
    updated = HealthTally(crashes=10, exposure_hours=2000 * 24)
    baseline = HealthTally(crashes=490, exposure_hours=98_000 * 24)
    result = evaluate_gate(
        GATES, figures(2000, succeeded=2000, updated=updated, baseline=baseline), later(24)
    )
    assert result.verdict == ADVANCE
    assert result.figures["crash_accepts"] is False  # ten crashes are not yet proof of health
    more = HealthTally(crashes=100, exposure_hours=20_000 * 24)
    base = HealthTally(crashes=4900, exposure_hours=980_000 * 24)
    assert crash_llr(more, base, CrashTest()) < CrashTest().accept_bound


def test_the_crash_test_needs_exposure_on_both_sides() -> None:
    assert crash_llr(HealthTally(5, 10.0), HealthTally(), CrashTest()) is None
    assert crash_llr(HealthTally(), HealthTally(5, 10.0), CrashTest()) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_failure_rate": 0}, "max failure rate"),
        ({"max_failure_rate": 1.5}, "max failure rate"),
        ({"min_finished": -1}, "min finished"),
        ({"min_finished_fraction": 2}, "fraction"),
        ({"failure_outcomes": frozenset({"exploded"})}, "unknown exploded"),
        ({"min_soak": timedelta(hours=-1)}, "soak"),
    ],
)
def test_bad_gate_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        StageGates(**kwargs)  # type: ignore[arg-type]


@given(
    st.integers(1, 5000),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.floats(0.01, 0.5),
)
def test_gate_decisions_match_their_specification(
    eligible: int, succeeded: int, failed: int, rate: float
) -> None:
    succeeded = min(succeeded, eligible)
    failed = min(failed, eligible - succeeded)
    gates = StageGates(min_finished=10, min_finished_fraction=0.5, max_failure_rate=rate)
    result = evaluate_gate(gates, figures(eligible, succeeded=succeeded, failed=failed), later(1))
    finished = succeeded + failed
    certain = failed > rate * eligible
    sprt = failure_llr(failed, finished, gates) >= math.log(100)
    ready = finished >= min(10, eligible) and finished >= math.ceil(0.5 * eligible - 1e-9)
    if certain or sprt:
        assert result.verdict == HALT
    elif not ready:
        assert result.verdict == WAIT
    elif failed / finished > rate:
        assert result.verdict == HALT
    else:
        assert result.verdict == ADVANCE
    # Halting is monotone in failures: one more failure in place of a success never
    # turns a halt into an advance.
    if result.verdict == HALT and succeeded:
        worse = figures(eligible, succeeded=succeeded - 1, failed=failed + 1)
        assert evaluate_gate(gates, worse, later(1)).verdict == HALT


# Monte-Carlo check of the error rates stated in the gates module and docs/gates.md.
def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _halt_share(ratio: float, runs: int, hours: int, seed: int) -> float:
    """A 2,000-device canary against 98,000 devices on the previous release, baseline crash
    rate 0.5 %/day, the gate evaluated every simulated hour."""
    rng = random.Random(seed)
    test = CrashTest()
    n1, n0, per_day = 2000, 98_000, 0.005
    halted = 0
    for _ in range(runs):
        c1 = c0 = 0
        for hour in range(1, hours + 1):
            c1 += _poisson(rng, ratio * per_day * n1 / 24)
            c0 += _poisson(rng, per_day * n0 / 24)
            llr = crash_llr(HealthTally(c1, n1 * hour), HealthTally(c0, n0 * hour), test)
            if llr is not None and llr >= test.halt_bound:
                halted += 1
                break
    return halted / runs


def test_monte_carlo_a_good_release_is_rarely_halted() -> None:
    # alpha = 1 %; allow Monte-Carlo noise (600 runs: sd ≈ 0.4 %).
    assert _halt_share(1.0, runs=600, hours=48, seed=11) <= 0.02


def test_monte_carlo_a_fourfold_crash_rate_halts_within_a_day() -> None:
    assert _halt_share(4.0, runs=200, hours=24, seed=12) >= 0.95


def test_monte_carlo_a_doubled_crash_rate_halts_with_the_designed_power() -> None:
    assert _halt_share(2.0, runs=150, hours=24 * 7, seed=13) >= 0.95


def test_hawkbit_policy_pauses_at_half_in_error_and_moves_on_at_half_finished() -> None:
    policy = HawkbitPolicy()
    assert policy.evaluate(0, figures(20, succeeded=9, failed=9), T0).verdict == WAIT
    assert policy.evaluate(0, figures(20, succeeded=10), T0).verdict == ADVANCE
    assert policy.evaluate(0, figures(20, failed=6, reverted=4), T0).verdict == HALT
    assert policy.evaluate(0, figures(20, timed_out=15), T0).verdict == WAIT
    assert policy.settings()["error_action"] == "PAUSE"


def test_aws_policy_aborts_over_ten_percent_after_ten_executions() -> None:
    policy = AwsJobsPolicy()
    assert policy.evaluate(0, figures(1000, failed=5, succeeded=4), T0).verdict == WAIT
    assert policy.evaluate(0, figures(1000, failed=2, succeeded=18), T0).verdict == WAIT
    assert policy.evaluate(0, figures(1000, failed=3, succeeded=17), T0).verdict == HALT
    assert policy.evaluate(0, figures(10, succeeded=10), T0).verdict == ADVANCE


def test_aws_rate_doubles_every_fifty_successes_up_to_its_maximum() -> None:
    policy = AwsJobsPolicy()
    rates = [policy.rate_per_minute(Counts(succeeded=n)) for n in (0, 49, 50, 100, 10_000)]
    assert rates == [50, 50, 100, 200, 1000]
    assert (
        policy.settings()["jobExecutionsRolloutConfig"]["exponentialRate"]["baseRatePerMinute"]
        == 50
    )


def test_patchgate_policy_evaluates_each_stage_with_its_own_gates() -> None:
    policy = PatchgatePolicy([StageGates(min_finished=1, min_finished_fraction=0), GATES])
    f = figures(100, succeeded=5)
    assert policy.evaluate(0, f, later(2)).verdict == ADVANCE
    assert policy.evaluate(1, f, later(2)).verdict == WAIT
    assert policy.rate_per_minute(f.counts) is None
    assert len(policy.settings()["stages"]) == 2
