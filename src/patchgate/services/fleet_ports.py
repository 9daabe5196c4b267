"""Read models of the fleet for the console's overview and charts (one query each)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Finish:
    """One action of a campaign that finished: when, and whether it failed."""

    at: datetime
    failed: bool


@dataclass(frozen=True)
class Census:
    """The devices in service: all of them, those seen since a time, and per hardware
    model asked about, (devices, of them those reporting an update scheme)."""

    total: int
    seen: int
    schemes: Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class FinishPoint:
    """The campaign's finished actions up to ``at``: how many, and how many failed."""

    at: datetime
    finished: int
    failed: int


class FleetQueries(abc.ABC):
    @abc.abstractmethod
    def census(
        self, tenant: str, seen_since: datetime, hardware: Sequence[str], keys: Sequence[str],
        suffix: str, values: Sequence[str],
    ) -> Census:  # fmt: skip
        """The devices in service and those seen since ``seen_since`` (one aggregate by
        hardware model); per hardware model of ``hardware``: (devices in service, of them
        those with an attribute named one of ``keys`` or ending in ``suffix`` whose value
        is one of ``values``; names and values compared in lower case), one aggregate
        over the attributes."""

    @abc.abstractmethod
    def campaign_tallies(self, campaign_ids: Sequence[int]) -> Mapping[int, Mapping[str, int]]:
        """Per campaign: its actions counted by status (one aggregate)."""

    @abc.abstractmethod
    def finishes(self, campaign_id: int) -> Sequence[Finish]:
        """The campaign's finished actions, oldest first."""

    @abc.abstractmethod
    def finish_curve(self, campaign_id: int, points: int) -> Sequence[FinishPoint]:
        """The campaign's finished and failed actions, cumulative, at ``points`` evenly
        spaced times from the first finish to the last (one per finish when there are fewer):
        one aggregate, whatever the campaign's size."""
