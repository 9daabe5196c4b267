"""The device side of hawkBit's DDI API, as use cases (the HTTP shapes live in
``entrypoints/ddi``).

The poll of a known device reads one row (``DeviceRepository.auth_by_*``: device, tenant,
open action and state version in one statement) and writes nothing; last-seen is buffered
in :class:`LastSeenBuffer` and written in batches. When the state version in that row is
newer than the snapshot's, the snapshot is rebuilt before ``decide`` runs, so a halt that
has committed is obeyed by the next poll (ARCHITECTURE.md, decisions 1 and 2).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from patchgate.domain import actions as rules
from patchgate.domain.campaigns import Offer, Snapshot
from patchgate.domain.errors import InvalidInput, NotFound, Unauthorized
from patchgate.services import actions as action_service
from patchgate.services.access import hash_token
from patchgate.services.context import Context
from patchgate.services.device_ports import (
    ActionChanges,
    ActionEventRecord,
    ActionRecord,
    ArtifactView,
    AsyncDeviceAuthReader,
    DeviceAuthReader,
    DeviceAuthRow,
    DeviceChanges,
    DeviceRecord,
    HealthRecord,
    NewActionEvent,
    NewActionRow,
    NewDevice,
    NewHealthReport,
    ReleaseView,
)
from patchgate.services.devices import check_controller_id

# configData keys that also set a device's hardware model, installed version, slot scheme.
HARDWARE_KEYS = ("hardware", "hw_model", "hwModel", "hardware_model", "model", "board")
VERSION_KEYS = ("version", "sw_version", "swVersion", "fw_version", "installed_version")
MAX_ATTRIBUTES = 100
MAX_KEY = 128
MAX_VALUE = 512


# --- authentication ------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """An authenticated DDI request: the one row read for it, and how it authenticated."""

    row: DeviceAuthRow
    controller_id: str
    may_register: bool

    @property
    def device_id(self) -> int:
        if self.row.device_id is None:
            raise NotFound(f"no device {self.controller_id!r}")
        return self.row.device_id


UNAUTHORIZED = "authentication required"


class _UowAuthReader(DeviceAuthReader):
    """The same read through a unit of work (for callers without a prepared reader)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def by_token(self, tenant: str, token_hash: str) -> DeviceAuthRow | None:
        with self.ctx.read_uow() as uow:
            return uow.devices.auth_by_token(tenant, token_hash)

    def by_controller(self, tenant: str, controller_id: str) -> DeviceAuthRow | None:
        with self.ctx.read_uow() as uow:
            return uow.devices.auth_by_controller(tenant, controller_id)


@dataclass(frozen=True)
class AuthLookup:
    """What a request's ``Authorization`` asks for: its scheme and credential, and the one
    read it needs (by target-token hash when ``token_hash`` is set, else by controllerId)."""

    scheme: str
    credential: str
    token_hash: str | None


def auth_lookup(authorization: str | None) -> AuthLookup:
    scheme, _, credential = (authorization or "").strip().partition(" ")
    scheme = scheme.lower()
    credential = credential.strip()
    by_token = scheme == "targettoken" and credential
    return AuthLookup(scheme, credential, hash_token(credential) if by_token else None)


def auth_check(
    lookup: AuthLookup, row: DeviceAuthRow | None, controller_id: str, authorization: str | None
) -> Caller:
    """The decision on the row read for ``lookup``."""
    if lookup.token_hash is not None:
        if row is None or row.controller_id != controller_id:
            raise Unauthorized(UNAUTHORIZED)
        return Caller(row, controller_id, may_register=False)
    if row is None:
        raise Unauthorized(UNAUTHORIZED)
    if lookup.scheme == "gatewaytoken" and lookup.credential:
        expected = row.gateway_token_hash
        if expected and hmac.compare_digest(expected, hash_token(lookup.credential)):
            return Caller(row, controller_id, may_register=True)
        raise Unauthorized(UNAUTHORIZED)
    if not authorization and row.anonymous_ddi:
        return Caller(row, controller_id, may_register=True)
    raise Unauthorized(UNAUTHORIZED)


def authenticate(
    ctx: Context,
    tenant: str,
    controller_id: str,
    authorization: str | None,
    reader: DeviceAuthReader | None = None,
) -> Caller:
    """Check ``Authorization`` (``TargetToken`` or ``GatewayToken``, or none in a tenant in
    anonymous lab mode). Every failure is the same ``Unauthorized``, whether or not the
    tenant or the device exists. One read (``reader``, else a unit of work)."""
    reader = reader or _UowAuthReader(ctx)
    lookup = auth_lookup(authorization)
    if lookup.token_hash is not None:
        row = reader.by_token(tenant, lookup.token_hash)
    else:
        row = reader.by_controller(tenant, controller_id)
    return auth_check(lookup, row, controller_id, authorization)


async def authenticate_async(
    tenant: str, controller_id: str, authorization: str | None, reader: AsyncDeviceAuthReader
) -> Caller:
    """:func:`authenticate` with the one read awaited (the poll on PostgreSQL)."""
    lookup = auth_lookup(authorization)
    if lookup.token_hash is not None:
        row = await reader.by_token(tenant, lookup.token_hash)
    else:
        row = await reader.by_controller(tenant, controller_id)
    return auth_check(lookup, row, controller_id, authorization)


# --- the poll ------------------------------------------------------------------------------


# The campaign engine's seam (docs/ddi.md): ``decide`` answers a poll of a device without
# an open action from the row the poll read and the snapshot (the campaign core's
# ``Snapshot``); ``create`` turns its ``Offer`` into the device's action (None: nothing).
Decide = Callable[[DeviceAuthRow, Snapshot, datetime], Offer | None]
CreateAction = Callable[[Context, DeviceAuthRow, Offer], ActionRecord | None]


def offer_nothing(_row: DeviceAuthRow, _snapshot: Snapshot, _now: datetime) -> Offer | None:
    """The decision while no campaign engine is plugged in: nothing to offer."""
    return None


def create_action(ctx: Context, row: DeviceAuthRow, offer: Offer) -> ActionRecord | None:
    """The default ``create``: the offer becomes an action as it is."""
    assert row.device_id is not None
    return action_service.create_from_offer(
        ctx, row.device_id, offer, actor=f"campaign:{offer.campaign_id}"
    )


def _empty(version: int) -> Snapshot:
    return Snapshot.build(version, ())


class SnapshotCache:
    """The in-memory snapshot of what is running, rebuilt when the state version moves."""

    def __init__(self, load: Callable[[int], Snapshot] | None = None) -> None:
        self._load = load or _empty
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self.rebuilds = 0

    def get(self, version: int) -> Snapshot:
        """The snapshot for ``version`` (just read with the device row), rebuilt if older."""
        snapshot = self._snapshot
        if snapshot is not None and snapshot.state_version >= version:
            return snapshot
        with self._lock:
            if self._snapshot is None or self._snapshot.state_version < version:
                self._snapshot = self._load(version)
                self.rebuilds += 1
            return self._snapshot


# Last-seen is kept to this resolution: a device polling more often than this costs no
# write at all, so the write load is at most one row per device per interval.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


class LastSeenBuffer:
    """Last-seen times of polling devices, kept in memory and written in batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, datetime] = {}

    def note(self, device_id: int, now: datetime, stored: datetime | None = None) -> None:
        """Remember that the device was seen ``now`` (``stored``: the value its row holds,
        read with it; nothing to do while that is recent enough)."""
        if stored is not None and now - stored < LAST_SEEN_RESOLUTION:
            return
        self._seen[device_id] = now  # one dict store; atomic under the GIL

    def flush(self, ctx: Context) -> int:
        """Write what was noted since the last flush; returns how many devices."""
        with self._lock:
            seen, self._seen = self._seen, {}
        if not seen:
            return 0
        with ctx.uow() as uow:
            uow.devices.touch_many(seen)
            uow.commit()
        return len(seen)


@dataclass
class Poller:
    """What a server process keeps for the poll: the snapshot, the decision function of the
    campaign engine, and the last-seen buffer."""

    ctx: Context
    reader: DeviceAuthReader | None = None
    decide: Decide = offer_nothing
    snapshots: SnapshotCache = field(default_factory=SnapshotCache)
    last_seen: LastSeenBuffer = field(default_factory=LastSeenBuffer)
    create: CreateAction = create_action
    # Called after device feedback or a health report (the campaign engine evaluates its
    # gates then); never with a lock held, never raising into the request.
    on_report: Callable[[], None] | None = None

    def reported(self) -> None:
        """A device reported something the gates read."""
        if self.on_report is not None:
            self.on_report()

    def plug(
        self,
        decide: Decide,
        load_snapshot: Callable[[int], Snapshot],
        create: CreateAction | None = None,
    ) -> None:
        """Install the campaign engine's ``decide``, snapshot loader and action creator."""
        self.decide = decide
        self.snapshots = SnapshotCache(load_snapshot)
        if create is not None:
            self.create = create

    def authenticate(self, tenant: str, controller_id: str, authorization: str | None) -> Caller:
        """The request's one read, through the prepared reader when one is plugged in."""
        return authenticate(self.ctx, tenant, controller_id, authorization, self.reader)

    def answer_without_writing(self, caller: Caller) -> rules.PollState | None:
        """The poll's answer when it needs no write (a known device with an open action, or
        nothing to offer); None when the device must be registered or gets an offer, which
        :meth:`poll` then does. Pure apart from the last-seen note."""
        row = caller.row
        if row.device_id is None:
            return None
        self.last_seen.note(row.device_id, self.ctx.clock(), row.last_seen)
        if row.action_id is None:
            snapshot = self.snapshots.get(row.state_version)
            if self.decide(row, snapshot, self.ctx.clock()) is not None:
                return None
        return _state(row)

    def poll(self, caller: Caller) -> rules.PollState:
        """Answer a base poll: register the device if it is new (gateway or anonymous),
        ask ``decide`` when nothing is open, and create the action it offers."""
        row = caller.row
        now = self.ctx.clock()
        if row.device_id is None:
            if not caller.may_register:
                raise Unauthorized(UNAUTHORIZED)
            row = register(self.ctx, row, caller.controller_id)
        assert row.device_id is not None
        self.last_seen.note(row.device_id, now, row.last_seen)
        state = _state(row)
        if row.action_id is not None:
            return state
        snapshot = self.snapshots.get(row.state_version)
        offer = self.decide(row, snapshot, now)
        if offer is None:
            return state
        action = self.create(self.ctx, row, offer)
        if action is None:
            return state
        return rules.PollState(
            action.id,
            action.status,
            action.release_id,
            row.installed_action_id,
            row.config_requested,
        )


def _state(row: DeviceAuthRow) -> rules.PollState:
    return rules.PollState(
        open_action_id=row.action_id,
        open_action_status=row.action_status,
        open_action_release_id=row.action_release_id,
        installed_action_id=row.installed_action_id,
        config_requested=row.config_requested,
    )


def register(ctx: Context, row: DeviceAuthRow, controller_id: str) -> DeviceAuthRow:
    """Create a device on its first poll (gateway token or anonymous mode). A concurrent
    registration of the same controllerId is harmless: the second one reads the first.
    The controllerId of a removed device is refused (docs/devices.md)."""
    check_controller_id(controller_id)
    with ctx.uow() as uow:
        existing = uow.devices.get(row.tenant, controller_id)
        if existing is not None and existing.removed_at is not None:
            raise Unauthorized(UNAUTHORIZED)  # a removed device's ID does not come back
        if existing is None:
            uow.devices.add(
                row.tenant_id, NewDevice(controller_id, None, None, None, ()), ctx.clock()
            )
            uow.commit()
    with ctx.read_uow() as uow:
        fresh = uow.devices.auth_by_controller(row.tenant, controller_id)
    assert fresh is not None and fresh.device_id is not None
    return fresh


# --- deployment, cancel, confirmation ------------------------------------------------------


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
    """What ``deploymentBase``/``confirmationBase``/``installedBase`` show for an action."""

    action: ActionRecord
    release: ReleaseView
    download: str
    update: str
    maintenance_window: str | None
    history: tuple[ActionEventRecord, ...]


def _own_action(uow: Any, caller: Caller, action_id: int, *, lock: bool = False) -> ActionRecord:
    action: ActionRecord | None = uow.actions.get(action_id, lock=lock)
    if action is None or action.device_id != caller.device_id:
        raise NotFound(f"no action {action_id} for this device")
    return action


def _view(uow: Any, ctx: Context, action: ActionRecord, history: int) -> DeploymentView:
    release = uow.catalog.get(action.release_id)
    if release is None:
        raise NotFound(f"no release for action {action.id}")
    window = rules.window_state(action.window_start, action.window_end, ctx.clock())
    events: tuple[ActionEventRecord, ...] = ()
    if history != 0:
        events = tuple(uow.actions.events(action.id, limit=10_000 if history < 0 else history))
    return DeploymentView(
        action=action,
        release=release,
        download=action.download_type,
        update=rules.effective_update(action.update_type, window),
        maintenance_window=window,
        history=events,
    )


def deployment(ctx: Context, caller: Caller, action_id: int, *, history: int = 0) -> DeploymentView:
    """``deploymentBase/{actionId}``: only for an active action that does not wait for
    confirmation and is not being cancelled (hawkBit answers 404 otherwise)."""
    with ctx.read_uow() as uow:
        action = _own_action(uow, caller, action_id)
        if not action.active or action.status in (
            rules.Status.WAITING_CONFIRMATION,
            rules.Status.CANCELING,
        ):
            raise rules.ActionNotOffered(f"action {action_id} is not offered for deployment")
        return _view(uow, ctx, action, history)


def confirmation(
    ctx: Context, caller: Caller, action_id: int, *, history: int = 0
) -> DeploymentView:
    """``confirmationBase/{actionId}``: only while the action waits for confirmation."""
    with ctx.read_uow() as uow:
        action = _own_action(uow, caller, action_id)
        if action.status != rules.Status.WAITING_CONFIRMATION:
            raise rules.ActionNotOffered(f"action {action_id} does not wait for confirmation")
        return _view(uow, ctx, action, history)


def installed(ctx: Context, caller: Caller, action_id: int, *, history: int = 0) -> DeploymentView:
    """``installedBase/{actionId}``: a closed action that was not cancelled."""
    with ctx.read_uow() as uow:
        action = _own_action(uow, caller, action_id)
        if action.active or action.status == rules.Status.CANCELED:
            raise rules.ActionNotOffered(f"action {action_id} is not installed")
        return _view(uow, ctx, action, history)


def cancel_request(ctx: Context, caller: Caller, action_id: int) -> ActionRecord:
    """``cancelAction/{actionId}``: only while a cancellation is pending (or done)."""
    with ctx.read_uow() as uow:
        action = _own_action(uow, caller, action_id)
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


def _apply(
    ctx: Context, caller: Caller, action_id: int, fb: Feedback, channel: str
) -> rules.Status:
    now = ctx.clock()
    with ctx.uow() as uow:
        action = _own_action(uow, caller, action_id, lock=True)
        if channel == "deployment":
            new = rules.after_deployment_feedback(
                action.status,
                fb.execution,
                fb.finished,
                download_only=action.update_type == rules.HandlingType.SKIP
                and action.window_start is None,
            )
        else:
            new = rules.after_cancel_feedback(action.status, fb.execution, fb.finished)
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
        values: dict[str, Any] = {"status": new.value, "updated_at": now}
        if channel == "deployment":
            values.update(
                last_execution=fb.execution.value,
                progress_cnt=fb.progress_cnt,
                progress_of=fb.progress_of,
            )
        if rules.is_terminal(new):
            result = {"finished": "success", "error": "failure", "canceled": "canceled"}[new.value]
            values.update(active=False, closed_at=now, result=result)
            device: dict[str, Any] = {"open_action_id": None}
            if new is rules.Status.FINISHED:
                release = uow.catalog.get(action.release_id)
                device.update(
                    installed_action_id=action_id,
                    config_requested=True,
                    installed_version=release.version if release else None,
                )
            uow.devices.update(action.device_id, DeviceChanges(**device))
        uow.actions.update(action_id, ActionChanges(**values))
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
        action = _own_action(uow, caller, action_id, lock=True)
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
    """Switch auto-confirm on (confirming the action waiting now, as hawkBit does) or off."""
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id, lock=True)
        assert device is not None
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
                offered = rules.Status.OFFERED.value
                uow.actions.update(action.id, ActionChanges(status=offered, updated_at=now))
                uow.actions.add_event(
                    NewActionEvent(
                        action_id=action.id,
                        at=now,
                        channel="confirmation",
                        execution="confirmed",
                        details=[f"auto-confirmed ({initiator or 'device'})"],
                        status_after=offered,
                    )
                )
        uow.commit()


# --- configData, installedBase, health -----------------------------------------------------


def config_data(ctx: Context, caller: Caller, data: Mapping[str, str], mode: str) -> None:
    """``configData``: merge (default), replace or remove the device's attributes; known
    keys also set its hardware model and installed version."""
    if mode not in ("merge", "replace", "remove"):
        raise InvalidInput(f"unknown mode {mode!r} (merge, replace, remove)")
    for key, value in data.items():
        if not key or len(key) > MAX_KEY:
            raise InvalidInput(f"attribute names must be 1–{MAX_KEY} characters")
        if len(value) > MAX_VALUE:
            raise InvalidInput(f"attribute {key!r} is over {MAX_VALUE} characters")
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id, lock=True)
        assert device is not None
        if mode == "merge":
            attributes = {**device.attributes, **data}
        elif mode == "replace":
            attributes = dict(data)
        else:
            attributes = {k: v for k, v in device.attributes.items() if k not in data}
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidInput(f"a device keeps at most {MAX_ATTRIBUTES} attributes")
        values: dict[str, Any] = {"attributes": attributes, "config_requested": False}
        if mode != "remove":
            hardware = next((data[k] for k in HARDWARE_KEYS if data.get(k)), None)
            version = next((data[k] for k in VERSION_KEYS if data.get(k)), None)
            if hardware:
                values["hardware"] = hardware[:128]
            if version:
                values["installed_version"] = version[:128]
        uow.devices.update(device.id, DeviceChanges(**values))
        uow.commit()


def _releases_for(
    uow: Any, device: DeviceRecord, name: str | None, version: str
) -> list[ReleaseView]:
    """Releases of ``version`` (of product ``name``, if given) that fit the device's
    hardware (a release or device without hardware fits any)."""
    return [
        r
        for r in uow.catalog.find(name, version)
        if not r.hardware or not device.hardware or device.hardware in r.hardware
    ]


def installed_version(ctx: Context, caller: Caller, name: str | None, version: str) -> ActionRecord:
    """``PUT installedBase``: the device installed a release offline; record it as a
    closed, successful action. 404 when no such release is known."""
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id, lock=True)
        assert device is not None
        releases = _releases_for(uow, device, name, version)
        if not releases:
            raise NotFound(f"no release {name + ' ' if name else ''}{version}")
        release = releases[0]
        tenant = uow.tenants.get(device.tenant)
        assert tenant is not None
        action = uow.actions.add(
            NewActionRow(
                tenant_id=tenant.id,
                device_id=device.id,
                release_id=release.id,
                source="offline",
                status=rules.Status.FINISHED.value,
                active=False,
                download_type=rules.HandlingType.SKIP.value,
                update_type=rules.HandlingType.SKIP.value,
                result="success",
                created_at=now,
                updated_at=now,
                closed_at=now,
                created_by=f"device:{device.controller_id}",
            )
        )
        uow.actions.add_event(
            NewActionEvent(
                action_id=action.id,
                at=now,
                channel="server",
                details=["installed offline, reported through installedBase"],
                status_after=rules.Status.FINISHED.value,
            )
        )
        uow.devices.update(
            device.id,
            DeviceChanges(installed_version=release.version, installed_action_id=action.id),
        )
        uow.commit()
    return action


@dataclass(frozen=True)
class Health:
    """One health report, validated by the entrypoint."""

    running_version: str | None = None
    boot_count: int | None = None
    uptime_s: float | None = None
    crash_count: int | None = None
    watchdog_count: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def report_health(ctx: Context, caller: Caller, report: Health) -> int | None:
    """Store a health report, tied to the release the device runs (by the running version,
    else the installed one); returns that release's id, if known."""
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id)
        assert device is not None
        version = report.running_version or device.installed_version
        release_id: int | None = None
        if device.installed_action_id is not None:
            last = uow.actions.get(device.installed_action_id)
            release = uow.catalog.get(last.release_id) if last else None
            if release is not None and release.version == version:
                release_id = release.id
        if release_id is None and version:
            candidates = _releases_for(uow, device, None, version)
            release_id = candidates[0].id if len(candidates) == 1 else None
        uow.health.add(
            NewHealthReport(
                device_id=device.id,
                release_id=release_id,
                at=now,
                running_version=report.running_version,
                boot_count=report.boot_count,
                uptime_s=report.uptime_s,
                crash_count=report.crash_count,
                watchdog_count=report.watchdog_count,
                metrics=dict(report.metrics),
            )
        )
        uow.commit()
    return release_id


def release_health(
    ctx: Context, release_id: int, *, since: datetime | None = None
) -> list[HealthRecord]:
    """Health reports of devices running a release (input to the campaign gates)."""
    with ctx.read_uow() as uow:
        return list(uow.health.for_release(release_id, since=since))


def device_health(ctx: Context, device_id: int) -> list[HealthRecord]:
    """A device's newest health reports."""
    with ctx.read_uow() as uow:
        return list(uow.health.for_device(device_id))


def artifact_for(ctx: Context, caller: Caller, module_id: int, filename: str) -> ArtifactView:
    """An artifact the device may download: one of a release it was offered."""
    with ctx.read_uow() as uow:
        found = uow.catalog.artifact(module_id)
        if found is None or found[1].filename != filename:
            raise NotFound("no such artifact")
        release_id, artifact = found
        offered = any(a.release_id == release_id for a in uow.actions.for_device(caller.device_id))
    if not offered:
        raise NotFound("no such artifact")
    return artifact
