"""The end of a device's life in the registry (docs/devices.md, "Removing a device" and
"Rotating a device's token"). Each command runs in one unit of work and is audited.

A removed device is marked, not deleted: its row keeps its actions, health reports and
the campaign figures built from them, and the audit log keeps what happened to it. It
loses its token at once, its open action is closed as cancelled, and it leaves every count
of the fleet (device lists, exposure, campaign eligibility, the ``/metrics`` gauges)."""

from __future__ import annotations

from dataclasses import dataclass

from patchgate.domain import actions as rules
from patchgate.domain.errors import Conflict, NotFound
from patchgate.services import audit
from patchgate.services.access import hash_token
from patchgate.services.context import Context
from patchgate.services.device_ports import (
    DEFAULT_TENANT,
    ActionChanges,
    DeviceChanges,
    DeviceRecord,
    NewActionEvent,
)
from patchgate.services.devices.commands import new_target_token
from patchgate.services.unit_of_work import UnitOfWork

__all__ = ["Removed", "RotatedToken", "remove_device", "rotate_token"]


@dataclass(frozen=True)
class Removed:
    """A device just removed, and the actions that were closed with it."""

    device: DeviceRecord
    cancelled_actions: tuple[int, ...]


@dataclass(frozen=True)
class RotatedToken:
    """A device with its new target token (shown once)."""

    device: DeviceRecord
    token: str


def _live_device(uow: UnitOfWork, tenant: str, controller_id: str) -> DeviceRecord:
    device = uow.devices.get(tenant, controller_id, lock=True)
    if device is None:
        raise NotFound(f"no device {controller_id!r}")
    if device.removed_at is not None:
        raise Conflict(
            f"device {controller_id!r} was removed at {device.removed_at:%Y-%m-%dT%H:%M:%SZ}"
        )
    return device


def _close_open_actions(
    ctx: Context, uow: UnitOfWork, device: DeviceRecord, actor: str
) -> tuple[int, ...]:
    """Close the device's open actions as cancelled at once: a removed device never polls
    again, so no ``cancelAction`` could reach it."""
    now = ctx.clock()
    closed: list[int] = []
    for action in uow.actions.for_device(device.id, limit=50):
        if not action.active:
            continue
        uow.actions.update(
            action.id,
            ActionChanges(
                status=rules.Status.CANCELED.value,
                updated_at=now,
                active=False,
                result="canceled",
                closed_at=now,
                cancel_requested_at=now,
            ),
        )
        uow.actions.add_event(
            NewActionEvent(
                action_id=action.id,
                at=now,
                channel="server",
                details=[f"cancelled: device removed by {actor}"],
                status_after=rules.Status.CANCELED.value,
            )
        )
        closed.append(action.id)
    return tuple(closed)


def remove_device(
    ctx: Context,
    controller_id: str,
    *,
    reason: str = "",
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> Removed:
    """Decommission a device: its token stops working at once, its open actions are
    cancelled, and it leaves the fleet's counts; its history stays."""
    now = ctx.clock()
    with ctx.uow() as uow:
        device = _live_device(uow, tenant, controller_id)
        closed = _close_open_actions(ctx, uow, device, actor)
        uow.devices.update(
            device.id, DeviceChanges(token_hash=None, removed_at=now, open_action_id=None)
        )
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="device.remove",
            subject=f"device:{controller_id}",
            details={"reason": reason, "cancelled_actions": list(closed)},
        )
        removed = uow.devices.get_by_id(device.id)
        uow.commit()
    assert removed is not None
    return Removed(removed, closed)


def rotate_token(
    ctx: Context, controller_id: str, *, tenant: str = DEFAULT_TENANT, actor: str
) -> RotatedToken:
    """Give the device a new target token (shown once); the old one stops at once."""
    token = new_target_token()
    with ctx.uow() as uow:
        device = _live_device(uow, tenant, controller_id)
        uow.devices.update(device.id, DeviceChanges(token_hash=hash_token(token)))
        audit.record(
            ctx, uow, actor=actor, action="device.rotate_token", subject=f"device:{controller_id}"
        )
        updated = uow.devices.get_by_id(device.id)
        uow.commit()
    assert updated is not None
    return RotatedToken(updated, token)
