from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain.errors import PolicyInvalid
from patchgate.domain.policy import Month
from patchgate.domain.policy_parse import load_policy, locate_field
from patchgate.services.setup import default_policy_source, demo_policy_source

TODAY = date(2026, 11, 26)


def problems_of(source: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as info:
        load_policy(source, today=TODAY)
    return info.value.problems


def test_default_policy_has_the_guides_cadence() -> None:
    policy = load_policy(default_policy_source(), today=TODAY)
    hours = {sev: rule.deadline_hours for sev, rule in policy.cadence.items()}
    assert hours == {"critical": 72, "high": 28 * 24, "medium": 90 * 24, "low": 365 * 24}
    assert (policy.cadence["critical"].cvss_min, policy.cadence["critical"].cvss_max) == (9.0, 10.0)
    assert (policy.cadence["low"].cvss_min, policy.cadence["low"].cvss_max) == (0.1, 3.9)
    assert policy.exploited_severity == "critical"


def test_demo_policy_states_the_demo_products_end_of_support() -> None:
    policy = load_policy(demo_policy_source(), today=TODAY)
    product = policy.product("Demo Gateway")
    assert product is not None
    assert str(product.support_end) == "2031-12"
    assert product.support_end.last_day() == date(2031, 12, 31)


def test_policy_json_has_the_interface_fields() -> None:
    body = load_policy(demo_policy_source(), today=TODAY).to_json()
    assert body["organisation"] == "Example Devices Ltd"
    assert body["contact"] == "mailto:security@devices.example"
    assert body["products"][0]["support_start"] == "2026-01"
    assert set(body["cadence"]) == {"critical", "high", "medium", "low"}
    assert body["cadence"]["high"] == {
        "cvss_min": 7.0,
        "cvss_max": 8.9,
        "deadline_hours": 672,
        "label": "Urgent: next or accelerated update",
    }


def test_missing_severity_is_named_with_its_field() -> None:
    source = default_policy_source().replace("[cadence.medium]", "[cadence_removed]")
    problems = problems_of(source)
    assert any("cadence.medium: missing" in p for p in problems)


def test_unknown_field_is_named_with_its_line() -> None:
    source = default_policy_source().replace(
        'label = "Emergency, out of band"', 'label = "Emergency, out of band"\nspeed = "fast"'
    )
    line = next(i for i, ln in enumerate(source.splitlines(), 1) if ln.startswith("speed"))
    problems = problems_of(source)
    assert f"line {line}: cadence.critical.speed: unknown field" in " ".join(problems)


def test_short_support_period_without_reason_is_refused() -> None:
    source = default_policy_source() + (
        '\n[[products]]\nname = "Short"\nsupport_start = "2026-01"\nsupport_end = "2027-12"\n'
    )
    problems = problems_of(source)
    assert len(problems) == 1
    assert "products[0] (Short).support_end" in problems[0]
    assert "Art. 13(8)" in problems[0]
    assert problems[0].startswith("line ")


def test_short_support_period_with_a_stated_reason_is_accepted() -> None:
    source = default_policy_source() + (
        '\n[[products]]\nname = "Short"\nsupport_start = "2026-01"\nsupport_end = "2027-12"\n'
        'short_support_reason = "single-season event badge, expected use under two years"\n'
    )
    policy = load_policy(source, today=TODAY)
    assert policy.products[0].support_months() == 24


def test_end_of_support_in_the_past_for_a_product_on_sale_is_refused() -> None:
    source = default_policy_source() + (
        '\n[[products]]\nname = "Old"\nsupport_start = "2015-01"\nsupport_end = "2025-12"\n'
    )
    problems = problems_of(source)
    assert any("in the past but the product is still offered" in p for p in problems)
    # No longer on sale: a past end date is a fact, not a problem.
    load_policy(
        source.replace('support_end = "2025-12"\n', 'support_end = "2025-12"\non_sale = false\n'),
        today=TODAY,
    )


def test_every_problem_is_reported_at_once() -> None:
    source = default_policy_source().replace("[cadence.low]", "[cadence.lowest]") + (
        "\nbogus = 1\n"
    )
    problems = problems_of(source)
    assert len(problems) >= 3  # unknown severity, missing low, unknown top-level field


def test_toml_syntax_error_names_the_line() -> None:
    problems = problems_of('organisation = "x"\n[contact\n')
    assert problems == [p for p in problems if "line 2" in p]


def test_overlapping_bands_are_refused() -> None:
    source = default_policy_source().replace("cvss_max = 8.9", "cvss_max = 9.5")
    assert any("overlaps critical" in p for p in problems_of(source))


def test_locate_field_finds_keys_in_array_tables() -> None:
    source = "a = 1\n[[products]]\nname = 'x'\n[[products]]\nname = 'y'\nsupport_end = '2020-01'\n"
    assert locate_field(source, "products[1] (y).support_end") == 6
    assert locate_field(source, "products[0].missing") == 2
    assert locate_field(source, "a") == 1


@given(st.integers(1990, 2100), st.integers(1, 12))
def test_month_round_trips_and_its_last_day_is_in_the_month(year: int, month: int) -> None:
    parsed = Month.parse(f"{year:04d}-{month:02d}")
    assert (parsed.year, parsed.month) == (year, month)
    assert parsed.last_day().month == month
    assert parsed.last_day().replace(day=1) <= parsed.last_day()
