"""The device side of hawkBit's DDI API, as use cases (the HTTP shapes live in
``entrypoints/ddi``).

The poll of a known device reads one row (``DeviceRepository.auth_by_*``: device, tenant,
open action and state version in one statement) and writes nothing; last-seen is buffered
in :class:`LastSeenBuffer` and written in batches. When the state version in that row is
newer than the snapshot's, the snapshot is rebuilt before ``decide`` runs, so a halt that
has committed is obeyed by the next poll (docs/ddi.md, "The poll path").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from patchgate.domain import actions as rules
from patchgate.domain.campaigns import (
    NO_CAMPAIGN,
    Decision,
    Offer,
    Snapshot,
    StopFacts,
    stop_cancel,
)
from patchgate.domain.errors import PatchgateError, Unauthorized
from patchgate.services import actions as action_service
from patchgate.services.access import hash_token
from patchgate.services.context import Context
from patchgate.services.ddi_actions import (
    AutoConfirm,
    DeploymentView,
    Feedback,
    auto_confirm_state,
    cancel_feedback,
    cancel_request,
    confirmation,
    confirmation_feedback,
    deployment,
    deployment_feedback,
    installed,
    set_auto_confirm,
)
from patchgate.services.ddi_auth import (
    UNAUTHORIZED,
    AuthLookup,
    Caller,
    ProxyIdentity,
    auth_check,
    auth_lookup,
    authenticate,
    authenticate_async,
    tenant_key,
)
from patchgate.services.ddi_device import (
    Health,
    OfflineInstall,
    artifact_for,
    config_data,
    device_health,
    installed_version,
    module_artifacts,
    release_health,
    report_health,
)
from patchgate.services.device_ports import ActionRecord, DeviceAuthReader, DeviceAuthRow, NewDevice
from patchgate.services.devices import check_controller_id
from patchgate.services.state import VersionedCache

# The device resources live in ddi_auth, ddi_actions and ddi_device; their names are
# kept here too, so ``ddi.deployment_feedback`` and friends read as before.
__all__ = [
    "UNAUTHORIZED",
    "AuthLookup",
    "AutoConfirm",
    "Caller",
    "DeploymentView",
    "Feedback",
    "Health",
    "OfflineInstall",
    "Poller",
    "ProxyIdentity",
    "artifact_for",
    "auth_check",
    "auth_lookup",
    "authenticate",
    "authenticate_async",
    "auto_confirm_state",
    "cancel_feedback",
    "cancel_request",
    "config_data",
    "confirmation",
    "confirmation_feedback",
    "deployment",
    "deployment_feedback",
    "device_health",
    "hash_token",
    "installed",
    "installed_version",
    "module_artifacts",
    "release_health",
    "report_health",
    "rules",
    "set_auto_confirm",
    "tenant_key",
]


# --- the poll ------------------------------------------------------------------------------


# The campaign engine's seam (docs/ddi.md): ``decide`` answers a poll from the row the
# poll read (the device and its open action) and the snapshot (the campaign core's
# ``Snapshot``): an offer, a cancellation of the open action, or nothing; ``create`` turns
# an ``Offer`` into the device's action (None: nothing after all).
Decide = Callable[[DeviceAuthRow, Snapshot, datetime], Decision]
CreateAction = Callable[[Context, DeviceAuthRow, Offer], ActionRecord | None]
_NOTHING = Decision(None, NO_CAMPAIGN)


def offer_nothing(_row: DeviceAuthRow, _snapshot: Snapshot, _now: datetime) -> Decision:
    """The decision while no campaign engine is plugged in: nothing to offer."""
    return _NOTHING


@dataclass(frozen=True)
class Pending:
    """A poll that must write, as :meth:`Poller.prepare` decided it: the device must be
    registered (``decision`` None), or the decision offers or cancels something."""

    decision: Decision | None


def create_action(ctx: Context, row: DeviceAuthRow, offer: Offer) -> ActionRecord | None:
    """The default ``create``: the offer becomes an action as it is."""
    assert row.device_id is not None
    return action_service.create_from_offer(
        ctx, row.device_id, offer, actor=f"campaign:{offer.campaign_id}"
    )


def _empty(version: int) -> Snapshot:
    return Snapshot.build(version, ())


# The in-memory snapshot of what is running, rebuilt when the state version moves.
SnapshotCache = VersionedCache[Snapshot]


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
        try:
            with ctx.uow() as uow:
                uow.devices.touch_many(seen)
                uow.commit()
        except Exception:
            # Not written (the database restarting, say): kept for the next flush, where a
            # time noted since stays, being the later one.
            with self._lock:
                for device_id, when in seen.items():
                    self._seen.setdefault(device_id, when)
            raise
        return len(seen)


@dataclass
class Poller:
    """What a server process keeps for the poll: the snapshot, the decision function of the
    campaign engine, and the last-seen buffer."""

    ctx: Context
    reader: DeviceAuthReader | None = None
    decide: Decide = offer_nothing
    snapshots: SnapshotCache = field(default_factory=lambda: SnapshotCache(_empty))
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

    def authenticate(
        self,
        tenant: str,
        controller_id: str,
        authorization: str | None,
        proxy: ProxyIdentity | None = None,
        trusted_authorities: Sequence[str] = (),
    ) -> Caller:
        """The request's one read, through the prepared reader when one is plugged in."""
        return authenticate(
            self.ctx,
            tenant,
            controller_id,
            authorization,
            self.reader,
            proxy=proxy,
            trusted_authorities=trusted_authorities,
        )

    def prepare(self, caller: Caller) -> rules.PollState | Pending:
        """The poll's answer when it needs no write (the campaign core decided nothing new
        for the device), else what :meth:`poll` must do. The decision is made here, once;
        pure apart from the last-seen note."""
        row = caller.row
        if row.device_id is None:
            return Pending(None)
        now = self.ctx.clock()
        self.last_seen.note(row.device_id, now, row.last_seen)
        if row.action_id is not None and row.action_campaign_id is None:
            return _state(row)  # an action assigned by hand: the campaigns have no say
        snapshot = self.snapshots.get(row.state_version)
        decision = self.decide(row, snapshot, now)
        if decision.offer is None and decision.cancel is None:
            return _state(row)
        if decision.cancel is not None and _stop_cancelled(row, snapshot):
            # Its campaign's halt (or cancellation) cancelled it at that commit; the row is
            # marked by the sweep or the next write (docs/campaigns.md, "Halt").
            return replace(_state(row), open_action_status=rules.Status.CANCELING.value)
        return Pending(decision)

    def poll(self, caller: Caller, pending: Pending | None = None) -> rules.PollState:
        """Answer a base poll: register the device if it is new (gateway or anonymous),
        then carry out the decision (``pending``, from :meth:`prepare`; made now if not
        given): cancel the open action it names, or create the action it offers."""
        row = caller.row
        if row.device_id is None:
            if not caller.may_register:
                raise Unauthorized(UNAUTHORIZED)
            row = register(self.ctx, row, caller.controller_id)
            pending = None
        if pending is None or pending.decision is None:
            ready = self.prepare(Caller(row, caller.controller_id, caller.may_register))
            if isinstance(ready, rules.PollState):
                return ready
            pending = ready
        decision = pending.decision
        assert row.device_id is not None and decision is not None
        if decision.cancel is not None:
            return self._cancel(row, decision.cancel.action_id, decision.cancel.reason)
        assert decision.offer is not None
        action = self.create(self.ctx, row, decision.offer)
        if action is None:
            return _state(row)
        return rules.PollState(
            action.id,
            action.status,
            action.release_id,
            row.installed_action_id,
            row.config_requested,
        )

    def _cancel(self, row: DeviceAuthRow, action_id: int, reason: str) -> rules.PollState:
        """The core says: cancel the open action (its campaign halted, or a newer security
        release supersedes it). The answer carries the ``cancelAction`` link at once."""
        try:
            record = action_service.cancel(
                self.ctx, action_id, reason=f"campaign engine: {reason}", actor="campaign-engine"
            )
        except PatchgateError:
            return _state(row)  # closed meanwhile: the next poll reads it as it stands
        if not record.active:
            return replace(_state(row), open_action_id=None, open_action_status=None)
        return replace(_state(row), open_action_status=record.status)


def _stop_cancelled(row: DeviceAuthRow, snapshot: Snapshot) -> bool:
    """Whether the open action is one its campaign's stop cancelled
    (``domain.campaigns.stop_cancel``), as the snapshot knows the campaign."""
    plan = snapshot.by_id.get(row.action_campaign_id or 0)
    if plan is None or row.action_status is None or row.action_release_id is None:
        return False
    stop = StopFacts(
        plan.id, plan.state, plan.release.id, plan.progress.halted_at, plan.progress.finished_at
    )
    return stop_cancel(row.action_status, True, row.action_release_id, stop) is not None


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
