from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain import executions as ex
from patchgate.domain.executions import Event, ExecutionPolicy, fold, settle, step, tally

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NEW_VERSION = "2.0"
POLICY = ExecutionPolicy(
    confirmation_window=timedelta(hours=1),
    action_timeout=timedelta(hours=6),
    max_retries=2,
    retry_backoff=timedelta(minutes=5),
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(*events: Event, now_minutes: float = 30) -> ex.Execution:
    return fold(events, NEW_VERSION, at(now_minutes), POLICY)


def through_install() -> list[Event]:
    return [
        Event(ex.OFFERED, at(0)),
        Event(ex.DOWNLOADING, at(1)),
        Event(ex.DOWNLOADED, at(5)),
        Event(ex.INSTALLING, at(6)),
    ]


def test_installing_is_not_success() -> None:
    assert run(*through_install()).status == ex.S_INSTALLING


def test_a_success_report_made_after_a_healthy_reboot_is_success() -> None:
    state = run(*through_install(), Event(ex.SUCCESS_REPORTED, at(12), confirmed=True))
    assert state.status == ex.SUCCEEDED and state.finished_at == at(12)


def test_a_success_report_before_reboot_waits_for_the_device_to_come_back() -> None:
    events = [*through_install(), Event(ex.SUCCESS_REPORTED, at(10))]
    assert run(*events).status == ex.S_CONFIRMING
    confirmed = [*events, Event(ex.SEEN_WITH_VERSION, at(40), version=NEW_VERSION)]
    assert run(*confirmed, now_minutes=50).status == ex.SUCCEEDED


def test_a_device_that_does_not_come_back_within_the_confirmation_window_timed_out() -> None:
    events = [*through_install(), Event(ex.SUCCESS_REPORTED, at(10))]
    assert run(*events, now_minutes=69).status == ex.S_CONFIRMING
    state = run(*events, now_minutes=70)
    assert state.status == ex.TIMED_OUT and state.finished_at == at(70)
    # Coming back later does not revive it: the outcome was fixed when the window closed.
    late = [*events, Event(ex.SEEN_WITH_VERSION, at(90), version=NEW_VERSION)]
    assert run(*late, now_minutes=95).status == ex.TIMED_OUT


def test_health_telemetry_from_the_new_version_confirms_success() -> None:
    events = [*through_install(), Event(ex.HEALTH, at(20), version=NEW_VERSION)]
    assert run(*events).status == ex.SUCCEEDED


def test_a_device_back_on_its_old_version_reverted() -> None:
    events = [*through_install(), Event(ex.SEEN_WITH_VERSION, at(20), version="1.0")]
    assert run(*events).status == ex.REVERTED
    reported = [*through_install(), Event(ex.REVERTED_EVENT, at(20))]
    assert run(*reported).status == ex.REVERTED


def test_a_succeeded_device_later_seen_on_another_version_counts_as_reverted() -> None:
    events = [
        *through_install(),
        Event(ex.SUCCESS_REPORTED, at(12), confirmed=True),
        Event(ex.SEEN_WITH_VERSION, at(300), version="1.0"),
    ]
    assert run(*events, now_minutes=301).status == ex.REVERTED


def test_a_quiet_device_times_out_after_the_action_timeout() -> None:
    events = through_install()
    assert run(*events, now_minutes=6 + 359).status == ex.S_INSTALLING
    assert run(*events, now_minutes=6 + 360).status == ex.TIMED_OUT


def test_transient_failures_are_retried_with_backoff_then_fail() -> None:
    first = [Event(ex.OFFERED, at(0)), Event(ex.FAILURE_REPORTED, at(1), transient=True)]
    state = run(*first)
    assert state.status == ex.S_RETRYING and state.attempts == 1
    assert state.retry_after == at(6)
    second = [*first, Event(ex.OFFERED, at(10)), Event(ex.FAILURE_REPORTED, at(11), transient=True)]
    state = run(*second)
    assert state.status == ex.S_RETRYING and state.attempts == 2 and state.retry_after == at(21)
    third = [*second, Event(ex.OFFERED, at(30)), Event(ex.FAILURE_REPORTED, at(31), transient=True)]
    assert run(*third, now_minutes=40).status == ex.FAILED


def test_a_permanent_failure_fails_at_once() -> None:
    events = [*through_install(), Event(ex.FAILURE_REPORTED, at(9))]
    assert run(*events).status == ex.FAILED


def test_cancelled_is_terminal_and_later_events_are_ignored() -> None:
    events = [
        Event(ex.OFFERED, at(0)),
        Event(ex.CANCELLED_EVENT, at(1)),
        Event(ex.INSTALLING, at(2)),
    ]
    state = run(*events)
    assert state.status == ex.CANCELLED and state.status in ex.TERMINAL and not state.is_open


def test_unknown_event_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        step(ex.NEW, Event("exploded", T0), NEW_VERSION)


def test_settle_leaves_terminal_executions_alone() -> None:
    done = run(*through_install(), Event(ex.FAILURE_REPORTED, at(9)))
    assert settle(done, at(10_000), POLICY) is done


events_strategy = st.lists(
    st.builds(
        Event,
        kind=st.sampled_from(sorted(ex.EVENT_KINDS)),
        at=st.integers(0, 600).map(at),
        version=st.sampled_from([None, NEW_VERSION, "1.0"]),
        confirmed=st.booleans(),
        transient=st.booleans(),
    ),
    max_size=12,
).map(lambda evs: sorted(evs, key=lambda e: e.at))


@given(events_strategy)
def test_folding_is_deterministic_and_terminal_outcomes_stick(events: list[Event]) -> None:
    state = fold(events, NEW_VERSION, at(700), POLICY)
    assert state == fold(events, NEW_VERSION, at(700), POLICY)
    assert state.status in ex.TERMINAL | ex.OPEN | {ex.NONE}
    # Once terminal (other than succeeded, which may still be found reverted), no later
    # evidence changes the outcome.
    if state.status in ex.TERMINAL - {ex.SUCCEEDED}:
        more = [*events, Event(ex.SUCCESS_REPORTED, at(701), confirmed=True)]
        assert fold(more, NEW_VERSION, at(702), POLICY).status == state.status


@given(events_strategy)
def test_success_always_has_evidence_of_the_new_version_booting(events: list[Event]) -> None:
    state = fold(events, NEW_VERSION, at(700), POLICY)
    if state.status == ex.SUCCEEDED:
        assert any(
            (e.kind == ex.SUCCESS_REPORTED and e.confirmed)
            or (e.kind in (ex.HEALTH, ex.SEEN_WITH_VERSION) and e.version == NEW_VERSION)
            for e in events
        )


@given(st.lists(st.sampled_from([*sorted(ex.TERMINAL | ex.OPEN)]), max_size=40))
def test_incremental_counts_match_a_full_tally(moves: list[str]) -> None:
    counts = tally([], eligible=40)
    current = ex.NONE
    for new in moves:
        counts = counts.moved(current, new)
        current = new
    assert counts == tally([current], eligible=40)


def test_counts_json_has_the_interface_fields() -> None:
    counts = tally([ex.SUCCEEDED, ex.SUCCEEDED, ex.FAILED, ex.S_OFFERED], eligible=10)
    body = counts.to_json()
    for name in (
        "eligible",
        "offered",
        "downloading",
        "installing",
        "succeeded",
        "failed",
        "reverted",
        "timed_out",
        "cancelled",
    ):
        assert name in body
    assert body["succeeded"] == 2 and counts.finished == 3 and counts.open == 1
    assert counts.plus(counts).succeeded == 4


def test_stage_tallies_count_each_device_in_its_own_stage() -> None:
    pairs = [(0, ex.SUCCEEDED), (1, ex.FAILED), (1, ex.SUCCEEDED), (1, ex.NONE), (2, ex.S_OFFERED)]
    stages = ex.tally_stages(pairs, [5, 20, 100])
    assert [s.finished for s in stages] == [1, 2, 0]
    assert stages[1].failed == 1 and stages[2].offered == 1 and stages[2].eligible == 100
    total = stages[0].plus(stages[1]).plus(stages[2])
    assert total == ex.tally([status for _, status in pairs], eligible=125)


def test_health_tally_sums_crashes_and_exposure() -> None:
    tally_ = ex.NO_HEALTH.add(Event(ex.HEALTH, T0, crashes=2, exposure_hours=24))
    tally_ = tally_.add(Event(ex.HEALTH, T0, crashes=0, exposure_hours=24))
    assert tally_.crashes == 2 and tally_.rate_per_day == pytest.approx(1.0)
    assert ex.NO_HEALTH.rate_per_day is None
