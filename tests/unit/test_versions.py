"""Version ordering and affected-version ranges (domain/versions.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain import versions
from patchgate.domain.errors import InvalidInput

semver = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-{pre}" if pre else ""),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.sampled_from(["", "rc.1", "rc.2", "alpha", "beta.3", "0"]),
)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0-alpha", "1.0.0-alpha.1"),  # SemVer 2.0.0 §11.4 examples, in order
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-alpha.beta", "1.0.0-beta"),
        ("1.0.0-beta", "1.0.0-beta.2"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-beta.11", "1.0.0-rc.1"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.9.0", "1.10.0"),
        ("0.0.0-0", "0"),
        ("2.8.11", "2.8.11.1"),
        ("v1.2.3", "1.2.4"),
        # Firmware spellings: a number inside a pre-release tag compares as a number.
        ("1.0-rc1", "1.0-rc2"),
        ("1.0-rc2", "1.0-rc10"),
        ("1.0-rc10", "1.0"),
        ("1.0", "1.0.1"),
        ("1.0.1", "1.2"),
        ("1.2", "1.10"),
        ("1.10", "2.0"),
    ],
)
def test_versions_sort_in_semver_precedence(lower: str, higher: str) -> None:
    assert versions.compare(lower, higher) == -1
    assert versions.compare(higher, lower) == 1


def test_trailing_zeros_and_build_metadata_do_not_change_a_version() -> None:
    assert versions.compare("1.2", "1.2.0") == 0
    assert versions.compare("1.2.0+build.7", "1.2.0") == 0


@pytest.mark.parametrize("text", ["unspecified", "n/a", "log4j-core*", "6.1.*", "4.x", "", "a b"])
def test_placeholders_are_not_versions(text: str) -> None:
    assert not versions.is_version(text)
    with pytest.raises(InvalidInput):
        versions.version_key(text)


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        # VERS reads "=" constraints apart from the intervals, so the CycloneDX 1.5 sample's
        # "2.7.0|<2.8.11.1" means "2.7.0, or anything below 2.8.11.1".
        ("vers:semver/2.7.0|<2.8.11.1", ["2.6.9", "2.7.0", "2.8.11"], ["2.8.11.1", "3"]),
        ("vers:semver/>=1.0.0|<1.2.3", ["1.0.0", "1.2.2"], ["0.9", "1.2.3"]),
        (">= 2.0.0, < 2.0.7", ["2.0.0", "2.0.6"], ["1.9", "2.0.7"]),
        ("< 1.26.18", ["1.0", "1.26.17"], ["1.26.18", "2.0"]),
        ("1.2.3", ["1.2.3"], ["1.2.4", "1.2.2"]),
        ("vers:semver/*", ["0.1", "99"], []),
        ("vers:semver/<1.0|>=2.0|<3.0", ["0.5", "2.5"], ["1.5", "3.0"]),
        ("<1.0 || >=2.0 <3.0", ["0.5", "2.5"], ["1.5", "3.0"]),
        (">1.0,<=1.5", ["1.0.1", "1.5"], ["1.0", "1.5.1"]),
        (">=1.2, <2.0", ["1.2", "1.10"], ["2.0"]),
        ("1.4", ["1.4"], ["1.4.1"]),
    ],
)
def test_ranges_contain_exactly_their_versions(
    spec: str, inside: list[str], outside: list[str]
) -> None:
    rng = versions.parse_range(spec)
    assert all(rng.contains(v) for v in inside)
    assert not any(rng.contains(v) for v in outside)


@pytest.mark.parametrize(
    "bad", ["", "vers:semver", ">=banana", "!=1.0", "<unspecified", ">=2.0,<1.0", "1.0 ||"]
)
def test_unreadable_ranges_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        versions.parse_range(bad)


def test_an_unreadable_bound_is_named_as_not_a_version() -> None:
    with pytest.raises(InvalidInput, match="not a version"):
        versions.parse_range(">>1")


def test_an_unknown_device_version_is_not_counted_as_affected() -> None:
    rng = versions.parse_range("vers:semver/*")
    assert not rng.contains(None)
    assert not rng.contains("unknown")


def test_cve5_less_than_and_less_than_or_equal_become_intervals() -> None:
    rng, notes = versions.from_cve5_versions(
        [
            {"version": "18.0", "lessThan": "18.0.1", "status": "affected"},
            {"version": "0", "lessThanOrEqual": "7.3", "status": "affected"},
            {"version": "9.9", "status": "unaffected"},
        ]
    )
    assert rng is not None and notes == []
    assert rng.contains("18.0") and not rng.contains("18.0.1")
    assert rng.contains("1.0") and rng.contains("7.3") and not rng.contains("7.4")
    assert not rng.contains("9.9")


def test_cve5_commits_and_placeholders_are_skipped_with_a_note() -> None:
    rng, notes = versions.from_cve5_versions(
        [
            {
                "version": "63a07379",
                "lessThan": "de045646",
                "status": "affected",
                "versionType": "git",
            },
            {"version": "unspecified", "lessThan": "unspecified", "status": "affected"},
        ],
        default_status="affected",
    )
    assert rng is None
    assert len(notes) == 3


def test_osv_events_follow_the_osv_evaluation_rules() -> None:
    # GO-2023-2102's stdlib range: two introduced/fixed pairs.
    rng = versions.from_osv_events(
        [{"introduced": "0"}, {"fixed": "1.20.10"}, {"introduced": "1.21.0-0"}, {"fixed": "1.21.3"}]
    )
    assert rng.contains("1.20.9") and not rng.contains("1.20.10")
    assert rng.contains("1.21.0") and rng.contains("1.21.2") and not rng.contains("1.21.3")
    last = versions.from_osv_events([{"introduced": "1.0"}, {"last_affected": "1.4"}])
    assert last.contains("1.4") and not last.contains("1.4.1")
    with pytest.raises(InvalidInput):
        versions.from_osv_events([{"introduced": "0"}], range_type="GIT")
    with pytest.raises(InvalidInput):
        versions.from_osv_events([{"bogus": "1"}])


@given(semver, semver)
def test_ordering_is_antisymmetric(a: str, b: str) -> None:
    assert versions.compare(a, b) == -versions.compare(b, a)


@given(semver, semver, semver)
def test_ordering_is_transitive(a: str, b: str, c: str) -> None:
    if versions.compare(a, b) <= 0 and versions.compare(b, c) <= 0:
        assert versions.compare(a, c) <= 0


@given(semver, semver, semver)
def test_a_half_open_interval_holds_exactly_the_versions_between_its_bounds(
    low: str, high: str, probe: str
) -> None:
    if versions.compare(low, high) >= 0:
        with pytest.raises(InvalidInput):
            versions.parse_range(f">={low},<{high}")
        return
    rng = versions.parse_range(f">={low},<{high}")
    expected = versions.compare(low, probe) <= 0 < versions.compare(high, probe)
    assert rng.contains(probe) == expected


@given(st.lists(st.tuples(semver, semver), min_size=1, max_size=4), semver)
def test_a_range_written_as_vers_and_read_back_contains_the_same_versions(
    pairs: list[tuple[str, str]], probe: str
) -> None:
    intervals = []
    for a, b in pairs:
        lo, hi = sorted((a, b), key=versions.version_key)
        intervals.append(versions.Interval(versions.Bound(lo, True), versions.Bound(hi, False)))
    # vers cannot hold overlapping intervals, so keep the ones that do not overlap.
    kept: list[versions.Interval] = []
    for interval in sorted(intervals, key=lambda i: versions.version_key(i.lower.version)):  # type: ignore[union-attr]
        if not kept or versions.compare(kept[-1].upper.version, interval.lower.version) <= 0:  # type: ignore[union-attr]
            kept.append(interval)
    rng = versions.VersionRange(tuple(kept))
    again = versions.parse_range(rng.to_vers())
    assert again.contains(probe) == rng.contains(probe)


def test_overlapping_intervals_are_merged_when_written_as_vers() -> None:
    # CVE-2025-4565 lists three lessThan ranges that all start at "0": literally, one range.
    rng, _ = versions.from_cve5_versions(
        [
            {"version": "0", "lessThan": "4.25.8", "status": "affected"},
            {"version": "0", "lessThan": "5.29.5", "status": "affected"},
            {"version": "0", "lessThan": "6.31.1", "status": "affected"},
        ]
    )
    assert rng is not None and rng.to_vers() == "vers:semver/<6.31.1"
    inner = versions.parse_range("vers:semver/2.7.0|<2.8.11.1")
    assert inner.to_vers() == "vers:semver/<2.8.11.1"
    touching = versions.parse_range(">=1.0,<2.0 || >=2.0,<3.0")
    assert touching.to_vers() == "vers:semver/>=1.0|<3.0"
