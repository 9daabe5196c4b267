"""What a halt or a cancellation of a campaign means for its stored actions
(docs/campaigns.md, "Halt"): the stop commits in O(1), and from its commit every read of
a pending action of the campaign sees it cancelled (``stop_cancel``); the rows are marked
afterwards. Re-exported by :mod:`patchgate.domain.campaigns`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from patchgate.domain.campaign_states import CANCELLED


@dataclass(frozen=True, slots=True)
class StopFacts:
    """What a stored action's campaign says about it: its state, when it halted (if it
    did), its release, when it finished and the halt's reason."""

    campaign_id: int
    state: str
    release_id: int
    halted_at: datetime | None
    finished_at: datetime | None
    reason: str = ""


# The stored statuses a stop leaves to be marked after its commit: each waits for the
# device's cancelAction feedback (``waiting_confirmation`` is closed in the stop itself).
AWAITING_CANCEL: Final = frozenset({"offered", "downloading", "downloaded"})


def stop_cancel(
    status: str, active: bool, release_id: int, stop: StopFacts | None
) -> tuple[datetime, str] | None:
    """Whether a halt or a cancellation of its campaign has cancelled this stored action
    (docs/campaigns.md, "Halt"): an open action not yet installing, of a cancelled
    campaign, or of a halted one for the halted release (a revert's own offers are other
    releases). Returns when the cancellation was requested and its history text, else
    None. The stop commits this in O(1); the action's row says so from the next write
    that touches it or the sweep that marks it."""
    if stop is None or not active or status not in AWAITING_CANCEL:
        return None
    if stop.halted_at is not None and release_id == stop.release_id:
        return stop.halted_at, cancel_detail(stop.campaign_id, halted=True, reason=stop.reason)
    if stop.state == CANCELLED and stop.finished_at is not None:
        return stop.finished_at, cancel_detail(stop.campaign_id, halted=False, reason="")
    return None


def cancel_detail(campaign_id: int, *, halted: bool, reason: str) -> str:
    """The history step of an action that a halt or a cancellation of its campaign
    cancelled."""
    why = "halted" if halted else "cancelled"
    return f"cancellation requested: campaign {campaign_id} {why}" + (
        f": {reason}" if reason else ""
    )
