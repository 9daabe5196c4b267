from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain.durations import format_duration, parse_duration
from patchgate.domain.errors import InvalidInput
from patchgate.domain.ratelimit import FULL, RateLimit
from patchgate.domain.windows import CronSchedule, MaintenanceWindow

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("0", timedelta(0)),
        ("PT6H", timedelta(hours=6)),
        ("P1DT2H", timedelta(hours=26)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations_parse_in_both_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1y", "soon", "h", "P1M", "PT", "-1h"])
def test_bad_durations_are_refused_with_the_field_named(text: str) -> None:
    with pytest.raises(InvalidInput, match="soak"):
        parse_duration(text, what="soak")


@given(st.integers(min_value=0, max_value=10**7))
def test_formatted_durations_parse_back(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_cron_fields_take_lists_ranges_steps_and_names() -> None:
    cron = CronSchedule.parse("*/15 1-3,22 * jan-mar mon-fri")
    assert cron.minutes == (0, 15, 30, 45)
    assert cron.hours == (1, 2, 3, 22)
    assert cron.months == frozenset({1, 2, 3})
    assert cron.weekdays == frozenset({1, 2, 3, 4, 5})
    assert CronSchedule.parse("0 0 * * 7").weekdays == frozenset({0})


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 2 * *", "5"),
        ("60 2 * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 0 * *", "day of month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day of week"),
        ("5-1 0 * * *", "backwards"),
        ("*/0 0 * * *", "step"),
    ],
)
def test_bad_cron_expressions_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        CronSchedule.parse(expr)


def test_cron_day_fields_match_either_when_both_are_restricted() -> None:
    cron = CronSchedule.parse("0 0 1 * mon")
    assert cron.matches_day(datetime(2026, 12, 1).date())  # a Tuesday, the 1st
    assert cron.matches_day(datetime(2026, 11, 30).date())  # a Monday
    assert not cron.matches_day(datetime(2026, 12, 2).date())


def test_window_is_open_from_its_start_for_its_duration_in_its_zone() -> None:
    w = MaintenanceWindow.parse("0 2 * * *,3h,Europe/Berlin")  # 01:00–04:00 UTC in winter
    assert not w.is_open(T0 + timedelta(minutes=59, seconds=59))
    assert w.is_open(T0 + timedelta(hours=1))
    assert w.is_open(T0 + timedelta(hours=3, minutes=59, seconds=59))
    assert not w.is_open(T0 + timedelta(hours=4))
    # Closed until the next day's start; the latest start is the one the poll stamps.
    assert w.latest_start(T0 + timedelta(hours=5)) == T0 + timedelta(hours=1)
    assert w.latest_start(T0 + timedelta(hours=2)) == T0 + timedelta(hours=1)
    assert not w.is_open(T0 + timedelta(days=1, minutes=59, seconds=59))
    assert w.is_open(T0 + timedelta(days=1, hours=1))
    assert w.latest_start(T0 + timedelta(days=1, hours=1)) == T0 + timedelta(days=1, hours=1)


def test_window_follows_daylight_saving_time() -> None:
    w = MaintenanceWindow.parse("0 2 * * *,1h,Europe/Berlin")
    summer = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert w.is_open(summer)
    assert not w.is_open(summer + timedelta(hours=1))


def test_a_start_in_the_spring_forward_gap_opens_at_the_offset_before_the_gap() -> None:
    w = MaintenanceWindow.parse("30 2 * * *,1h,Europe/Berlin")
    gap_day = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 CET does not exist that night
    assert w.is_open(gap_day) and not w.is_open(gap_day - timedelta(minutes=1))
    assert not w.is_open(gap_day + timedelta(hours=1))


def test_window_longer_than_a_day_spans_midnight_and_days() -> None:
    w = MaintenanceWindow.parse("0 22 * * sat,30h,UTC")
    saturday = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    assert w.is_open(saturday + timedelta(hours=29))
    assert not w.is_open(saturday + timedelta(hours=30))
    assert not w.is_open(saturday - timedelta(minutes=1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 2 * * *,3h", "CRON,DURATION,TZ"),
        ("0 2 * * *,3h,Mars/Olympus", "zone"),
        ("0 2 * * *,0,UTC", "longer than zero"),
        ("0 2 * *,3h,UTC", "5"),
    ],
)
def test_bad_windows_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        MaintenanceWindow.parse(text)


@given(st.integers(min_value=0, max_value=60 * 24 * 14))
def test_window_agrees_with_a_minute_by_minute_reading(minute: int) -> None:
    w = MaintenanceWindow.parse("30 */6 * * 1-5,90m,America/New_York")
    now = T0 + timedelta(minutes=minute)
    zone_now = now.astimezone(ZoneInfo("America/New_York"))
    expected = False
    for back in range(90):
        t = (zone_now - timedelta(minutes=back)).replace(second=0, microsecond=0)
        if t.minute == 30 and t.hour % 6 == 0 and t.isoweekday() <= 5:
            expected = True
            break
    assert w.is_open(now) == expected


def test_rate_limit_allows_a_burst_then_the_rate() -> None:
    limit = RateLimit.parse("2/min")
    state = FULL
    taken = []
    for second in range(0, 120, 10):
        now = T0 + timedelta(seconds=second)
        after = state.take(limit, now)
        if after is not None:
            state = after
            taken.append(second)
    # A burst of two (the second helped by 10 s of refill), then one every 30 s.
    assert taken == [0, 10, 30, 60, 90]


@given(st.lists(st.integers(min_value=0, max_value=600), max_size=200), st.integers(1, 120))
def test_rate_limit_never_exceeds_burst_plus_rate(seconds: list[int], per_minute: int) -> None:
    limit = RateLimit.per_min(per_minute)
    state = FULL
    taken = 0
    for s in sorted(seconds):
        after = state.take(limit, T0 + timedelta(seconds=s))
        if after is not None:
            state, taken = after, taken + 1
    horizon = max(seconds, default=0)
    assert taken <= limit.burst + per_minute * horizon / 60 + 1e-9


@pytest.mark.parametrize(("text", "per_minute"), [("100/min", 100), ("60/h", 1), ("2/s", 120)])
def test_rates_parse(text: str, per_minute: float) -> None:
    assert RateLimit.parse(text).per_minute == per_minute


@pytest.mark.parametrize("text", ["fast", "0/min", "-3/min"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="rate"):
        RateLimit.parse(text)
