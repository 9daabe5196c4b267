"""Repository port of a campaign's stored figures (docs/campaigns.md, "Figures"): the
marks up to which changes are folded in, the stored executions and their per-stage
counts, and the reads that find what changed after the marks. Every read here is
indexed and bounded by the changes, never by the fleet."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the campaign port extends this one
    from patchgate.services.campaign_ports import CampaignAction, FleetDevice


@dataclass(frozen=True)
class Marks:
    """The last action event, health report and device id folded into the figures."""

    event: int = 0
    health: int = 0
    device: int = 0


@dataclass(frozen=True)
class StoredFigures:
    """A campaign's figures as of its marks (all but the per-stage execution counts,
    which are read with :meth:`FigureRepository.execution_counts`)."""

    campaign_id: int
    marks: Marks
    eligible: tuple[int, ...]
    fleet: int
    updated_crashes: int = 0
    updated_hours: float = 0.0
    baseline_crashes: int = 0
    baseline_hours: float = 0.0


@dataclass(frozen=True)
class StoredExecution:
    """One device's folded execution: its stage, status and timeout (None: not open)."""

    device_id: int
    stage: int
    status: str
    due_at: datetime | None


@dataclass(frozen=True)
class Numbered:
    """A row of an append-only table after a mark: its id, when it was written, and the
    device it concerns."""

    id: int
    at: datetime
    device_id: int


@dataclass(frozen=True)
class NumberedHealth:
    """A health report after the mark, with what the tallies and the fold read."""

    id: int
    at: datetime
    device_id: int
    running_version: str | None
    crashes: int
    uptime_s: float | None


class FigureRepository(abc.ABC):
    """Stored figures of campaigns and the change reads that keep them current."""

    @abc.abstractmethod
    def current_marks(self) -> Marks:
        """The highest action event, health report and device ids (indexed maxima)."""

    @abc.abstractmethod
    def stored_figures(self, campaign_id: int) -> StoredFigures | None:
        """The campaign's stored figures, None before they were first built."""

    @abc.abstractmethod
    def save_figures(self, figures: StoredFigures, now: datetime) -> None:
        """Insert or replace the campaign's stored figures."""

    @abc.abstractmethod
    def execution_counts(self, campaign_id: int, now: datetime) -> Mapping[tuple[int, str], int]:
        """Stored executions by (stage, status) — one indexed aggregate; an open execution
        whose ``due_at`` has passed counts as ``timed_out``."""

    @abc.abstractmethod
    def stored_executions(
        self, campaign_id: int, device_ids: Collection[int]
    ) -> Mapping[int, StoredExecution]:
        """The stored executions of these devices, by device id."""

    @abc.abstractmethod
    def save_executions(self, campaign_id: int, rows: Sequence[StoredExecution]) -> None:
        """Insert or replace these devices' stored executions."""

    @abc.abstractmethod
    def events_after(self, campaign_id: int, mark: int, *, limit: int) -> Sequence[Numbered]:
        """Action events of the campaign's actions with ids above ``mark``, by id, at most
        ``limit``; a ``canceling`` step (which moves no execution) is left out of what is
        returned but not of the mark's progress (its id is returned with device 0)."""

    @abc.abstractmethod
    def health_after(self, mark: int, *, limit: int) -> Sequence[NumberedHealth]:
        """Health reports with ids above ``mark``, by id, at most ``limit``."""

    @abc.abstractmethod
    def devices_after(self, mark: int, *, limit: int) -> Sequence[Numbered]:
        """Device registrations with ids above ``mark``, by id, at most ``limit``."""

    @abc.abstractmethod
    def fleet_devices(self, device_ids: Collection[int]) -> Sequence[FleetDevice]:
        """These devices as the engine sees them (removed ones left out)."""

    @abc.abstractmethod
    def actions_of_devices(
        self, campaign_id: int, device_ids: Collection[int]
    ) -> Sequence[CampaignAction]:
        """The campaign's actions on these devices with their steps, oldest first."""

    @abc.abstractmethod
    def health_of_devices(
        self, device_ids: Collection[int], since: datetime, *, upto: int
    ) -> Sequence[NumberedHealth]:
        """These devices' health reports at or after ``since`` with ids up to ``upto``."""

    @abc.abstractmethod
    def health_between(self, since: datetime, upto: int) -> Sequence[NumberedHealth]:
        """Every health report at or after ``since`` with an id up to ``upto`` (the full
        build of a campaign's figures)."""
