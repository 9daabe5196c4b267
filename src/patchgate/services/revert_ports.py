"""Repository port of the revert plans (docs/campaigns.md "Revert"): each device's own
history of what it ran, and the per-device targets of reverting campaigns."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RanAction:
    """One action of a device as the revert rule reads it: the version the device ran when
    it was created, and the release it installed if it finished successfully."""

    id: int
    release_id: int
    campaign_id: int | None
    from_version: str | None
    succeeded: bool
    active: bool


@dataclass(frozen=True)
class PlannedRevert:
    """One row of a revert plan: the device and its target (None: not moved, ``reason``)."""

    campaign_id: int
    device_id: int
    controller_id: str
    release_id: int | None
    reason: str | None


class RevertRepository(abc.ABC):
    """The device histories and revert plans."""

    @abc.abstractmethod
    def histories(self, device_ids: Collection[int]) -> Mapping[int, Sequence[RanAction]]:
        """Every action of each device (any source), oldest first."""

    @abc.abstractmethod
    def plans(self, campaign_ids: Collection[int]) -> Sequence[PlannedRevert]:
        """The plan rows of these campaigns, by campaign and device."""

    @abc.abstractmethod
    def save(
        self,
        campaign_id: int,
        targets: Mapping[int, tuple[int | None, str | None]],
        now: datetime,
    ) -> None:
        """Set the plan rows of these devices (device id → (release id, reason))."""
