"""The timing rules of a campaign (domain/campaign_timing.py, domain/executions.py rule 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from patchgate.domain import executions as ex
from patchgate.domain.campaign_timing import (
    CampaignTiming,
    timing_from,
    timing_json,
    timing_problems,
)

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _policy(retries: int = 1) -> ex.ExecutionPolicy:
    return CampaignTiming(timeout=timedelta(minutes=30), retries=retries).policy()


def test_a_timeout_before_installing_is_retried_after_the_back_off() -> None:
    events = [ex.Event(ex.OFFERED, T0), ex.Event(ex.DOWNLOADING, T0 + timedelta(minutes=5))]
    state = ex.fold(events, "2.0", T0 + timedelta(minutes=31), _policy())
    assert state.status == ex.S_RETRYING
    assert state.retry_after == T0 + timedelta(minutes=40)  # deadline + 10 min


def test_a_timeout_while_installing_is_timed_out_and_not_retried() -> None:
    events = [ex.Event(ex.OFFERED, T0), ex.Event(ex.INSTALLING, T0 + timedelta(minutes=5))]
    state = ex.fold(events, "2.0", T0 + timedelta(minutes=31), _policy(retries=5))
    assert state.status == ex.TIMED_OUT


def test_a_timeout_beyond_the_retry_budget_is_timed_out() -> None:
    events = [ex.Event(ex.OFFERED, T0)]
    state = ex.fold(events, "2.0", T0 + timedelta(hours=1), _policy(retries=0))
    assert state.status == ex.TIMED_OUT


def test_each_attempt_gets_its_own_timeout() -> None:
    later = T0 + timedelta(hours=2)
    events = [ex.Event(ex.OFFERED, later)]
    state = ex.fold(events, "2.0", later + timedelta(minutes=29), _policy(), attempts=1)
    assert state.status == ex.S_OFFERED


def test_a_failed_install_is_never_retried() -> None:
    events = [
        ex.Event(ex.OFFERED, T0),
        ex.Event(ex.INSTALLING, T0 + timedelta(minutes=1)),
        ex.Event(ex.FAILURE_REPORTED, T0 + timedelta(minutes=2)),
    ]
    assert ex.fold(events, "2.0", T0 + timedelta(hours=1), _policy(retries=10)).status == ex.FAILED


@pytest.mark.parametrize(
    ("timing", "named"),
    [
        (CampaignTiming(timeout=timedelta(seconds=10)), "--timeout"),
        (CampaignTiming(timeout=timedelta(days=8)), "--timeout"),
        (CampaignTiming(retries=-1), "--retries"),
        (CampaignTiming(retries=11), "--retries"),
        (CampaignTiming(start_at=T0 - timedelta(hours=1)), "--start-at"),
        (CampaignTiming(end_at=T0 - timedelta(hours=1)), "--end-at"),
        (
            CampaignTiming(start_at=T0 + timedelta(hours=2), end_at=T0 + timedelta(hours=1)),
            "--end-at",
        ),
    ],
)
def test_bad_timing_is_named(timing: CampaignTiming, named: str) -> None:
    problems = timing_problems(timing, T0)
    assert problems and problems[0].startswith(named)


def test_timing_round_trips_through_its_stored_form() -> None:
    timing = CampaignTiming(timedelta(minutes=45), 3, T0, T0 + timedelta(days=1))
    assert timing_from(timing_json(timing)) == timing
    assert timing_from({}) == CampaignTiming()
    assert not timing_problems(timing, T0)
