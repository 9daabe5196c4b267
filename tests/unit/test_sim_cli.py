"""``patchgate simulate``: the docs/contract.md flags and JSON shapes, the plot, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli

FIELDS = {
    "strategy",
    "devices",
    "exposed",
    "exposed_fraction",
    "bricked",
    "reverted",
    "halted",
    "halted_at_stage",
    "minutes_to_halt",
    "patched_fraction_at_deadline",
    "minutes_to_95pct",
    "false_halt",
    "settings",
}


def test_simulate_json_of_one_strategy_has_the_interface_fields() -> None:
    result = run_cli(["simulate", "--devices", "300", "--json"], {})
    assert result.code == 0, result.stderr
    data = result.json()
    assert set(data) >= FIELDS
    assert data["strategy"] == "patchgate" and data["devices"] == 300
    assert data["bricked"] == 0 and data["false_halt"] is False
    assert data["settings"]["stages"][0]["max_failure_rate"] == 0.05


def test_simulate_all_strategies_reports_each_with_its_settings() -> None:
    args = ["simulate", "--devices", "400", "--fault", "boot:0.3", "--power-loss", "0.01"]
    result = run_cli([*args, "--strategy", "all", "--seed", "4", "--json"], {})
    assert result.code == 0, result.stderr
    strategies = result.json()["strategies"]
    assert set(strategies) == {"patchgate", "hawkbit", "aws"}
    for name, data in strategies.items():
        assert set(data) >= FIELDS
        assert data["strategy"] == name
    assert strategies["hawkbit"]["settings"]["error_action"] == "PAUSE"
    assert strategies["aws"]["settings"]["abortConfig"]["criteriaList"][0]["thresholdPercentage"]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_simulate_draws_the_fleet_over_time(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"fleet{suffix}"
    args = ["simulate", "--devices", "300", "--fault", "boot:0.3", "--strategy", "all"]
    result = run_cli([*args, "--plot", str(target)], {})
    assert result.code == 0, result.stderr
    assert "exposed" in result.stdout
    head = target.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in target.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "melt:1"], "fault"),
        (["--strategy", "mender"], "strategy"),
        (["--mode", "carrier-pigeon"], "mode"),
        (["--offline", "1.5"], "offline"),
        (["--plot", "fleet.gif"], "plot"),
        (["--stages", "10,5"], "does not increase"),
    ],
)
def test_simulate_refuses_bad_input_with_a_readable_line(args: list[str], message: str) -> None:
    result = run_cli(["simulate", "--devices", "100", *args], {})
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_plot_legend_sits_outside_every_panel() -> None:
    from patchgate.sim.engine import simulate
    from patchgate.sim.plot import figure
    from patchgate.sim.scenario import Fault, Scenario

    scenario = Scenario(devices=300, fault=Fault.parse("boot:0.3"), seed=2)
    fig = figure(simulate(scenario, ("patchgate", "hawkbit", "aws")))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    [legend] = fig.legends
    box = legend.get_window_extent(renderer)
    # Four device curves, the halt, the deadline, the failure rate and its threshold.
    assert len(legend.get_texts()) == 8
    assert len(fig.axes) == 12  # per strategy: two spans, devices and failure rate
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
        # Titles and labels stay clear of the legend too.
        assert not box.overlaps(ax.get_tightbbox(renderer)), ax.get_title()
    # The first span ends soon after the halt, so its first minutes are readable.
    spans = [ax.get_xlim()[1] for ax in fig.axes[::2]]
    assert all(span <= 200 for span in spans)


def test_the_text_never_puts_a_bare_zero_beside_a_halt() -> None:
    args = ["simulate", "--devices", "300", "--fault", "boot:0.5", "--strategy", "all"]
    result = run_cli(args, {})
    patched = next(line for line in result.stdout.splitlines() if "patched at" in line)
    assert "(reverted)" in patched


def test_the_text_table_names_the_halted_stage_as_a_stage() -> None:
    args = ["simulate", "--devices", "300", "--fault", "boot:0.5", "--strategy", "all"]
    result = run_cli(args, {})
    assert result.code == 0, result.stderr
    halted = next(line for line in result.stdout.splitlines() if "halted in" in line)
    assert "stage '" in halted
    calm = run_cli(["simulate", "--devices", "300"], {})
    assert "not halted" in calm.stdout
