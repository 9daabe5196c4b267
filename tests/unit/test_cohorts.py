from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from patchgate.domain.cohorts import (
    BUCKETS,
    CANARY_OPTIN_GROUP,
    canary_cut,
    cohort_bucket,
    first_admitting_stage,
    group_cut,
    percent_cut,
    percent_cutoff,
)

device_ids = st.text(min_size=1, max_size=40)
salts = st.text(min_size=1, max_size=20)


@given(salts, device_ids)
def test_bucket_is_stable_and_in_range(salt: str, device_id: str) -> None:
    bucket = cohort_bucket(salt, device_id)
    assert 0 <= bucket < BUCKETS
    assert cohort_bucket(salt, device_id) == bucket


def test_bucket_does_not_depend_on_the_process() -> None:
    # Pinned values: a change of hash would reshuffle every running campaign.
    assert cohort_bucket("s", "dev-1") == 8619
    assert cohort_bucket("campaign-7", "gw-000042") == cohort_bucket("campaign-7", "gw-000042")


def test_salt_and_device_id_are_separated_so_shifting_a_character_changes_the_bucket() -> None:
    pairs = [("ab", "c"), ("a", "bc")]
    assert len({cohort_bucket(s, d) for s, d in pairs}) == 2


def test_bucket_shares_are_uniform_within_tolerance() -> None:
    n = 50_000
    counts = [0] * 10
    for i in range(n):
        counts[cohort_bucket("uniformity", f"device-{i}") // 1000] += 1
    expected = n / 10
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 27.88  # 9 degrees of freedom, p = 0.001


@settings(max_examples=50)
@given(salts, st.floats(min_value=0.01, max_value=100))
def test_a_percentage_stage_admits_about_its_share(salt: str, percent: float) -> None:
    n = 4000
    cut = percent_cut(percent)
    admitted = sum(cut.admits(cohort_bucket(salt, f"d{i}"), frozenset()) for i in range(n))
    p = percent_cutoff(percent) / BUCKETS
    sd = math.sqrt(n * p * (1 - p))
    assert abs(admitted - n * p) <= 5 * sd + 1


@given(
    st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=6),
    salts,
    device_ids,
)
def test_widening_never_removes_a_device(percents: list[float], salt: str, device: str) -> None:
    cuts = [group_cut(["internal", "qa"])] + [percent_cut(p) for p in sorted(percents)]
    bucket = cohort_bucket(salt, device)
    first = first_admitting_stage(cuts, bucket, frozenset())
    for k in range(len(cuts)):
        admitted_at_k = any(c.admits(bucket, frozenset()) for c in cuts[: k + 1])
        assert admitted_at_k == (first is not None and first <= k)
    # Percentage cut-offs only grow with the percentage.
    offs = [percent_cutoff(p) for p in sorted(percents)]
    assert offs == sorted(offs)


def test_group_stage_admits_members_of_any_of_its_groups() -> None:
    cut = group_cut(["internal", "qa"])
    assert cut.admits(9999, frozenset({"qa"}))
    assert not cut.admits(0, frozenset({"canary-optin"}))


def test_canary_draws_a_share_of_the_fleet_from_opt_in_devices_only() -> None:
    cut = canary_cut(2, fleet=10_000, optin=1000)
    # 2 % of 10,000 = 200 devices, out of 1,000 opt-in devices: a fifth of their buckets.
    assert cut.optin_cutoff == 2000 and cut.cutoff == 0 and cut.shortfall == 0
    optin = frozenset({CANARY_OPTIN_GROUP})
    assert cut.admits(1999, optin) and not cut.admits(2000, optin)
    assert not cut.admits(0, frozenset())


def test_canary_with_too_few_opt_ins_takes_them_all_and_reports_the_shortfall() -> None:
    cut = canary_cut(2, fleet=10_000, optin=50)
    assert cut.optin_cutoff == BUCKETS and cut.cutoff == 0
    assert cut.shortfall == 150


def test_canary_fills_from_other_devices_only_when_allowed() -> None:
    cut = canary_cut(2, fleet=10_000, optin=50, fill_from_others=True)
    assert cut.optin_cutoff == BUCKETS and cut.shortfall == 0
    assert cut.cutoff == math.ceil(BUCKETS * 150 / 9950)


@settings(max_examples=40)
@given(
    st.integers(min_value=1, max_value=3000),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0.5, max_value=20),
    st.booleans(),
)
def test_canary_size_meets_its_aim_in_expectation(
    fleet: int, optin_share: float, percent: float, fill: bool
) -> None:
    optin = round(fleet * optin_share)
    cut = canary_cut(percent, fleet=fleet, optin=optin, fill_from_others=fill)
    aim = math.ceil(percent / 100 * fleet - 1e-9)
    expected = optin * min(1.0, cut.optin_cutoff / BUCKETS) + (fleet - optin) * (
        cut.cutoff / BUCKETS
    )
    if optin >= aim or fill:
        assert expected >= aim - 1e-6
        assert expected <= aim + fleet / BUCKETS + 1  # ceiling of the cut-off at most
    else:
        assert cut.shortfall == aim - optin
