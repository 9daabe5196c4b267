"""Read models of the fleet for the console's overview and charts (one query each)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Finish:
    """One action of a campaign that finished: when, and whether it failed."""

    at: datetime
    failed: bool


class FleetQueries(abc.ABC):
    @abc.abstractmethod
    def counts(self, tenant: str, seen_since: datetime) -> tuple[int, int]:
        """(devices in service, of them those seen since ``seen_since``)."""

    @abc.abstractmethod
    def finishes(self, campaign_id: int) -> Sequence[Finish]:
        """The campaign's finished actions, oldest first."""
