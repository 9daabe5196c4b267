"""The figures behind the ``/metrics`` gauges (docs/metrics.md): the vulnerability register
by severity and SLA state, the CRA Art. 14 reports due (or overdue) by kind, the devices of each
open campaign by state, and the fleet by product and version.

Each figure is what the management API reports for the same thing (the register's views,
``campaign status``, the device list), read in one pass. The fleet is counted by one
aggregate over an index, never by reading device rows, so a refresh costs the same at a
million devices as the register and the open campaigns do."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from patchgate.domain.errors import NotFound
from patchgate.services import policy as policy_service
from patchgate.services.campaigns import views as campaign_views
from patchgate.services.context import Context
from patchgate.services.vulnerabilities import views as vuln_views

__all__ = ["CLOSED_CAMPAIGN_STATES", "UNKNOWN", "FleetFigures", "read_figures", "timed_reading"]

# Campaigns in these states have no moving figures and leave the gauges.
CLOSED_CAMPAIGN_STATES = frozenset({"completed", "cancelled"})
# The label value for a device whose hardware no product names, or without a version.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FleetFigures:
    """One reading of every gauge's figures, keyed by the gauge's label values."""

    read_at: datetime
    vulnerabilities: Counter[tuple[str, str]] = field(default_factory=Counter)
    art14_reports: Counter[tuple[str, str]] = field(default_factory=Counter)
    campaign_devices: dict[tuple[str, str], int] = field(default_factory=dict)
    devices: Counter[tuple[str, str]] = field(default_factory=Counter)


def _products_by_hardware(ctx: Context) -> dict[str, str]:
    try:
        policy = policy_service.in_force(ctx).policy
    except NotFound:
        return {}
    return {model: product.name for product in policy.products for model in product.hardware}


def _register(ctx: Context, figures: FleetFigures) -> None:
    try:
        views = vuln_views.list_vulnerabilities(ctx).items
    except NotFound:  # no policy in force yet: no register to count
        return
    for view in views:
        figures.vulnerabilities[(view.severity, view.sla_state)] += 1
        if view.art14 is None or not view.art14.required:
            continue
        for clock in view.art14.reports:
            if clock.state in ("due", "overdue"):  # as ``reports_due`` lists them
                figures.art14_reports[(clock.kind, clock.state)] += 1


def _campaigns(ctx: Context, figures: FleetFigures) -> None:
    for short in campaign_views.all_campaigns(ctx):
        if short.state in CLOSED_CAMPAIGN_STATES:
            continue
        try:
            counts = campaign_views.status(ctx, short.id).counts.to_json()
        except NotFound:  # deleted between the two reads
            continue
        for state, count in counts.items():
            figures.campaign_devices[(str(short.id), state)] = int(count)


def _fleet(ctx: Context, figures: FleetFigures) -> None:
    products = _products_by_hardware(ctx)
    with ctx.read_uow() as uow:
        census = uow.devices.census()
    for (hardware, version), count in census.items():
        product = products.get(hardware or "", UNKNOWN)
        figures.devices[(product, version or UNKNOWN)] += count


# The parts of a reading, each one source of the gauges: the register, the open
# campaigns, the fleet census.
PARTS = (("register", _register), ("campaigns", _campaigns), ("fleet", _fleet))


def read_figures(ctx: Context) -> FleetFigures:
    """Every gauge's figures, as the API would report them now."""
    return timed_reading(ctx)[0]


def timed_reading(ctx: Context) -> tuple[FleetFigures, dict[str, float]]:
    """Every gauge's figures, and how long each part of the reading took (seconds), so
    an operator sees which source a slow refresh comes from (docs/metrics.md)."""
    figures = FleetFigures(read_at=ctx.clock())
    took: dict[str, float] = {}
    for name, part in PARTS:
        began = time.perf_counter()
        part(ctx, figures)
        took[name] = time.perf_counter() - began
    return figures, took
