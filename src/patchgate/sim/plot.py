"""``simulate --plot FILE``: the fleet over time — devices on the new release, installs in
flight, failures counted by the gates, and the halt — one panel per strategy (PNG or SVG,
matplotlib's Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchgate.domain.errors import InvalidInput

from .engine import RunResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg")


def check_plot_path(path: str) -> None:
    """Refuse a file name matplotlib would not write as PNG or SVG."""
    if Path(path).suffix.lower() not in FORMATS:
        raise InvalidInput(f"plot: {path!r} must end in .png or .svg")


def halt_verdict(result: RunResult) -> str:
    """How a run's halt reads in the plot and the table: the stage is a name (``100 %``
    is the stage that offers the whole fleet), never to be read as a share of devices."""
    if not result.halted:
        return "not halted"
    where = f"halted in stage '{result.halted_at_stage}'"
    if result.minutes_to_halt is None:
        return where
    return f"{where} after {result.minutes_to_halt:.0f} min"


def figure(results: Mapping[str, RunResult]) -> Figure:
    """Per strategy, a titled block of four panels: devices (top) and the gate's failure
    rate against the strategy's threshold (bottom), over the first minutes — where a halt
    happens — (left) and over the whole run up to the deadline (right). One legend for
    everything, below the blocks, outside every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(results)
    fig = plt.figure(figsize=(12, 5.0 * count + 0.9), layout="constrained")
    blocks = fig.subfigures(count, 1, squeeze=False)[:, 0]
    handles: dict[str, Any] = {}
    for block, (name, result) in zip(blocks, results.items(), strict=True):
        axes = block.subplots(2, 2, height_ratios=[3, 2], squeeze=False)
        early = _early_minutes(result)
        for column, span in enumerate((early, None)):
            _devices_panel(axes[0, column], result, span)
            _rate_panel(axes[1, column], result, span)
        axes[0, 0].set_title(f"the first {early:.0f} minutes", fontsize=9, loc="left")
        axes[0, 1].set_title("up to the deadline", fontsize=9, loc="left")
        block.suptitle(_summary(name, result), fontsize=10, x=0.01, ha="left")
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncol=4, fontsize=8
    )
    return fig


def _early_minutes(result: RunResult) -> float:
    """The span of the first column: past the halt, at most the sampled-by-tick start."""
    if result.minutes_to_halt is not None:
        return min(180.0, max(30.0, 2 * result.minutes_to_halt))
    return 180.0


def _summary(name: str, result: RunResult) -> str:
    return (
        f"{name}: {result.devices:,} devices · exposed {result.exposed:,} · bricked "
        f"{result.bricked} · {halt_verdict(result)} · {patched_text(result)}"
    )


def patched_text(result: RunResult) -> str:
    """The patched share at the deadline, said so that it cannot read as a contradiction
    of the halt: after a halt the fleet was reverted, so nobody is meant to be on it."""
    share = f"{result.patched_fraction_at_deadline:.1%}"
    if result.halted:
        return f"{share} on the new release at the deadline (halted, then reverted)"
    return f"{share} on the new release at the deadline"


def _series(result: RunResult, early: float | None) -> tuple[list[float], slice]:
    minutes = result.timeline.minutes
    if early is None:
        return [m / 60 for m in minutes], slice(None)
    end = next((i for i, m in enumerate(minutes) if m > early), len(minutes))
    return minutes[:end], slice(0, end)


def _devices_panel(ax: Any, result: RunResult, early: float | None) -> None:
    tl = result.timeline
    x, part = _series(result, early)
    ax.plot(x, tl.offered[part], label="installed the new release (cumulative)", color="tab:purple")
    ax.plot(x, tl.on_new[part], label="running the new release", color="tab:blue")
    ax.plot(x, tl.installing[part], label="installs in flight", color="tab:gray")
    ax.plot(x, tl.failures[part], label="failures the gate counts", color="tab:red")
    scale = 1.0 if early is not None else 1 / 60
    if result.minutes_to_halt is not None:
        ax.axvline(result.minutes_to_halt * scale, color="black", linestyle="--", label="halt")
    if early is None:
        ax.axvline(
            result.deadline_minutes / 60, color="tab:orange", linestyle=":", label="deadline"
        )
    ax.set_ylabel("devices")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def _rate_panel(ax: Any, result: RunResult, early: float | None) -> None:
    tl = result.timeline
    x, part = _series(result, early)
    pairs = zip(tl.failures[part], tl.finished[part], strict=True)
    rate = [100 * f / n if n else 0.0 for f, n in pairs]
    ax.plot(x, rate, label="failure rate of finished installs", color="tab:brown")
    ax.axhline(
        100 * result.failure_threshold,
        color="tab:red",
        linestyle=":",
        label="the gate's failure-rate threshold",
    )
    scale = 1.0 if early is not None else 1 / 60
    if result.minutes_to_halt is not None:
        ax.axvline(result.minutes_to_halt * scale, color="black", linestyle="--")
    ax.set_ylabel("failure rate %")
    ax.set_ylim(0, max(10.0, 100 * result.failure_threshold * 1.5, max(rate, default=0) * 1.1))
    ax.set_xlabel("minutes since the release" if early is not None else "hours since the release")
    ax.grid(alpha=0.3)


def plot(results: Mapping[str, RunResult], path: str) -> None:
    """Draw one panel per strategy into ``path``."""
    check_plot_path(path)
    import matplotlib.pyplot as plt

    fig = figure(results)
    fig.savefig(path)
    plt.close(fig)
