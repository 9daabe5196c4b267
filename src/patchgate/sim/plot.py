"""``simulate --plot FILE``: the fleet over time — devices on the new release, installs in
flight, failures counted by the gates, and the halt — one panel per strategy (PNG or SVG,
matplotlib's Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from patchgate.domain.errors import InvalidInput

from .engine import RunResult

FORMATS = (".png", ".svg")


def check_plot_path(path: str) -> None:
    """Refuse a file name matplotlib would not write as PNG or SVG."""
    if Path(path).suffix.lower() not in FORMATS:
        raise InvalidInput(f"plot: {path!r} must end in .png or .svg")


def plot(results: Mapping[str, RunResult], path: str) -> None:
    """Draw one panel per strategy into ``path``."""
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(results)
    fig, axes = plt.subplots(count, 1, figsize=(9, 3.2 * count), sharex=True, squeeze=False)
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
        verdict = (
            f"halted in {result.halted_at_stage} after {result.minutes_to_halt:.0f} min"
            if result.halted and result.minutes_to_halt is not None
            else "not halted"
        )
        ax.set_title(
            f"{name}: {result.devices:,} devices, exposed {result.exposed:,}, "
            f"bricked {result.bricked}, {verdict}",
            fontsize=10,
        )
        ax.set_ylabel("devices")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("hours since the release")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
