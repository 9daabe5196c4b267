"""Charts drawn on the server as SVG: readable without JavaScript, allowed by the CSP
(no inline script or style), and described for screen readers (``<title>``, ``aria-label``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

from patchgate.services.fleet_ports import FinishPoint

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 34


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %" if x >= 0.1 else f"{x * 100:.1f} %"


def failure_rate(curve: Sequence[FinishPoint], threshold: float | None) -> Markup:
    """The campaign's failure rate (failed / finished, cumulative) over time, with the
    current stage's threshold as a dashed line."""
    if not curve:
        return Markup(
            '<p class="muted">No device has finished yet: the failure rate appears here '
            "as devices report.</p>"
        )
    points = [(p.at, p.failed / p.finished) for p in curve if p.finished]
    finished = curve[-1].finished
    top = max([p[1] for p in points] + [threshold or 0.0]) * 1.25 or 0.1
    start, end = points[0][0], points[-1][0]
    span = max((end - start).total_seconds(), 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(at: datetime, rate: float) -> tuple[float, float]:
        x = LEFT + (at - start).total_seconds() / span * plot_w
        return x, TOP + plot_h - rate / top * plot_h

    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(
        xy(at, rate) for at, rate in points
    ))  # fmt: skip
    last = points[-1][1]
    label = f"Failure rate over time: now {_pct(last)} of {finished} finished" + (
        f", threshold {_pct(threshold)}" if threshold is not None else ""
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#5a6670"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#5a6670"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = TOP + plot_h - frac * plot_h
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#5a6670">{_pct(top * frac)}</text>'
        )
    if threshold is not None:
        _, ty = xy(start, threshold)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" '
            'stroke="#b3261e" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - RIGHT}" y="{ty - 5:.1f}" text-anchor="end" font-size="11" '
            f'fill="#b3261e">gate threshold {_pct(threshold)}</text>'
        )
    parts.append(f'<path d="{path}" fill="none" stroke="#0b5cad" stroke-width="2"/>')
    for at, anchor, x in ((start, "start", LEFT), (end, "end", WIDTH - RIGHT)):
        parts.append(
            f'<text x="{x}" y="{HEIGHT - 10}" text-anchor="{anchor}" font-size="11" '
            f'fill="#5a6670">{at.strftime("%m-%d %H:%M")}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  # every text above went through escape()


def bars(rows: Sequence[tuple[str, int]], *, label: str) -> Markup:
    """Horizontal bars (e.g. devices per version), longest first."""
    if not rows:
        return Markup('<p class="muted">No devices.</p>')
    most = max(n for _, n in rows) or 1
    bar_h, gap, name_w = 18, 6, 150
    height = len(rows) * (bar_h + gap) + gap
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
    ]
    for i, (name, n) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max((WIDTH - name_w - 70) * n / most, 1)
        parts.append(
            f'<text x="{name_w - 8}" y="{y + 13}" text-anchor="end" font-size="12" '
            f'fill="#17202a">{escape(name[:22])}</text>'
            f'<rect x="{name_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#0b5cad"/>'
            f'<text x="{name_w + w + 6:.1f}" y="{y + 13}" font-size="12" fill="#17202a">{n}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  # every text above went through escape()
