"""Read models of the fleet for listings and charts (keyset-paged, one query each)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain import filters


@dataclass(frozen=True)
class FleetRow:
    """A device as a listing shows it (also ``domain.filters.DeviceFacts``)."""

    controller_id: str
    groups: tuple[str, ...]
    hardware: str | None
    installed_version: str | None
    attributes: Mapping[str, Any]
    last_seen: datetime | None


@dataclass(frozen=True)
class FleetPage:
    rows: Sequence[FleetRow]
    # The ID to continue after (``after=``), or None on the last page.
    next_after: str | None


@dataclass(frozen=True)
class VersionCount:
    hardware: str | None
    version: str | None
    devices: int


@dataclass(frozen=True)
class Finish:
    """One action of a campaign that finished: when, and whether it failed."""

    at: datetime
    failed: bool


class FleetQueries(abc.ABC):
    @abc.abstractmethod
    def page(
        self,
        tenant: str,
        *,
        query: filters.Expression | None,
        after: str | None,
        limit: int,
    ) -> FleetPage:
        """Devices in ID order after ``after`` that ``query`` selects."""

    @abc.abstractmethod
    def counts(self, tenant: str, seen_since: datetime) -> tuple[int, int]:
        """(devices, devices seen since ``seen_since``)."""

    @abc.abstractmethod
    def versions(self, tenant: str) -> Sequence[VersionCount]:
        """Devices per (hardware model, installed version)."""

    @abc.abstractmethod
    def finishes(self, campaign_id: int) -> Sequence[Finish]:
        """The campaign's finished actions, oldest first."""
