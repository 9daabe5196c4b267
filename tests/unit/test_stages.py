from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain.errors import InvalidInput
from patchgate.domain.stages import (
    DEFAULT_SPEC,
    default_stages,
    format_stages,
    min_soak,
    parse_stages,
)

GROUPS = {"internal", "qa", "beta"}


def problems(spec: str, groups: set[str] = GROUPS) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_stages(spec, groups)
    return info.value.problems


def test_default_plan_is_the_guides() -> None:
    stages = default_stages(GROUPS)
    assert [s.name for s in stages] == ["internal", "canary", "10%", "50%", "100%"]
    assert stages[0].groups == ("internal", "qa")
    assert stages[1].canary and stages[1].percent == 2
    assert [s.kind for s in stages] == ["groups", "canary", "percent", "percent", "percent"]
    assert [s.gates.min_soak for s in stages] == [timedelta(hours=h) for h in (1, 24, 12, 6, 24)]
    assert stages[0].gates.min_finished == 1 and stages[1].gates.min_finished == 10
    assert format_stages(stages) == DEFAULT_SPEC


def test_default_plan_leaves_out_missing_internal_groups() -> None:
    assert default_stages({"internal"})[0].groups == ("internal",)
    assert [s.name for s in default_stages(set())] == ["canary", "10%", "50%", "100%"]


def test_interface_spec_parses_bare_words_as_groups_and_numbers_as_percentages() -> None:
    stages = parse_stages("internal,canary:2,10,50,100", GROUPS)
    assert stages[0].name == "internal" and stages[0].groups == ("internal",)
    assert [s.percent for s in stages[1:]] == [2, 10, 50, 100]
    assert stages[2].name == "10%" and not stages[2].canary


def test_named_percentages_and_group_unions() -> None:
    stages = parse_stages("lab=internal+qa,beta,early:5%,25.5,100", GROUPS)
    assert stages[0].name == "lab" and stages[0].groups == ("internal", "qa")
    assert stages[2].name == "early" and stages[2].percent == 5
    assert stages[3].name == "25.5%"
    assert format_stages(stages) == "lab=internal+qa,beta,early:5,25.5,100"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("10,5,100", "does not increase"),
        ("10,10", "does not increase"),
        ("canary:2,150", "over 100"),
        ("0,100", "outside 0–100"),
        ("internal,nobody,100", "unknown group 'nobody'"),
        ("qa+ghost", "unknown group 'ghost'"),
        ("", "at least one stage"),
        ("10,,100", "is empty"),
        ("1.005,100", "finer than the 0.01"),
        ("early:lots", "not a percentage"),
        ("a:5,a:10", "used twice"),
    ],
)
def test_bad_stage_specs_are_refused_naming_the_rule(spec: str, message: str) -> None:
    assert any(message in p for p in problems(spec)), problems(spec)


def test_every_problem_is_reported_at_once() -> None:
    found = problems("nobody,50,20,200")
    assert len(found) == 3


def test_canary_opt_in_group_need_not_exist() -> None:
    assert parse_stages("canary-optin,100", set())[0].groups == ("canary-optin",)


def test_overrides_apply_to_every_stage_and_unknown_ones_are_refused() -> None:
    stages = parse_stages(
        "internal,10,100",
        GROUPS,
        overrides={"max_failure_rate": 0.02, "min_soak": timedelta(hours=2), "manual": True},
    )
    assert all(s.gates.max_failure_rate == 0.02 for s in stages)
    assert all(s.gates.min_soak == timedelta(hours=2) and s.gates.manual for s in stages)
    with pytest.raises(InvalidInput, match="unknown setting speed"):
        parse_stages("10,100", GROUPS, overrides={"speed": 3})


def test_soak_floors_by_kind() -> None:
    stages = default_stages(GROUPS)
    assert min_soak(stages[1], last=False) == timedelta(hours=4)
    assert min_soak(stages[4], last=True) == timedelta(0)


@given(st.lists(st.integers(1, 10000), min_size=1, max_size=8, unique=True))
def test_increasing_percentages_always_parse_and_round_trip(values: list[int]) -> None:
    percents = [v / 100 for v in sorted(values)]
    spec = ",".join(f"{p:g}" for p in percents)
    stages = parse_stages(spec, set())
    assert [s.percent for s in stages] == percents
    assert parse_stages(format_stages(stages), set()) == stages
