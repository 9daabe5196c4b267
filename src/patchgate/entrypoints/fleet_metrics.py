"""The fleet and register gauges on ``/metrics`` (docs/metrics.md).

A scrape never touches the database: ``FleetCollector`` serves the figures its
background thread last read (``services.fleet_figures``), refreshed every ``interval``
seconds, so scraping costs the same at a million devices as at ten. Two more gauges say
how fresh the figures are and how long the last refresh took."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from patchgate.services.context import Context
from patchgate.services.fleet_figures import FleetFigures, timed_reading

log = logging.getLogger("patchgate.metrics")

# A reading that took T seconds is followed by at least DUTY_FACTOR × T seconds of rest.
DUTY_FACTOR = 10.0


def _gauge(
    name: str, doc: str, labels: tuple[str, str], values: Mapping[tuple[str, str], int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def families(figures: FleetFigures) -> Iterable[Metric]:
    """The gauges of one reading."""
    yield _gauge(
        "patchgate_vulnerabilities",
        "Vulnerabilities in the register by severity and SLA state.",
        ("severity", "sla_state"),
        figures.vulnerabilities,
    )
    yield _gauge(
        "patchgate_art14_reports_due",
        "CRA Art. 14 reports not yet submitted whose clock runs, by report and state "
        "(due or overdue), as GET /api/v1/vulnerabilities/reports/due lists them.",
        ("report", "state"),
        figures.art14_reports,
    )
    yield _gauge(
        "patchgate_campaign_devices",
        "Devices of each open campaign by state (the counts of campaign status).",
        ("campaign", "state"),
        figures.campaign_devices,
    )
    yield _gauge(
        "patchgate_devices",
        "Devices in the fleet (removed ones left out) by product and installed version.",
        ("product", "version"),
        figures.devices,
    )
    read_at = GaugeMetricFamily(
        "patchgate_fleet_figures_timestamp_seconds",
        "When the figures of the fleet and register gauges were read (Unix time).",
    )
    read_at.add_metric([], figures.read_at.timestamp())
    yield read_at


class FleetCollector(Collector):
    """Serves the last reading; a daemon thread takes a new one every ``interval``."""

    def __init__(self, ctx: Context, interval: float) -> None:
        self.ctx = ctx
        self.interval = interval
        self._figures: FleetFigures | None = None
        self._refresh_seconds: float | None = None
        self._part_seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> FleetFigures:
        """Read the figures now (the thread's work; tests call it to skip the wait)."""
        began = time.perf_counter()
        figures, parts = timed_reading(self.ctx)
        self._refresh_seconds = time.perf_counter() - began
        self._part_seconds = parts
        self._figures = figures
        return figures

    def start(self) -> None:
        """Start the refresher (idempotent; nothing when the interval is 0)."""
        if self._thread is None and self.interval > 0:
            self._thread = threading.Thread(target=self._loop, name="metrics", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def pause(self) -> float:
        """Seconds until the next reading: the interval, or more when a reading takes long
        (a large fleet with open campaigns), so refreshing never takes more than about a
        tenth of one core."""
        return max(self.interval, DUTY_FACTOR * (self._refresh_seconds or 0.0))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # keep the last figures; the next round retries
                log.exception("reading the metrics figures failed; retrying")
            self._stop.wait(self.pause())

    def collect(self) -> Iterator[Metric]:
        figures = self._figures
        if figures is None:
            return  # the first reading is still under way
        yield from families(figures)
        took = GaugeMetricFamily(
            "patchgate_fleet_figures_refresh_seconds",
            "How long the last reading of the fleet and register figures took.",
        )
        took.add_metric([], self._refresh_seconds or 0.0)
        yield took
        parts = GaugeMetricFamily(
            "patchgate_fleet_figures_part_seconds",
            "How long each part of the last reading took (register, campaigns, fleet).",
            labels=["part"],
        )
        for name, seconds in sorted(self._part_seconds.items()):
            parts.add_metric([name], seconds)
        yield parts
