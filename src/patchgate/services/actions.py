"""Actions from the management side: assign a release to a device directly (as hawkBit's
management API allows), cancel an action, create one from a campaign's offer, and read an
action's history."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from patchgate.domain import actions as rules
from patchgate.domain.campaigns import Offer
from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.device_ports import (
    ActionChanges,
    ActionEventRecord,
    ActionRecord,
    DeviceChanges,
    DeviceRecord,
    NewActionEvent,
    NewActionRow,
    ReleaseView,
)
from patchgate.services.devices import DEFAULT_TENANT
from patchgate.services.unit_of_work import UnitOfWork

OFFERABLE_RELEASE_STATES = frozenset({"signed"})


def _check_release(release: ReleaseView | None, device: DeviceRecord, release_id: int) -> None:
    if release is None:
        raise NotFound(f"no release {release_id}")
    if release.state == "withdrawn":
        raise Conflict(f"release {release_id} is withdrawn and is never offered again")
    if release.state not in OFFERABLE_RELEASE_STATES:
        raise Conflict(f"release {release_id} is not signed yet ({release.state})")
    if not release.artifacts:
        raise Conflict(f"release {release_id} has no artifacts")
    if release.hardware and device.hardware and device.hardware not in release.hardware:
        raise Conflict(
            f"release {release_id} is for hardware {', '.join(release.hardware)}, "
            f"device {device.controller_id} is {device.hardware}"
        )


def _wake_after_commit(ctx: Context, uow: UnitOfWork, device: DeviceRecord) -> None:
    """Push (when configured): once this unit has committed, ask the device to poll now
    rather than at its next interval. Never for a transaction that rolls back."""
    wakeups = ctx.wakeups
    if wakeups is not None:
        tenant, controller_id = device.tenant, device.controller_id
        uow.after_commit(lambda: wakeups.wake(tenant, [controller_id]))


@dataclass(frozen=True)
class NewAction:
    """What an action is made of: the release, the campaign that offered it (if any), the
    DDI handling values (``forced``/``attempt``/``skip``), consent, maintenance window."""

    release_id: int
    campaign_id: int | None
    download: str
    update: str
    confirmation_required: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None
    kind: str = "assignment"


def tenant_id(uow: UnitOfWork, device: DeviceRecord) -> int:
    """The row id of the device's tenant (an action row names it)."""
    tenant = uow.tenants.get(device.tenant)
    assert tenant is not None
    return tenant.id


def add_with_event(uow: UnitOfWork, row: NewActionRow, note: str) -> ActionRecord:
    """Insert an action and the first entry of its history (the server made it, in the
    status it was made in): every new action, offered or recorded, starts so."""
    action = uow.actions.add(row)
    uow.actions.add_event(
        NewActionEvent(
            action_id=action.id,
            at=row.created_at,
            channel="server",
            details=[note],
            status_after=row.status,
        )
    )
    return action


def _open_action(
    uow: UnitOfWork,
    device: DeviceRecord,
    offer: NewAction,
    *,
    source: str,
    actor: str,
    now: datetime,
) -> ActionRecord:
    """Insert the action for ``offer`` and make it the device's open action (the caller
    holds the device row lock and has checked that nothing is open)."""
    status = rules.initial_status(
        confirmation_required=offer.confirmation_required, auto_confirm=device.auto_confirm
    )
    action = add_with_event(
        uow,
        NewActionRow(
            tenant_id=tenant_id(uow, device),
            device_id=device.id,
            release_id=offer.release_id,
            campaign_id=offer.campaign_id,
            source=source,
            status=status.value,
            active=True,
            download_type=offer.download,
            update_type=offer.update,
            window_start=offer.window_start,
            window_end=offer.window_end,
            created_at=now,
            updated_at=now,
            created_by=actor,
            from_version=device.installed_version,
        ),
        f"offered by {actor} ({offer.kind}: {offer.download}/{offer.update})",
    )
    uow.devices.update(device.id, DeviceChanges(open_action_id=action.id))
    return action


def assign(
    ctx: Context,
    controller_id: str,
    release_id: int,
    *,
    action_type: str = "forced",
    confirmation_required: bool = False,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> ActionRecord:
    """Offer a release to one device now, outside any campaign. Refused while the device
    has an open action (cancel it first)."""
    try:
        kind = rules.ActionType(action_type)
    except ValueError as exc:
        raise InvalidInput(
            f"unknown action type {action_type!r} (forced, soft, downloadonly)"
        ) from exc
    if (window_start is None) != (window_end is None):
        raise InvalidInput("a maintenance window needs both a start and an end")
    if window_start is not None and window_end is not None and window_end <= window_start:
        raise InvalidInput("a maintenance window must end after it starts")
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get(tenant, controller_id, lock=True)
        if device is None:
            raise NotFound(f"no device {controller_id!r}")
        if device.removed_at is not None:
            raise Conflict(f"device {controller_id} was removed; nothing can be offered to it")
        _check_release(uow.catalog.get(release_id), device, release_id)
        if device.open_action_id is not None:
            raise Conflict(
                f"device {controller_id} already has open action {device.open_action_id}; "
                "cancel it first"
            )
        download, update = rules.handling_types(kind)
        offer = NewAction(
            release_id=release_id,
            campaign_id=None,
            download=download.value,
            update=update.value,
            confirmation_required=confirmation_required,
            window_start=window_start,
            window_end=window_end,
            kind=kind.value,
        )
        action = _open_action(uow, device, offer, source="management", actor=actor, now=now)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="action.assign",
            subject=f"device:{controller_id}",
            details={"action": action.id, "release": release_id, "type": kind.value},
        )
        _wake_after_commit(ctx, uow, device)
        uow.commit()
    return action


def from_offer(
    offer: Offer, *, window_start: datetime | None = None, window_end: datetime | None = None
) -> NewAction:
    """The action a campaign's ``Offer`` (``patchgate.domain.campaigns``) becomes."""
    return NewAction(
        release_id=offer.release_id,
        campaign_id=offer.campaign_id,
        download=offer.download,
        update=offer.update,
        confirmation_required=offer.confirmation_required,
        window_start=window_start,
        window_end=window_end,
        kind=offer.kind,
    )


def create_from_offer(
    ctx: Context,
    device_id: int,
    offer: Offer | NewAction,
    *,
    actor: str,
    check: Callable[[UnitOfWork, DeviceRecord], bool] | None = None,
) -> ActionRecord | None:
    """Turn a campaign's offer into an action. Returns None (and writes nothing) when the
    device got an open action meanwhile, the release may no longer be offered, or
    ``check`` (run in the transaction, with the device row locked) says no; the poll then
    answers as if nothing was offered."""
    new = from_offer(offer) if isinstance(offer, Offer) else offer
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(device_id, lock=True)
        if device is None or device.open_action_id is not None:
            return None
        try:
            _check_release(uow.catalog.get(new.release_id), device, new.release_id)
        except (NotFound, Conflict):
            return None
        if check is not None and not check(uow, device):
            return None
        action = _open_action(uow, device, new, source="campaign", actor=actor, now=now)
        uow.commit()
    return action


def cancel(ctx: Context, action_id: int, *, reason: str = "", actor: str) -> ActionRecord:
    """Cancel an action: at once if the device never accepted it, else by asking the
    device through ``cancelAction`` (the action stays open until it confirms). Asking
    again while the cancellation is pending changes nothing."""
    record, _ = _cancel(ctx, action_id, reason=reason, actor=actor)
    return record


def cancel_if_pending(
    ctx: Context, action_id: int, *, reason: str = "", actor: str
) -> ActionRecord | None:
    """Like ``cancel``, but None when this call changed nothing because a cancellation
    was already requested (by another process's sweep, say), so sweeps record each
    cancellation once."""
    record, changed = _cancel(ctx, action_id, reason=reason, actor=actor)
    return record if changed else None


def _cancel(ctx: Context, action_id: int, *, reason: str, actor: str) -> tuple[ActionRecord, bool]:
    now = ctx.clock()
    with ctx.uow() as uow:
        # The row lock serialises concurrent cancellations of one action.
        action = uow.actions.get(action_id, lock=True)
        if action is None:
            raise NotFound(f"no action {action_id}")
        if action.status == rules.Status.CANCELING:
            return action, False
        if not action.active:  # a closed download-only action keeps status "downloaded"
            raise rules.ActionGone(f"action is already closed ({action.status})")
        new = rules.request_cancel(action.status)
        changes = ActionChanges(status=new.value, updated_at=now, cancel_requested_at=now)
        if rules.is_terminal(new):
            changes = replace(changes, active=False, closed_at=now, result="canceled")
            uow.devices.update(action.device_id, DeviceChanges(open_action_id=None))
        else:
            # The device must poll to see cancelAction: tell it now.
            device = uow.devices.get_by_id(action.device_id)
            if device is not None:
                _wake_after_commit(ctx, uow, device)
        uow.actions.update(action_id, changes)
        uow.actions.add_event(
            NewActionEvent(
                action_id=action_id,
                at=now,
                channel="server",
                details=[f"cancellation requested by {actor}" + (f": {reason}" if reason else "")],
                status_after=new.value,
            )
        )
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="action.cancel",
            subject=f"action:{action_id}",
            details={"reason": reason, "status": new.value},
        )
        updated = uow.actions.get(action_id)
        uow.commit()
    assert updated is not None
    return updated, True


@dataclass(frozen=True)
class ActionDetail:
    """An action with its history."""

    action: ActionRecord
    events: Sequence[ActionEventRecord]


def get_action(ctx: Context, action_id: int) -> ActionDetail:
    """An action and its history, or ``NotFound``."""
    with ctx.read_uow() as uow:
        action = uow.actions.get(action_id)
        if action is None:
            raise NotFound(f"no action {action_id}")
        return ActionDetail(action, uow.actions.events(action_id, limit=1000))


def device_actions(
    ctx: Context, controller_id: str, *, tenant: str = DEFAULT_TENANT
) -> Sequence[ActionRecord]:
    """A device's actions, newest first."""
    with ctx.read_uow() as uow:
        device = uow.devices.get(tenant, controller_id)
        if device is None:
            raise NotFound(f"no device {controller_id!r}")
        return uow.actions.for_device(device.id)
