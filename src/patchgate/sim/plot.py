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
    """One panel per strategy; one legend for all of them, below the panels, so it never
    covers a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(results)
    fig, axes = plt.subplots(
        count, 1, figsize=(9, 3.2 * count + 1), sharex=True, squeeze=False, layout="constrained"
    )
    for ax, (name, result) in zip(axes[:, 0], results.items(), strict=True):
        tl = result.timeline
        hours = [m / 60 for m in tl.minutes]
        ax.plot(hours, tl.on_new, label="on the new release", color="tab:blue")
        ax.plot(hours, tl.offered, label="installed the new release (cumulative)", color="tab:cyan")
        ax.plot(hours, tl.installing, label="installs in flight", color="tab:gray")
        ax.plot(hours, tl.failures, label="failures (gate count)", color="tab:red")
        if result.minutes_to_halt is not None:
            ax.axvline(result.minutes_to_halt / 60, color="black", linestyle="--", label="halt")
        ax.axvline(
            result.deadline_minutes / 60, color="tab:orange", linestyle=":", label="deadline"
        )
        ax.set_title(
            f"{name}: {result.devices:,} devices, exposed {result.exposed:,}, "
            f"bricked {result.bricked}, {halt_verdict(result)}",
            fontsize=10,
        )
        ax.set_ylabel("devices")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("hours since the release")
    handles: dict[str, Any] = {}
    for ax in axes[:, 0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncol=3, fontsize=8
    )
    return fig


def plot(results: Mapping[str, RunResult], path: str) -> None:
    """Draw one panel per strategy into ``path``."""
    check_plot_path(path)
    import matplotlib.pyplot as plt

    fig = figure(results)
    fig.savefig(path)
    plt.close(fig)
