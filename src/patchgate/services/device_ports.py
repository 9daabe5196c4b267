"""Repository ports of the device API: devices, actions and their events, health reports,
and a read-only view of releases as DDI offers them."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from patchgate.domain import filters
from patchgate.services.device_import_ports import DeviceImportWriter
from patchgate.services.release_ports import ArtifactView as ArtifactView  # re-exported for DDI

# The tenant every installation has (hawkBit's name for it); DDI paths name the tenant.
DEFAULT_TENANT = "DEFAULT"


@dataclass(frozen=True)
class DeviceRecord:
    """A device as the management side shows it."""

    id: int
    tenant: str
    controller_id: str
    hardware: str | None
    installed_version: str | None
    groups: tuple[str, ...]
    attributes: dict[str, Any]
    registered_at: datetime
    last_seen: datetime | None
    open_action_id: int | None
    installed_action_id: int | None
    config_requested: bool
    auto_confirm: bool
    auto_confirm_by: str | None = None
    auto_confirm_remark: str | None = None
    auto_confirm_at: datetime | None = None
    removed_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceAuthRow:
    """Everything a DDI request needs, read in one statement: the tenant, the device (if
    known), its open action, and the state version (docs/ddi.md, "The poll path")."""

    state_version: int
    tenant_id: int
    tenant: str
    anonymous_ddi: bool
    gateway_token_hash: str | None
    device_id: int | None = None
    controller_id: str | None = None
    token_hash: str | None = None
    hardware: str | None = None
    installed_version: str | None = None
    groups: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    installed_action_id: int | None = None
    config_requested: bool = False
    auto_confirm: bool = False
    last_seen: datetime | None = None
    action_id: int | None = None
    action_status: str | None = None
    action_release_id: int | None = None
    action_campaign_id: int | None = None
    action_window_start: datetime | None = None
    # The device's attributes and operator metadata as stored JSON text (None: none), for
    # a campaign's device query (docs/device-filters.md "Campaigns on a filter").
    attributes_json: str | None = None
    metadata_json: str | None = None


@dataclass(frozen=True)
class NewDevice:
    """A device to register."""

    controller_id: str
    token_hash: str | None
    hardware: str | None
    installed_version: str | None
    groups: tuple[str, ...]


class Unset(enum.Enum):
    """The type of ``UNSET``."""

    UNSET = "unset"


# A change's field left at UNSET keeps the stored value (None is a value: it clears it).
UNSET = Unset.UNSET


def _set_fields(changes: Any) -> dict[str, Any]:
    return {f.name: v for f in fields(changes) if (v := getattr(changes, f.name)) is not UNSET}


@dataclass(frozen=True)
class DeviceChanges:
    """Columns of a device row to set; the rest stay as they are."""

    hardware: str | Unset | None = UNSET
    installed_version: str | Unset | None = UNSET
    attributes: dict[str, Any] | Unset = UNSET
    open_action_id: int | Unset | None = UNSET
    installed_action_id: int | Unset | None = UNSET
    config_requested: bool | Unset = UNSET
    auto_confirm: bool | Unset = UNSET
    auto_confirm_by: str | Unset | None = UNSET
    auto_confirm_remark: str | Unset | None = UNSET
    auto_confirm_at: datetime | Unset | None = UNSET
    token_hash: str | Unset | None = UNSET
    removed_at: datetime | Unset | None = UNSET

    def values(self) -> dict[str, Any]:
        """The fields to write, by column name."""
        return _set_fields(self)


@dataclass(frozen=True)
class NewActionRow:
    """An action to insert (a release offered to a device, or an offline install)."""

    tenant_id: int
    device_id: int
    release_id: int
    source: str
    status: str
    active: bool
    download_type: str
    update_type: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    campaign_id: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    result: str | None = None
    closed_at: datetime | None = None
    from_version: str | None = None


@dataclass(frozen=True)
class ActionChanges:
    """Columns of an action row to set; the rest stay as they are."""

    status: str | Unset = UNSET
    updated_at: datetime | Unset = UNSET
    active: bool | Unset = UNSET
    result: str | Unset | None = UNSET
    last_execution: str | Unset | None = UNSET
    progress_cnt: int | Unset | None = UNSET
    progress_of: int | Unset | None = UNSET
    closed_at: datetime | Unset | None = UNSET
    cancel_requested_at: datetime | Unset | None = UNSET

    def values(self) -> dict[str, Any]:
        """The fields to write, by column name."""
        return _set_fields(self)


@dataclass(frozen=True)
class NewActionEvent:
    """An entry to append to an action's history."""

    action_id: int
    at: datetime
    channel: str
    status_after: str
    execution: str | None = None
    finished: str | None = None
    progress_cnt: int | None = None
    progress_of: int | None = None
    code: int | None = None
    details: Sequence[str] = ()


@dataclass(frozen=True)
class NewHealthReport:
    """A health report to store."""

    device_id: int
    release_id: int | None
    at: datetime
    running_version: str | None = None
    boot_count: int | None = None
    uptime_s: float | None = None
    crash_count: int | None = None
    watchdog_count: int | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionRecord:
    """An action (a release offered to a device) as stored."""

    id: int
    tenant_id: int
    device_id: int
    release_id: int
    campaign_id: int | None
    source: str
    status: str
    active: bool
    download_type: str
    update_type: str
    window_start: datetime | None
    window_end: datetime | None
    result: str | None
    progress_cnt: int | None
    progress_of: int | None
    last_execution: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    cancel_requested_at: datetime | None
    created_by: str


@dataclass(frozen=True)
class ActionEventRecord:
    """One entry of an action's history."""

    id: int
    action_id: int
    at: datetime
    channel: str
    execution: str | None
    finished: str | None
    progress_cnt: int | None
    progress_of: int | None
    code: int | None
    details: tuple[str, ...]
    status_after: str


@dataclass(frozen=True)
class ReleaseView:
    """A release as DDI offers it."""

    id: int
    product: str
    version: str
    type: str
    state: str
    hardware: tuple[str, ...]
    artifacts: tuple[ArtifactView, ...]


@dataclass(frozen=True)
class HealthRecord:
    """One health report."""

    id: int
    device_id: int
    release_id: int | None
    at: datetime
    running_version: str | None
    boot_count: int | None
    uptime_s: float | None
    crash_count: int | None
    watchdog_count: int | None
    metrics: dict[str, Any]


class DeviceAuthReader(abc.ABC):
    """The poll's one read, outside any unit of work (the hot path): by target token, or by
    tenant and controllerId. Implementations prepare the statement once."""

    @abc.abstractmethod
    def by_token(self, tenant: str, token_hash: str) -> DeviceAuthRow | None:
        """Like ``DeviceRepository.auth_by_token``."""

    @abc.abstractmethod
    def by_controller(self, tenant: str, controller_id: str) -> DeviceAuthRow | None:
        """Like ``DeviceRepository.auth_by_controller``."""


class AsyncDeviceAuthReader(abc.ABC):
    """:class:`DeviceAuthReader` for the event loop: the same one read, awaited, so the loop
    answers other requests while the database works (PostgreSQL)."""

    @abc.abstractmethod
    async def by_token(self, tenant: str, token_hash: str) -> DeviceAuthRow | None:
        """Like ``DeviceRepository.auth_by_token``."""

    @abc.abstractmethod
    async def by_controller(self, tenant: str, controller_id: str) -> DeviceAuthRow | None:
        """Like ``DeviceRepository.auth_by_controller``."""


class DeviceRepository(abc.ABC):
    """Devices and their groups."""

    @abc.abstractmethod
    def auth_by_token(self, tenant: str, token_hash: str) -> DeviceAuthRow | None:
        """The tenant, the device holding this target token in it, and the state version."""

    @abc.abstractmethod
    def auth_by_controller(self, tenant: str, controller_id: str) -> DeviceAuthRow | None:
        """The tenant (None if unknown), the device with this controllerId if any, and the
        state version."""

    @abc.abstractmethod
    def add(self, tenant_id: int, device: NewDevice, now: datetime) -> int:
        """Insert a device; returns its id."""

    @abc.abstractmethod
    def import_writer(self, tenant_id: int, now: datetime) -> DeviceImportWriter:
        """A bulk import into the tenant, in this transaction (docs/devices.md)."""

    @abc.abstractmethod
    def get(self, tenant: str, controller_id: str, *, lock: bool = False) -> DeviceRecord | None:
        """A device by controllerId (``lock``: for update in this transaction)."""

    @abc.abstractmethod
    def get_by_id(self, device_id: int, *, lock: bool = False) -> DeviceRecord | None:
        """A device by its id."""

    @abc.abstractmethod
    def list(
        self,
        tenant: str,
        *,
        group: str | None = None,
        after: str | None = None,
        limit: int = 1000,
        query: filters.Expression | None = None,
    ) -> Sequence[DeviceRecord]:
        """Devices of a tenant (of one group, matching a device query), by controllerId,
        those after ``after`` only (keyset paging: the read starts at ``after`` in the
        index, whatever the offset)."""

    @abc.abstractmethod
    def set_groups(self, device_id: int, groups: Sequence[str]) -> None:
        """Replace the device's groups (rows and the copy on the device row)."""

    @abc.abstractmethod
    def update(self, device_id: int, changes: DeviceChanges) -> None:
        """Set the changed columns of the device row."""

    @abc.abstractmethod
    def touch_many(self, seen: Mapping[int, datetime]) -> None:
        """Write last-seen times in one batch."""

    @abc.abstractmethod
    def census(self) -> Mapping[tuple[str | None, str | None], int]:
        """Devices not removed, of every tenant, counted by (hardware model, installed
        version): one aggregate, answered from an index without reading the table."""


class ActionRepository(abc.ABC):
    """Actions and their event history."""

    @abc.abstractmethod
    def add(self, action: NewActionRow) -> ActionRecord:
        """Insert an action."""

    @abc.abstractmethod
    def get(self, action_id: int, *, lock: bool = False) -> ActionRecord | None:
        """An action by id."""

    @abc.abstractmethod
    def update(self, action_id: int, changes: ActionChanges) -> None:
        """Set the changed columns of the action row."""

    @abc.abstractmethod
    def for_device(self, device_id: int, *, limit: int = 50) -> Sequence[ActionRecord]:
        """A device's actions, newest first."""

    @abc.abstractmethod
    def open_for_campaign(
        self, campaign_id: int, created_before: datetime, *, limit: int
    ) -> Sequence[ActionRecord]:
        """A campaign's open actions created before ``created_before``, oldest first (at
        most ``limit``): those a campaign's in-progress timeout has run out on."""

    @abc.abstractmethod
    def add_event(self, event: NewActionEvent) -> None:
        """Append an entry to an action's history."""

    @abc.abstractmethod
    def last_event(self, action_id: int, channel: str) -> ActionEventRecord | None:
        """The newest entry of a channel."""

    @abc.abstractmethod
    def events(self, action_id: int, *, limit: int = 100) -> Sequence[ActionEventRecord]:
        """An action's history, oldest first (the newest ``limit``)."""


class HealthRepository(abc.ABC):
    """Health telemetry."""

    @abc.abstractmethod
    def add(self, report: NewHealthReport) -> None:
        """Store one report."""

    @abc.abstractmethod
    def for_device(self, device_id: int, *, limit: int = 50) -> Sequence[HealthRecord]:
        """A device's reports, newest first."""

    @abc.abstractmethod
    def for_release(
        self, release_id: int, *, since: datetime | None = None
    ) -> Sequence[HealthRecord]:
        """Reports from devices running a release (for the campaign gates)."""


class ReleaseCatalog(abc.ABC):
    """Releases as DDI offers them (read-only; the releases capability writes them)."""

    @abc.abstractmethod
    def get(self, release_id: int) -> ReleaseView | None:
        """A release with its artifacts."""

    @abc.abstractmethod
    def find(self, product: str | None, version: str) -> Sequence[ReleaseView]:
        """Releases with this version (of this product, when given)."""

    @abc.abstractmethod
    def artifact(self, artifact_id: int) -> tuple[int, ArtifactView] | None:
        """(release id, artifact) for an artifact id."""
