"""The seam between the device API and the campaign engine, pure.

On a poll of a device that has no open action, the device API calls
``decide(facts, snapshot, now)``. The campaign engine supplies both ``decide`` and the
snapshot (what is running: campaigns, stages, cohort cut-offs, halts), rebuilt whenever the
state version moves. An :class:`Offer` is turned into an action by
``patchgate.services.actions.create_from_offer``; ``None`` means the poll writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchgate.domain.actions import ActionType


@dataclass(frozen=True)
class DeviceFacts:
    """What the poll knows about a device, from its one row (no extra read)."""

    id: int
    tenant: str
    controller_id: str
    hardware: str | None
    installed_version: str | None
    groups: tuple[str, ...]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Offer:
    """A release to offer one device, with how it should be handled."""

    release_id: int
    campaign_id: int | None = None
    action_type: ActionType = ActionType.FORCED
    confirmation_required: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    """What is running, stamped with the state version it was built from.

    The campaign engine subclasses this (or puts its own view in ``plan``); the device API
    only reads ``version`` and hands the snapshot to ``decide``.
    """

    version: int
    plan: Any = None


Decide = Callable[[DeviceFacts, Snapshot, datetime], Offer | None]


def offer_nothing(_facts: DeviceFacts, _snapshot: Snapshot, _now: datetime) -> Offer | None:
    """The decision while no campaign engine is plugged in: nothing to offer."""
    return None
