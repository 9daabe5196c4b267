"""What the campaign timer does for a campaign's timing (docs/campaigns.md "Timing, retries
and schedule"; the rules are :mod:`patchgate.domain.campaign_timing`'s):

- a draft campaign whose ``start_at`` has come is started;
- a campaign whose ``end_at`` has come is cancelled (pending offers cancelled, installs in
  flight allowed to finish);
- an open action of a campaign with an in-progress timeout, not finished that long after
  its offer, is closed as timed out: its row is closed on the server (a later report from
  the device is answered 410 Gone, as for any closed action), its history says why, and
  the audit log has it. What the timeout means for the execution (retried, or
  ``timed_out``) is folded from that history by :mod:`patchgate.domain.executions`; the
  retry itself is offered by the device poll (``decide``) once the back-off has passed.

The start and the cancellation are the campaign commands themselves, passed in by the
caller (``commands.tick``), so they take the campaign's row lock and are audited as
operator commands are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from patchgate.domain import campaigns as core
from patchgate.domain.actions import Status
from patchgate.domain.campaign_timing import CampaignTiming, timing_from
from patchgate.domain.clock import rfc3339
from patchgate.domain.durations import format_duration
from patchgate.domain.errors import PatchgateError
from patchgate.services import audit
from patchgate.services.campaign_ports import CampaignRecord
from patchgate.services.context import Context
from patchgate.services.device_ports import ActionChanges, DeviceChanges, NewActionEvent

log = logging.getLogger("patchgate.campaigns")

ACTOR_SCHEDULE = "campaign-timer"
# Timed-out actions closed per campaign and tick; the rest are closed at the next ticks.
TIMEOUT_BATCH = 500
# States whose open actions the in-progress timeout applies to (a draft has none).
_TIMED_STATES = (
    core.RUNNING,
    core.PAUSED,
    core.HALTED,
    core.REVERTING,
    core.COMPLETED,
    core.CANCELLED,
)
_SCHEDULED_STATES = (core.DRAFT, core.RUNNING, core.PAUSED)

Start = Callable[..., None]
Cancel = Callable[..., None]


def run(ctx: Context, *, start: Start, cancel: Cancel) -> dict[int, str]:
    """Apply every campaign's schedule and in-progress timeout at the context's clock;
    returns what was done by campaign id (``started``, ``ended``, ``timed-out N``)."""
    now = ctx.clock()
    with ctx.read_uow() as uow:
        campaigns = uow.campaigns.list(states=(*_TIMED_STATES, core.DRAFT))
    done: dict[int, str] = {}
    for rec in campaigns:
        timing = timing_from(rec.delivery)
        try:
            outcome = _schedule(rec, timing, now, start=start, cancel=cancel)
            if outcome is None and rec.state in _TIMED_STATES and timing.timeout is not None:
                closed = close_timed_out(ctx, rec.id, timing.timeout, now)
                outcome = f"timed-out {closed}" if closed else None
        except PatchgateError as exc:
            log.warning("campaign %s: schedule refused: %s", rec.id, exc)
            continue
        if outcome is not None:
            done[rec.id] = outcome
    return done


def _schedule(
    rec: CampaignRecord, timing: CampaignTiming, now: datetime, *, start: Start, cancel: Cancel
) -> str | None:
    if rec.state not in _SCHEDULED_STATES:
        return None
    if timing.ended(now):
        assert timing.end_at is not None
        reason = f"scheduled end {rfc3339(timing.end_at)} reached"
        cancel(rec.id, reason=reason, actor=ACTOR_SCHEDULE)
        log.info("campaign %s: %s; cancelled", rec.id, reason)
        return "ended"
    if rec.state == core.DRAFT and timing.due_to_start(now):
        start(rec.id, actor=ACTOR_SCHEDULE)
        log.info("campaign %s: scheduled start %s reached", rec.id, rfc3339(timing.start_at))
        return "started"
    return None


def close_timed_out(ctx: Context, campaign_id: int, timeout: timedelta, now: datetime) -> int:
    """Close the campaign's open actions offered more than ``timeout`` ago (at most
    ``TIMEOUT_BATCH``); returns how many were closed."""
    with ctx.read_uow() as uow:
        stale = uow.actions.open_for_campaign(campaign_id, now - timeout, limit=TIMEOUT_BATCH)
    return sum(1 for action in stale if _close(ctx, action.id, timeout, now))


def _close(ctx: Context, action_id: int, timeout: timedelta, now: datetime) -> bool:
    with ctx.uow() as uow:
        # The row lock: device feedback or another process's timer may close it first.
        action = uow.actions.get(action_id, lock=True)
        if action is None or not action.active or action.status == Status.CANCELING:
            return False  # closed meanwhile, or its cancellation is already under way
        device = uow.devices.get_by_id(action.device_id, lock=True)
        changes = ActionChanges(
            status=Status.ERROR.value,
            active=False,
            closed_at=now,
            updated_at=now,
            result="timed_out",
        )
        uow.actions.update(action_id, changes)
        if device is not None and device.open_action_id == action_id:
            uow.devices.update(device.id, DeviceChanges(open_action_id=None))
        detail = f"timed out: not finished within {format_duration(timeout)} of its offer"
        uow.actions.add_event(
            NewActionEvent(
                action_id=action_id,
                at=now,
                channel="server",
                status_after=Status.ERROR.value,
                details=[detail],
            )
        )
        audit.record(
            ctx,
            uow,
            actor=ACTOR_SCHEDULE,
            action="action.timed_out",
            subject=f"action:{action_id}",
            details={"campaign_id": action.campaign_id, "was": action.status, "detail": detail},
        )
        uow.commit()
    return True
