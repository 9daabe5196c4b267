"""The 95 % rule over recorded fix runs (``services.vulnerabilities.reach``): which runs count
as running the fix, and which run's time is the moment 95 % was reached."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain import versions
from patchgate.services.vulnerabilities.facts import reach
from patchgate.services.vulnerability_ports import FixRun

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BELOW_2 = versions.parse_range("<2.0.0")
FIX = 7


def run(device: int, hours: int, *, release: int = FIX, version: str = "2.0.0") -> FixRun:
    return FixRun(device, version, release, version, T0 + timedelta(hours=hours))


def test_a_later_unaffected_release_of_the_product_counts_as_running_the_fix() -> None:
    got = reach(0, [run(1, 5, release=9, version="2.1.0")], {FIX}, BELOW_2, "2.0.0")
    assert (got.affected, got.ran_fix, got.reached_at) == (1, 1, T0 + timedelta(hours=5))


def test_a_release_older_than_the_fix_or_inside_the_range_does_not_count() -> None:
    older = FixRun(1, "1.9.0", 3, "1.9.0", T0)
    got = reach(1, [older], {FIX}, BELOW_2, "2.0.0")
    assert (got.affected, got.ran_fix, got.reached_at) == (1, 0, None)
    unranged = versions.parse_range(">=1.0.0")  # affected from 1.0.0 on, fix 2.0.0 listed
    got = reach(0, [run(1, 1, release=9, version="3.0.0")], {FIX}, unranged, "2.0.0")
    assert got.ran_fix == 0


def test_a_device_that_went_back_to_an_affected_version_is_exposed_not_fixed() -> None:
    reverted = FixRun(1, "1.0.0", FIX, "2.0.0", T0)
    got = reach(1, [reverted, run(2, 3)], {FIX}, BELOW_2, "2.0.0")
    assert (got.affected, got.ran_fix) == (2, 1)


def test_each_device_counts_once_at_its_first_run() -> None:
    got = reach(0, [run(1, 9, release=9, version="2.1.0"), run(1, 4)], {FIX}, BELOW_2, "2.0.0")
    assert (got.affected, got.ran_fix, got.reached_at) == (1, 1, T0 + timedelta(hours=4))


@given(
    exposed=st.integers(min_value=0, max_value=40),
    hours=st.lists(st.integers(min_value=0, max_value=1000), max_size=60),
)
def test_the_moment_is_the_time_of_the_run_that_makes_95_percent(
    exposed: int, hours: list[int]
) -> None:
    runs = [run(i, h) for i, h in enumerate(hours)]
    got = reach(exposed, runs, {FIX}, BELOW_2, "2.0.0")
    total = exposed + len(hours)
    assert got.affected == total and got.ran_fix == len(hours)
    needed = math.ceil(0.95 * total - 1e-9)
    if total == 0 or len(hours) < needed:
        assert got.reached_at is None
    else:
        assert got.reached_at == T0 + timedelta(hours=sorted(hours)[needed - 1])
        ran_by_then = sum(1 for h in hours if T0 + timedelta(hours=h) <= got.reached_at)
        assert ran_by_then >= 0.95 * total
