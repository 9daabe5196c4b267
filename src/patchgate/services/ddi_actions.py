"""A device's actions through DDI: ``deploymentBase``, ``cancelAction`` and
``confirmationBase`` with their feedback, and auto-confirm (docs/ddi.md, "Actions and their
rules"; the rules themselves are pure, in ``patchgate.domain.actions``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from patchgate.domain import actions as rules
from patchgate.domain.errors import Conflict, NotFound
from patchgate.services.context import Context
from patchgate.services.ddi_auth import Caller
from patchgate.services.device_ports import (
    ActionChanges,
    ActionEventRecord,
    ActionRecord,
    DeviceChanges,
    NewActionEvent,
    ReleaseView,
)

# hawkBit keeps at most this many messages in an ``actionHistory`` answer.
MAX_HISTORY_MESSAGES = 100


@dataclass(frozen=True)
class Feedback:
    """One DDI feedback message, validated by the entrypoint."""

    execution: rules.Execution
    finished: rules.Finished
    progress_cnt: int | None = None
    progress_of: int | None = None
    details: tuple[str, ...] = ()
    code: int | None = None


@dataclass(frozen=True)
class DeploymentView:
    """What ``deploymentBase``/``confirmationBase``/``installedBase`` show for an action;
    ``history`` holds the device's messages, newest first (``actionHistory``)."""

    action: ActionRecord
    release: ReleaseView
    download: str
    update: str
    maintenance_window: str | None
    history: tuple[str, ...]


def own_action(uow: Any, caller: Caller, action_id: int, *, lock: bool = False) -> ActionRecord:
    """The caller's action ``action_id``; another device's is ``NotFound``, as an unknown one."""
    action: ActionRecord | None = uow.actions.get(action_id, lock=lock)
    if action is None or action.device_id != caller.device_id:
        raise NotFound(f"no action {action_id} for this device")
    return action


def _history(uow: Any, action_id: int, count: int) -> tuple[str, ...]:
    if count == 0:
        return ()
    limit = MAX_HISTORY_MESSAGES if count < 0 else min(count, MAX_HISTORY_MESSAGES)
    events: list[ActionEventRecord] = list(uow.actions.events(action_id, limit=10_000))
    return rules.history_messages([(e.channel, e.details, e.code) for e in reversed(events)], limit)


def _view(uow: Any, ctx: Context, action: ActionRecord, history: int) -> DeploymentView:
    release = uow.catalog.get(action.release_id)
    if release is None:
        raise NotFound(f"no release for action {action.id}")
    window = rules.window_state(action.window_start, action.window_end, ctx.clock())
    return DeploymentView(
        action=action,
        release=release,
        download=action.download_type,
        update=rules.effective_update(action.update_type, window),
        maintenance_window=window,
        history=_history(uow, action.id, history),
    )


def deployment(ctx: Context, caller: Caller, action_id: int, *, history: int = 0) -> DeploymentView:
    """``deploymentBase/{actionId}``: any action of the device except one that waits for
    confirmation or is being (or was) cancelled, closed ones included, as hawkBit answers."""
    with ctx.read_uow() as uow:
        action = own_action(uow, caller, action_id)
        if action.status in (
            rules.Status.WAITING_CONFIRMATION,
            rules.Status.CANCELING,
            rules.Status.CANCELED,
        ):
            raise rules.ActionNotOffered(f"action {action_id} is not offered for deployment")
        return _view(uow, ctx, action, history)


def confirmation(
    ctx: Context, caller: Caller, action_id: int, *, history: int = 0
) -> DeploymentView:
    """``confirmationBase/{actionId}``: only while the action waits for confirmation."""
    with ctx.read_uow() as uow:
        action = own_action(uow, caller, action_id)
        if action.status != rules.Status.WAITING_CONFIRMATION:
            raise rules.ActionNotOffered(f"action {action_id} does not wait for confirmation")
        return _view(uow, ctx, action, history)


def installed(ctx: Context, caller: Caller, action_id: int, *, history: int = 0) -> DeploymentView:
    """``installedBase/{actionId}``: a finished action (not a failed, cancelled or
    download-only one, which installed nothing)."""
    with ctx.read_uow() as uow:
        action = own_action(uow, caller, action_id)
        if action.active or action.status != rules.Status.FINISHED:
            raise rules.ActionNotOffered(f"action {action_id} is not installed")
        return _view(uow, ctx, action, history)


def cancel_request(ctx: Context, caller: Caller, action_id: int) -> ActionRecord:
    """``cancelAction/{actionId}``: only while a cancellation is pending (or done)."""
    with ctx.read_uow() as uow:
        action = own_action(uow, caller, action_id)
    if action.status not in (rules.Status.CANCELING, rules.Status.CANCELED):
        raise rules.ActionNotOffered(f"no cancellation for action {action_id}")
    return action


def _same(last: ActionEventRecord | None, fb: Feedback) -> bool:
    return last is not None and (
        last.execution,
        last.finished,
        last.progress_cnt,
        last.progress_of,
        last.code,
        last.details,
    ) == (
        fb.execution.value,
        fb.finished.value,
        fb.progress_cnt,
        fb.progress_of,
        fb.code,
        fb.details,
    )


def _next_status(action: ActionRecord, fb: Feedback, channel: str) -> rules.Status:
    if not action.active and action.status != rules.Status.CANCELED:
        raise rules.ActionGone(f"action is already closed ({action.status})")
    if channel == "deployment":
        return rules.after_deployment_feedback(
            action.status, fb.execution, fb.finished, download_only=_download_only(action)
        )
    return rules.after_cancel_feedback(action.status, fb.execution, fb.finished)


def _download_only(action: ActionRecord) -> bool:
    return action.update_type == rules.HandlingType.SKIP and action.window_start is None


def _close(
    uow: Any, action: ActionRecord, new: rules.Status, changes: ActionChanges, now: datetime
) -> ActionChanges:
    """Close the action; a finished one installs its release on the device (its version,
    the ``installedBase`` link); finished and download-only ones ask for ``configData``.
    Returns the action's changes with the closing columns."""
    device = DeviceChanges(open_action_id=None)
    if new is rules.Status.FINISHED:
        release = uow.catalog.get(action.release_id)
        device = replace(
            device,
            installed_action_id=action.id,
            config_requested=True,
            installed_version=release.version if release else None,
        )
    elif new is rules.Status.DOWNLOADED:
        device = replace(device, config_requested=True)
    uow.devices.update(action.device_id, device)
    return replace(changes, active=False, closed_at=now, result=rules.result_of(new))


def _apply(
    ctx: Context, caller: Caller, action_id: int, fb: Feedback, channel: str
) -> rules.Status:
    now = ctx.clock()
    with ctx.uow() as uow:
        action = own_action(uow, caller, action_id, lock=True)
        new = _next_status(action, fb, channel)
        if new.value == action.status and _same(uow.actions.last_event(action_id, channel), fb):
            return new  # a repeated report: already recorded, nothing changes
        uow.actions.add_event(
            NewActionEvent(
                action_id=action_id,
                at=now,
                channel=channel,
                execution=fb.execution.value,
                finished=fb.finished.value,
                progress_cnt=fb.progress_cnt,
                progress_of=fb.progress_of,
                code=fb.code,
                details=list(fb.details),
                status_after=new.value,
            )
        )
        changes = ActionChanges(status=new.value, updated_at=now)
        if channel == "deployment":
            changes = replace(
                changes,
                last_execution=fb.execution.value,
                progress_cnt=fb.progress_cnt,
                progress_of=fb.progress_of,
            )
        if new.value != action.status and rules.closes(new, download_only=_download_only(action)):
            changes = _close(uow, action, new, changes, now)
        uow.actions.update(action_id, changes)
        uow.commit()
    return new


def deployment_feedback(ctx: Context, caller: Caller, action_id: int, fb: Feedback) -> rules.Status:
    """``deploymentBase/{actionId}/feedback``: record it and move the action as the rules
    say; ``ActionGone`` (410) for a closed action."""
    return _apply(ctx, caller, action_id, fb, "deployment")


def cancel_feedback(ctx: Context, caller: Caller, action_id: int, fb: Feedback) -> rules.Status:
    """``cancelAction/{actionId}/feedback``."""
    return _apply(ctx, caller, action_id, fb, "cancel")


def confirmation_feedback(
    ctx: Context,
    caller: Caller,
    action_id: int,
    *,
    confirmed: bool,
    code: int | None = None,
    details: tuple[str, ...] = (),
) -> rules.Status:
    """``confirmationBase/{actionId}/feedback``: the user's consent (or refusal)."""
    now = ctx.clock()
    with ctx.uow() as uow:
        action = own_action(uow, caller, action_id, lock=True)
        new = rules.after_confirmation(action.status, confirmed)
        uow.actions.add_event(
            NewActionEvent(
                action_id=action_id,
                at=now,
                channel="confirmation",
                execution="confirmed" if confirmed else "denied",
                code=code,
                details=list(details),
                status_after=new.value,
            )
        )
        uow.actions.update(action_id, ActionChanges(status=new.value, updated_at=now))
        uow.commit()
    return new


@dataclass(frozen=True)
class AutoConfirm:
    """A device's auto-confirm state."""

    active: bool
    initiator: str | None
    remark: str | None
    activated_at: datetime | None
    waiting_action_id: int | None
    waiting_release_id: int | None


def auto_confirm_state(ctx: Context, caller: Caller) -> AutoConfirm:
    """``confirmationBase``: whether auto-confirm is on, and the action waiting, if any."""
    with ctx.read_uow() as uow:
        device = uow.devices.get_by_id(caller.device_id)
        assert device is not None
        waiting = None
        if device.open_action_id is not None:
            action = uow.actions.get(device.open_action_id)
            if action and action.status == rules.Status.WAITING_CONFIRMATION:
                waiting = action
    return AutoConfirm(
        device.auto_confirm,
        device.auto_confirm_by,
        device.auto_confirm_remark,
        device.auto_confirm_at,
        waiting.id if waiting else None,
        waiting.release_id if waiting else None,
    )


def set_auto_confirm(
    ctx: Context,
    caller: Caller,
    active: bool,
    *,
    initiator: str | None = None,
    remark: str | None = None,
) -> None:
    """Switch auto-confirm on (confirming the action waiting now, as hawkBit does) or off.
    Switching it on while it is on is a ``Conflict`` (hawkBit: 409), so a second
    initiator does not silently replace the first."""
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id, lock=True)
        assert device is not None
        if active and device.auto_confirm:
            raise Conflict(
                f"auto-confirm is already active (by {device.auto_confirm_by or 'the device'})"
            )
        uow.devices.update(
            device.id,
            DeviceChanges(
                auto_confirm=active,
                auto_confirm_by=initiator if active else None,
                auto_confirm_remark=remark if active else None,
                auto_confirm_at=now if active else None,
            ),
        )
        if active and device.open_action_id is not None:
            action = uow.actions.get(device.open_action_id, lock=True)
            if action and action.status == rules.Status.WAITING_CONFIRMATION:
                uow.actions.update(
                    action.id, ActionChanges(status=rules.Status.OFFERED.value, updated_at=now)
                )
                uow.actions.add_event(
                    NewActionEvent(
                        action_id=action.id,
                        at=now,
                        channel="confirmation",
                        execution="confirmed",
                        details=[f"auto-confirmed ({initiator or 'device'})"],
                        status_after=rules.Status.OFFERED.value,
                    )
                )
        uow.commit()
