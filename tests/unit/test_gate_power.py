"""What a stage's gates can see (domain/gate_power.py): the failure-rate gate's power,
checked against a Monte-Carlo run of the gate itself, and the advice a small canary gets at
``campaign create`` and in the simulator's plan."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from patchgate.domain import executions as ex
from patchgate.domain.gate_power import failure_power, power_warnings, stage_power
from patchgate.domain.gates import HALT, StageFigures, evaluate_gate
from patchgate.domain.planning import stage_sizes
from patchgate.domain.stages import default_stages
from patchgate.sim.engine import simulate
from patchgate.sim.scenario import Scenario

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _canary(fleet: int) -> tuple[object, int]:
    stages = default_stages(("internal", "qa"))
    sizes = stage_sizes(stages, fleet=fleet, group_sizes={"internal": 20, "qa": 20})
    return stages, sizes


@pytest.mark.parametrize(("devices", "rate"), [(20, 0.10), (20, 0.05), (60, 0.10), (200, 0.10)])
def test_the_power_is_what_the_gate_itself_does(devices: int, rate: float) -> None:
    """The exact figure against the gate run device by device on random outcomes."""
    stage = default_stages(("internal", "qa"))[1]
    gates = stage.gates
    rng = random.Random(devices)
    runs, halts = 3000, 0
    need = max(min(gates.min_finished, devices), -(-devices * gates.min_finished_fraction // 1))
    for _ in range(runs):
        failed = 0
        for finished in range(1, int(need) + 1):
            failed += rng.random() < rate
            counts = ex.Counts(eligible=devices, succeeded=finished - failed, failed=failed)
            figures = StageFigures(counts, T0, updated=ex.NO_HEALTH, baseline=ex.NO_HEALTH)
            verdict = evaluate_gate(gates, figures, T0 + timedelta(days=30)).verdict
            if verdict == HALT:
                halts += 1
                break
    exact = failure_power(gates, devices, rate)
    assert abs(halts / runs - exact) < 0.03


def test_a_thousand_device_fleet_is_told_its_canary_is_too_small() -> None:
    stages, sizes = _canary(1000)
    assert sizes[1] == 20
    (advice,) = power_warnings(stages, sizes)  # type: ignore[arg-type]
    assert "stage canary holds 20 devices" in advice
    assert "probability 65%" in advice and "devices give 80%" in advice
    assert "longer soak or a larger stage" in advice
    power = stage_power(stages[1], 20, fleet=1000)  # type: ignore[index]
    assert power.weak and power.failure_power < 0.8


def test_a_large_fleet_gets_no_advice() -> None:
    stages, sizes = _canary(100_000)
    assert power_warnings(stages, sizes) == []  # type: ignore[arg-type]


def test_the_simulator_plan_says_so_too() -> None:
    result = simulate(Scenario(devices=1000, stop_hours=1), ("patchgate",))["patchgate"]
    assert any("stage canary holds 20 devices" in w for w in result.settings["plan_warnings"])
    large = simulate(Scenario(devices=100_000, stop_hours=0.1), ("patchgate",))["patchgate"]
    assert not any("holds" in w for w in large.settings["plan_warnings"])
