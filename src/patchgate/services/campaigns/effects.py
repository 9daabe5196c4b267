"""What a committed campaign transition does: its audit entries and stored progress
(:func:`apply_transition`, in the transition's own transaction), then, once committed,
wake-ups, the halt notice, the sweeps of pending actions and the vulnerabilities it
deployed (:func:`after_commit`). Every command and the gate evaluation go through here."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import PatchgateError
from patchgate.services import actions as action_service
from patchgate.services import audit, state
from patchgate.services.campaign_ports import CampaignChanges, CampaignRecord
from patchgate.services.campaigns.plans import (
    ACTOR_ENGINE,
    fleet_facts,
    get_campaign,
    plan_of,
    product_hardware,
    stage_devices,
    targeted_fleet,
    with_progress,
)
from patchgate.services.context import Context
from patchgate.services.device_ports import ActionRecord
from patchgate.services.devices import DEFAULT_TENANT
from patchgate.services.unit_of_work import UnitOfWork

log = logging.getLogger("patchgate.campaigns")


@dataclass
class Effects:
    """What a transition does once committed."""

    stopped: bool = False  # halted or cancelled: its pending actions wait for cancelAction
    opened_stage: int | None = None
    halted: dict[str, Any] | None = None
    reached_last: bool = False
    supersede: bool = False  # started, resumed or opened a stage: sweep superseded actions


def apply_transition(
    ctx: Context,
    uow: UnitOfWork,
    rec: CampaignRecord,
    moved: core.Transition,
    *,
    actor: str,
    extra: CampaignChanges | None = None,
) -> Effects:
    """Persist ``moved`` (progress and its events, each audited) and collect the effects."""
    now = ctx.clock()
    effects = Effects()
    changes = with_progress(replace(extra or CampaignChanges(), updated_at=now), moved.progress)
    plan = plan_of(uow, rec)
    last = len(plan.stages) - 1
    for event in moved.events:
        if event.kind in (core.CAMPAIGN_STARTED, core.STAGE_ADVANCED):
            effects.opened_stage = moved.progress.stage_index
            if moved.progress.stage_index == last:
                effects.reached_last = True
        if event.kind in (core.CAMPAIGN_STARTED, core.STAGE_ADVANCED, core.CAMPAIGN_RESUMED):
            effects.supersede = True
        details = {"at": rfc3339(event.at), **_plain(event.details)}
        if event.kind in (core.CAMPAIGN_HALTED, core.CAMPAIGN_CANCELLED):
            details["cancelled_actions"] = _cancel_pending(uow, rec, event, now)
            effects.stopped = True
        if event.kind == core.CAMPAIGN_HALTED:
            effects.halted = dict(event.details)
        if event.kind == core.CAMPAIGN_COMPLETED and moved.progress.floor_raised:
            _raise_floor(ctx, uow, plan, actor=actor)
            effects.reached_last = True
        audit.record(
            ctx,
            uow,
            actor=actor,
            action=f"campaign.{event.kind.removeprefix('campaign-')}",
            subject=f"campaign:{rec.id}",
            details=details,
        )
    uow.campaigns.update(rec.id, changes)
    if moved.events:
        state.changed(ctx, uow)  # every process rebuilds its snapshot from this commit
    return effects


def _cancel_pending(
    uow: UnitOfWork, rec: CampaignRecord, event: core.CampaignEvent, now: datetime
) -> int:
    """A halt or a cancellation cancels every pending action of the campaign at its
    commit, in O(1): the campaign's state and stop time say it
    (``domain.campaigns.stop_cancel``), so every process answers these devices
    ``cancelAction`` from the commit (the poll's ``decide``; every read of an action),
    and the rows are marked afterwards by the sweep, or by the first write that touches
    one (docs/campaigns.md, "Halt"). Only the actions waiting for the user's
    confirmation are closed here (one statement: the device never accepted them).
    Returns how many actions the stop cancelled."""
    halted = event.kind == core.CAMPAIGN_HALTED
    detail = core.cancel_detail(
        rec.id, halted=halted, reason=str(event.details.get("reason") or "")
    )
    release = rec.release_id if halted else None
    closed = uow.campaigns.cancel_pending(
        rec.id, statuses=("waiting_confirmation",), now=now, detail=detail, release_id=release
    )
    awaiting = uow.campaigns.count_pending(
        rec.id, statuses=core.AWAITING_CANCEL, release_id=release
    )
    return closed.count + awaiting


def _raise_floor(ctx: Context, uow: UnitOfWork, plan: core.CampaignPlan, *, actor: str) -> None:
    """A completed rollout raises its product's security floor (docs/campaigns.md)."""
    from patchgate.services import releases as release_service

    product = plan.release.product
    floor = release_service.raise_floor(
        ctx, uow, product=product, security_version=plan.release.security_version, actor=actor
    )
    log.info("campaign %s completed: security floor of %s is %s", plan.id, product, floor)


def _plain(details: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (rfc3339(v) if isinstance(v, datetime) else v) for k, v in details.items()}


def after_commit(ctx: Context, campaign_id: int, effects: Effects, *, actor: str) -> None:
    """The effects of a committed transition: wake-ups, cancellations, notices."""
    if effects.opened_stage is not None and ctx.wakeups is not None:
        # Without a push channel nobody is told: skip the second scan of the fleet.
        with ctx.read_uow() as uow:
            rec = get_campaign(uow, campaign_id)
            plan = plan_of(uow, rec)
            fleet = targeted_fleet(uow, plan, product_hardware(ctx, rec.product))
        by_tenant: dict[str, list[str]] = {}
        for device in stage_devices(plan, fleet, effects.opened_stage):
            by_tenant.setdefault(device.tenant, []).append(device.controller_id)
        for tenant, ids in by_tenant.items():
            notify_stage_opened(ctx, campaign_id, ids, tenant=tenant)
    if effects.halted is not None:
        reason = effects.halted.get("reason", "")
        log.error(
            "CAMPAIGN %s HALTED: %s — no device is offered its release again", campaign_id, reason
        )
        # People are told through the notice outbox (docs/notifications.md), which derives
        # the halt from the committed state; this only makes the server's pass come soon.
        if ctx.notices is not None:
            ctx.notices.kick()
    if effects.stopped and ctx.wakeups is not None:
        # A push channel tells the devices now (their rows are marked as they are woken).
        cancel_open_actions(ctx, campaign_id, actor=actor)
    if effects.reached_last:
        fixes_deployed(ctx, campaign_id)
    if effects.supersede:
        supersede_pending(ctx, campaign_id, actor=actor)


def notify_stage_opened(
    ctx: Context, campaign_id: int, device_ids: Sequence[str], *, tenant: str = DEFAULT_TENANT
) -> None:
    """Tell the push channel (``ctx.wakeups``, the ``Wakeups`` port, when one is wired)
    that these devices may poll now: a stage opened for them. Without one this does
    nothing and devices learn it at their next poll."""
    wakeups = ctx.wakeups
    if wakeups is None or not device_ids:
        return
    try:
        wakeups.wake(tenant, list(device_ids))
    except Exception:  # a push channel is best effort; the poll is the fallback
        log.exception("campaign %s: wake-up of %d devices failed", campaign_id, len(device_ids))


def _wake_devices(ctx: Context, campaign_id: int, device_ids: Sequence[int]) -> None:
    """Push (when configured): these devices have a cancellation to fetch."""
    if ctx.wakeups is None:
        return
    by_tenant: dict[str, list[str]] = {}
    with ctx.read_uow() as uow:  # a halt's 100,000 devices: a read per 1,000, not each
        for device in uow.campaigns.fleet_devices(set(device_ids)):
            if device.controller_id:
                by_tenant.setdefault(device.tenant, []).append(device.controller_id)
    for tenant, ids in by_tenant.items():
        notify_stage_opened(ctx, campaign_id, ids, tenant=tenant)


# The sweep marks a stopped campaign's cancelled actions this many per transaction.
SWEEP_BATCH = 10_000


def cancel_open_actions(ctx: Context, campaign_id: int, *, actor: str) -> int:
    """The sweep of a stopped campaign: mark the rows of the open actions its stop
    cancelled (each then says ``canceling``, with its history step at the stop's time),
    ``SWEEP_BATCH`` per transaction, and wake their devices when a push channel is
    wired; returns how many rows it marked. The halt's audit entry already named them,
    so the sweep records none. Actions already installing finish and are recorded."""
    marked_total = 0
    while True:
        with ctx.uow() as uow:
            rec = get_campaign(uow, campaign_id, lock=True)
            if rec.state not in (core.HALTED, core.CANCELLED, core.REVERTING):
                return marked_total
            marked = mark_stopped(uow, rec, limit=SWEEP_BATCH)
            uow.commit()
        marked_total += len(marked)
        if ctx.wakeups is not None:
            _wake_devices(ctx, campaign_id, marked)
        if len(marked) < SWEEP_BATCH:
            break
    if marked_total:
        log.info("campaign %s: marked %d cancelled actions", campaign_id, marked_total)
    return marked_total


def mark_stopped(uow: UnitOfWork, rec: CampaignRecord, *, limit: int | None = None) -> list[int]:
    """In the caller's transaction (the campaign's row locked), mark up to ``limit`` rows
    of open actions that the campaign's halt or cancellation cancelled, as that stop
    would have (``domain.campaigns.stop_cancel``); returns their devices."""
    passes: list[tuple[datetime, str, int | None]] = []
    if rec.halted_at is not None:
        detail = core.cancel_detail(rec.id, halted=True, reason=rec.halt_reason or "")
        passes.append((rec.halted_at, detail, rec.release_id))
    if rec.state == core.CANCELLED and rec.finished_at is not None:
        passes.append((rec.finished_at, core.cancel_detail(rec.id, halted=False, reason=""), None))
    devices: list[int] = []
    for at, detail, release in passes:
        left = None if limit is None else limit - len(devices)
        if left is not None and left <= 0:
            break
        marked = uow.campaigns.cancel_pending(
            rec.id,
            statuses=core.AWAITING_CANCEL,
            now=at,
            detail=detail,
            release_id=release,
            limit=left,
        )
        devices.extend(device for _, device in marked.canceling)
    return devices


def _cancel_actions(
    ctx: Context, action_ids: Iterable[int], *, reason: str, actor: str
) -> list[ActionRecord]:
    """The sweep: cancel each action (DDI ``cancelAction`` once the device accepted it);
    one closed meanwhile, or whose cancellation another sweep already requested, is
    skipped. Returns the actions this call cancelled."""
    done = []
    for action_id in action_ids:
        try:
            record = action_service.cancel_if_pending(ctx, action_id, reason=reason, actor=actor)
        except PatchgateError:
            continue  # closed meanwhile (the device finished or cancelled it)
        if record is not None:
            done.append(record)
    return done


def supersede_pending(ctx: Context, campaign_id: int, *, actor: str = ACTOR_ENGINE) -> int:
    """Cancel the pending actions this campaign's release supersedes (``decide`` rule 2):
    each open action of another campaign of the product that has not started installing,
    held by a device this campaign would offer to now, for an older release that the rule
    says is superseded. The device gets ``cancelAction`` and, once the cancellation is
    closed, this campaign's release at its next poll. Returns how many were cancelled."""
    now = ctx.clock()
    with ctx.read_uow() as uow:
        # One read of the campaigns: with no other campaign of the product (the gate
        # tick's usual case) there is nothing to supersede and nothing more is read.
        every = uow.campaigns.list()
        rec = next((c for c in every if c.id == campaign_id), None) or get_campaign(
            uow, campaign_id
        )
        if rec.state != core.RUNNING:
            return 0
        others = {
            c.id: c
            for c in every
            if c.product == rec.product and c.id != rec.id and c.state != core.DRAFT
        }
        if not others:
            return 0
        plan = plan_of(uow, rec)
        if plan.release.type not in ("security", "combined") or plan.release.withdrawn:
            return 0
        pending = [
            (action, others[cid])
            for cid in others
            for action in uow.campaigns.actions(cid)
            if action.status in ex.DDI_CANCELLABLE and action.release_id != plan.release.id
        ]
        if not pending:
            return 0
        fleet = {d.id: d for d in targeted_fleet(uow, plan, product_hardware(ctx, rec.product))}
        floor = uow.releases.security_floor(rec.product)
        chosen: list[tuple[int, int, int, str]] = []  # action, its campaign, device, reason
        for action, other in pending:
            device = fleet.get(action.device_id)
            release = uow.releases.get(action.release_id)
            if device is None or release is None:
                continue
            finished = frozenset(
                a.campaign_id
                for a in uow.actions.for_device(device.id, limit=1000)
                if a.campaign_id is not None and not a.active
            )
            facts = replace(
                fleet_facts(device, rec.product),
                security_floor=floor,
                finished_campaigns=finished,
                open_action=core.OpenAction(
                    action.id,
                    other.id,
                    release.id,
                    release.security_version,
                    ex.FROM_DDI_STATUS[action.status],
                ),
            )
            snapshot = core.Snapshot.build(0, [plan_of(uow, other), plan])
            decision = core.decide(facts, snapshot, now)
            if decision.reason == core.CANCEL_SUPERSEDED:
                why = (
                    f"superseded by campaign {rec.id} (release {plan.release.version}, "
                    f"security version {plan.release.security_version} > "
                    f"{release.security_version})"
                )
                chosen.append((action.id, other.id, device.id, why))
    cancelled: list[tuple[ActionRecord, int, str]] = []
    for action_id, other_id, _device_id, why in chosen:
        for record in _cancel_actions(ctx, [action_id], reason=why, actor=actor):
            cancelled.append((record, other_id, why))
    if not cancelled:
        return 0
    with ctx.uow() as uow:
        for record, other_id, why in cancelled:
            audit.record(
                ctx,
                uow,
                actor=actor,
                action="campaign.supersede",
                subject=f"campaign:{campaign_id}",
                details={
                    "action_id": record.id,
                    "superseded_campaign": other_id,
                    "status": record.status,
                    "reason": why,
                },
            )
        uow.commit()
    by_tenant: dict[str, list[str]] = {}
    with ctx.read_uow() as uow:
        for record, _other, _why in cancelled:
            device_rec = uow.devices.get_by_id(record.device_id)
            if device_rec is not None and device_rec.controller_id:
                by_tenant.setdefault(device_rec.tenant, []).append(device_rec.controller_id)
    for tenant, ids in by_tenant.items():
        notify_stage_opened(ctx, campaign_id, ids, tenant=tenant)
    log.warning(
        "campaign %s: cancelled %d pending actions of older releases it supersedes",
        campaign_id,
        len(cancelled),
    )
    return len(cancelled)


def fixes_deployed(ctx: Context, campaign_id: int) -> None:
    """The last stage is reached: the fixed vulnerabilities count as deployed now."""
    from patchgate.services import vulnerabilities

    with ctx.read_uow() as uow:
        rec = get_campaign(uow, campaign_id)
        release = uow.releases.get(rec.release_id)
    if release is None:
        return
    for vuln_id in release.fixes:
        try:
            vulnerabilities.triage(
                ctx,
                vuln_id,
                status="fix_deployed",
                actor=f"campaign:{campaign_id}",
                product=release.product,
                at=ctx.clock(),
                release_id=release.id,
            )
        except PatchgateError as exc:
            log.info("campaign %s: %s not marked fix_deployed: %s", campaign_id, vuln_id, exc)
