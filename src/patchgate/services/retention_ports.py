"""The port of action-history retention (docs/deploy.md, "Pruning action history")."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PrunableAction:
    """A closed action the retention rule allows to delete, with what the audit entry of
    the pruning keeps of it."""

    id: int
    campaign_id: int | None
    release_id: int
    status: str


class ActionRetention(abc.ABC):
    """Finding and deleting closed actions past their retention."""

    @abc.abstractmethod
    def prunable(self, closed_before: datetime, limit: int) -> Sequence[PrunableAction]:
        """Up to ``limit`` actions (lowest ids first) that are closed since before
        ``closed_before``, are neither a device's open nor its installed action, and belong
        to no campaign or to one completed or cancelled before ``closed_before``."""

    @abc.abstractmethod
    def delete(self, action_ids: Sequence[int]) -> int:
        """Delete the actions and their events; returns how many actions went."""
