from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain.campaigns import HALTED, RUNNING, Progress
from patchgate.domain.planning import FleetTiming, forecast, plan_schedule, stage_sizes
from patchgate.domain.stages import MIN_SOAK, default_stages

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STAGES = default_stages({"internal", "qa"})
TIMING = FleetTiming(poll_interval=timedelta(minutes=15), install_time=timedelta(minutes=20))
SIZES = stage_sizes(STAGES, fleet=100_000, group_sizes={"internal": 20, "qa": 30})


def test_stage_sizes_follow_groups_and_cumulative_percentages() -> None:
    assert SIZES == (50, 2000, 7950, 40_000, 50_000)


def test_requested_soaks_are_kept_when_the_deadline_allows() -> None:
    schedule = plan_schedule(
        STAGES, start=T0, sizes=SIZES, timing=TIMING, deadline=T0 + timedelta(hours=72)
    )
    assert schedule.feasible and not schedule.shortened and schedule.warnings == ()
    assert schedule.soaks == tuple(s.gates.min_soak for s in STAGES)
    # Soaks of 1 h + 24 h + 12 h + 6 h, then 35 minutes for the last stage to reach its devices.
    assert schedule.last_stage_reached_at == T0 + timedelta(hours=43, minutes=35)
    assert schedule.complete_at == T0 + timedelta(hours=67)


def test_soaks_shrink_towards_their_minimums_to_meet_a_tight_deadline() -> None:
    deadline = T0 + timedelta(hours=24)
    schedule = plan_schedule(STAGES, start=T0, sizes=SIZES, timing=TIMING, deadline=deadline)
    assert schedule.feasible and schedule.shortened
    assert schedule.last_stage_reached_at <= deadline
    assert schedule.last_stage_reached_at >= deadline - timedelta(seconds=5)
    for planned, stage in zip(schedule.stages[:-1], STAGES[:-1], strict=True):
        assert MIN_SOAK[stage.kind] <= planned.soak <= stage.gates.min_soak
    assert "shortened" in schedule.warnings[0]
    applied = schedule.apply(STAGES)
    assert [s.gates.min_soak for s in applied] == list(schedule.soaks)


def test_an_impossible_deadline_uses_the_minimums_and_warns_by_how_much() -> None:
    deadline = T0 + timedelta(hours=6)
    schedule = plan_schedule(STAGES, start=T0, sizes=SIZES, timing=TIMING, deadline=deadline)
    assert not schedule.feasible
    assert schedule.soaks[:-1] == (
        MIN_SOAK["groups"],
        MIN_SOAK["canary"],
        MIN_SOAK["percent"],
        MIN_SOAK["percent"],
    )
    assert "cannot be met" in schedule.warnings[0] and "1h10m" in schedule.warnings[0]
    assert schedule.to_json()["feasible"] is False


def test_a_rate_limit_lengthens_every_stage_by_its_size() -> None:
    slow = replace(TIMING, rate_per_minute=100)
    schedule = plan_schedule(STAGES, start=T0, sizes=SIZES, timing=slow, deadline=None)
    assert schedule.stages[4].reached_at - schedule.stages[4].starts_at == timedelta(
        minutes=35 + 500
    )


@given(st.integers(1, 24 * 30))
def test_a_feasible_schedule_always_reaches_the_last_stage_by_the_deadline(hours: int) -> None:
    deadline = T0 + timedelta(hours=hours)
    schedule = plan_schedule(STAGES, start=T0, sizes=SIZES, timing=TIMING, deadline=deadline)
    if schedule.feasible:
        assert schedule.last_stage_reached_at <= deadline
    else:
        assert schedule.last_stage_reached_at > deadline
    for planned, stage, last in zip(schedule.stages, STAGES, [False] * 4 + [True], strict=True):
        floor = timedelta(0) if last else MIN_SOAK[stage.kind]
        assert min(floor, stage.gates.min_soak) <= planned.soak <= stage.gates.min_soak


def running_at(stage: int, started: datetime) -> Progress:
    return Progress(state=RUNNING, stage_index=stage, stage_started_at=started)


def test_forecast_follows_the_plan_when_adoption_is_on_pace() -> None:
    progress = running_at(1, T0)
    f = forecast(
        STAGES,
        progress,
        sizes=SIZES,
        timing=TIMING,
        eligible=2000,
        finished=1000,
        now=T0 + timedelta(minutes=35),
        deadline=T0 + timedelta(hours=72),
    )
    assert f.pace == 1.0 and not f.deadline_at_risk
    assert f.last_stage_reached_at == T0 + timedelta(hours=24 + 12 + 6, minutes=35)


def test_slow_adoption_pushes_the_forecast_past_the_deadline() -> None:
    progress = running_at(1, T0)
    # After 10 hours only 5 % of the canary finished: ten times slower than needed for 50 %.
    f = forecast(
        STAGES,
        progress,
        sizes=SIZES,
        timing=TIMING,
        eligible=2000,
        finished=100,
        now=T0 + timedelta(hours=10),
        deadline=T0 + timedelta(hours=30),
    )
    assert f.deadline_at_risk and f.pace > 100
    assert f.last_stage_reached_at is not None and f.last_stage_reached_at > T0 + timedelta(
        hours=30
    )


def test_nothing_finished_yet_is_not_taken_as_on_pace_for_long() -> None:
    progress = running_at(0, T0)
    early = forecast(
        STAGES, progress, sizes=SIZES, timing=TIMING, eligible=50, finished=0, now=T0, deadline=None
    )
    late = forecast(
        STAGES,
        progress,
        sizes=SIZES,
        timing=TIMING,
        eligible=50,
        finished=0,
        now=T0 + timedelta(hours=5),
        deadline=None,
    )
    assert early.complete_at is not None and late.complete_at is not None
    assert late.complete_at > early.complete_at


def test_a_halted_campaign_with_a_deadline_is_at_risk_without_a_forecast() -> None:
    f = forecast(
        STAGES,
        Progress(state=HALTED, stage_started_at=T0),
        sizes=SIZES,
        timing=TIMING,
        eligible=1,
        finished=0,
        now=T0,
        deadline=T0 + timedelta(days=3),
    )
    assert f.deadline_at_risk and f.complete_at is None
