"""The in-process fleet simulator (docs/simulator.md), on fleets small enough for the
suite; the full-size runs are recorded in BENCHMARKS.md by bench/fleet_simulator.py."""

from __future__ import annotations

import pytest

from patchgate.domain.errors import InvalidInput
from patchgate.sim.engine import Run, RunResult, simulate
from patchgate.sim.scenario import GROUPS_OF, Fault, Fleet, Scenario, device_id

ALL = ("patchgate", "hawkbit", "aws")


@pytest.fixture(scope="module")
def failing_boot() -> dict[str, RunResult]:
    scenario = Scenario(devices=5_000, fault=Fault.parse("boot:0.3"), power_loss=0.01, seed=3)
    return simulate(scenario, ALL)


def test_patchgate_halts_a_release_that_fails_to_boot_before_leaving_the_canary(
    failing_boot: dict[str, RunResult],
) -> None:
    ours = failing_boot["patchgate"]
    assert ours.halted
    assert ours.halted_at_stage in ("internal", "canary")
    assert not ours.false_halt


def test_patchgate_exposes_fewer_devices_and_halts_sooner_than_hawkbit_and_aws(
    failing_boot: dict[str, RunResult],
) -> None:
    ours = failing_boot["patchgate"]
    assert ours.minutes_to_halt is not None
    for name in ("hawkbit", "aws"):
        other = failing_boot[name]
        assert ours.exposed < other.exposed
        assert ours.to_json()["exposed_fraction"] < other.to_json()["exposed_fraction"]
        assert other.minutes_to_halt is None or ours.minutes_to_halt < other.minutes_to_halt


def test_no_strategy_bricks_a_device_and_every_halt_brings_the_exposed_back(
    failing_boot: dict[str, RunResult],
) -> None:
    for result in failing_boot.values():
        assert result.bricked == 0
        assert result.power_cuts > 0 or result.installed < 200
        if result.halted:
            assert result.exposed_on_known_good == result.exposed
            assert result.reverted == result.exposed


def test_a_plan_that_starts_with_the_canary_halts_inside_the_canary() -> None:
    scenario = Scenario(
        devices=2_000,
        fault=Fault.parse("boot:0.3"),
        power_loss=0.01,
        seed=1,
        stages="canary:2,10,50,100",
    )
    results = simulate(scenario, ALL)
    ours = results["patchgate"]
    assert ours.halted_at_stage == "canary"
    assert ours.exposed <= 40 + 5  # the canary's 2 %, and no one else
    assert ours.minutes_to_halt is not None
    aws = results["aws"].minutes_to_halt
    assert aws is not None and ours.minutes_to_halt < aws
    assert ours.exposed_on_known_good == ours.exposed and ours.bricked == 0


def test_hawkbit_thresholds_let_a_release_failing_on_thirty_percent_through(
    failing_boot: dict[str, RunResult],
) -> None:
    # hawkBit's error condition is 50 %: 30 % failures never pause the rollout.
    assert not failing_boot["hawkbit"].halted
    assert failing_boot["hawkbit"].exposed == 5_000


def test_a_fourfold_crash_rate_halts_in_the_canary_within_two_days() -> None:
    halted = 0
    for seed in range(1, 5):
        scenario = Scenario(
            devices=100_000,
            fault=Fault.parse("crash:0.02"),
            baseline_crash=0.005,
            seed=seed,
            stop_after_stage="canary",
            stop_hours=48,
        )
        result = simulate(scenario, ("patchgate",))["patchgate"]
        if result.halted and result.halted_at_stage == "canary":
            assert result.minutes_to_halt is not None and result.minutes_to_halt <= 48 * 60
            halted += 1
    assert halted == 4


def test_a_good_release_completes_every_stage_without_a_halt() -> None:
    scenario = Scenario(devices=3_000, seed=5, power_loss=0.02)
    result = simulate(scenario, ("patchgate",))["patchgate"]
    assert not result.halted and not result.false_halt
    assert result.completed
    assert result.exposed == 0
    assert result.bricked == 0
    assert result.patched_fraction_at_deadline > 0.99
    assert [s["name"] for s in result.stages] == ["internal", "canary", "10%", "50%", "100%"]


def test_a_critical_fix_reaches_ninety_five_percent_before_the_deadline_and_reports_offline() -> (
    None
):
    scenario = Scenario(devices=4_000, offline=0.1, seed=2)
    result = simulate(scenario, ("patchgate",))["patchgate"]
    assert result.patched_fraction_at_deadline >= 0.95
    assert result.minutes_to_95pct is not None and result.minutes_to_95pct < 72 * 60
    assert result.offline_at_deadline > 0
    assert len(result.unpatched_offline_ids) == result.unpatched_offline_at_deadline


def test_the_same_seed_replays_the_same_run() -> None:
    scenario = Scenario(devices=800, fault=Fault.parse("boot:0.2"), power_loss=0.05, seed=9)
    fleet = Fleet(scenario)
    first = simulate(scenario, ALL, fleet=fleet)
    second = simulate(scenario, ALL)
    for name in ALL:
        assert first[name].to_json() == second[name].to_json()


@pytest.mark.parametrize("strategy", ALL)
def test_each_device_is_in_the_stage_the_campaign_plan_gives_it(strategy: str) -> None:
    scenario = Scenario(devices=3_000, internal=40, optin=0.05, seed=5)
    fleet = Fleet(scenario)
    run = Run(scenario, fleet, strategy)
    for index in range(fleet.n):
        stage = run.plan.stage_of(device_id(index), GROUPS_OF[int(fleet.mask[index])])
        assert run.stage_of[index] == (-1 if stage is None else stage)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("none", Fault()), ("boot:0.3", Fault("boot", 0.3)), ("crash:2%", Fault("crash", 0.02))],
)
def test_faults_parse_as_the_interface_writes_them(text: str, expected: Fault) -> None:
    assert Fault.parse(text) == expected


@pytest.mark.parametrize("text", ["boot", "boot:1.5", "none:0.1", "melt:0.1", "crash:-1"])
def test_a_malformed_fault_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        Fault.parse(text)
