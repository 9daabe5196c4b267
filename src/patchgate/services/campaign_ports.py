"""Repository port of the campaign engine: campaigns, and the reads that gates, cohort
cuts and counts need from the fleet and its actions."""

from __future__ import annotations

import abc
import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final

from patchgate.domain import filters
from patchgate.services.figure_ports import FigureRepository


@dataclass(frozen=True)
class CampaignRecord:
    """A campaign as stored (see ``adapters/db/models/campaigns.py``)."""

    id: int
    release_id: int
    product: str
    salt: str
    stages: list[dict[str, Any]]
    stage_spec: str
    cuts: list[dict[str, Any]]
    selector: dict[str, Any]
    delivery: dict[str, Any]
    state: str
    stage_index: int
    stage_started_at: datetime | None
    approved: bool
    started_at: datetime | None
    halted_at: datetime | None
    halt_reason: str | None
    finished_at: datetime | None
    floor_raised: bool
    revert_to_release_id: int | None
    supersedes_id: int | None
    priority_versions: list[str]
    last_gate: dict[str, Any] | None
    deadline_at: datetime | None
    schedule: dict[str, Any] | None
    warnings: list[str]
    rate_tokens: float | None
    rate_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime


@dataclass(frozen=True)
class NewCampaign:
    """A draft campaign to insert: the plan ``create`` made."""

    release_id: int
    product: str
    salt: str
    stages: list[dict[str, Any]]
    stage_spec: str
    cuts: list[dict[str, Any]]
    selector: dict[str, Any]
    delivery: dict[str, Any]
    supersedes_id: int | None
    priority_versions: list[str]
    deadline_at: datetime | None
    schedule: dict[str, Any] | None
    warnings: list[str]
    created_at: datetime
    created_by: str
    updated_at: datetime
    state: str = "draft"
    stage_index: int = 0
    approved: bool = False
    floor_raised: bool = False


class _Unset(enum.Enum):
    UNSET = 0


UNSET: Final = _Unset.UNSET


@dataclass(frozen=True)
class CampaignChanges:
    """Columns of a campaign to change; a field left ``UNSET`` is not touched (``None`` is
    a value: it clears the column)."""

    state: str | _Unset = UNSET
    stage_index: int | _Unset = UNSET
    stage_started_at: datetime | _Unset | None = UNSET
    approved: bool | _Unset = UNSET
    started_at: datetime | _Unset | None = UNSET
    halted_at: datetime | _Unset | None = UNSET
    halt_reason: str | _Unset | None = UNSET
    finished_at: datetime | _Unset | None = UNSET
    floor_raised: bool | _Unset = UNSET
    cuts: list[dict[str, Any]] | _Unset = UNSET
    last_gate: dict[str, Any] | _Unset | None = UNSET
    revert_to_release_id: int | _Unset | None = UNSET
    rate_tokens: float | _Unset | None = UNSET
    rate_at: datetime | _Unset | None = UNSET
    updated_at: datetime | _Unset = UNSET

    def values(self) -> dict[str, Any]:
        """The columns to set, by name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not UNSET}


@dataclass(frozen=True)
class FleetDevice:
    """What cohort cuts and eligibility need of a device."""

    id: int
    controller_id: str
    hardware: str | None
    installed_version: str | None
    groups: tuple[str, ...]
    tenant: str = "DEFAULT"
    # Read only for a campaign with a device query (``scan_devices(query=…)``).
    attributes: Mapping[str, object] = field(default_factory=dict)
    metadata: Mapping[str, object] = field(default_factory=dict)
    last_seen: datetime | None = None


@dataclass(frozen=True)
class ActionStep:
    """One recorded step of an action (an ``action_events`` row)."""

    at: datetime
    status_after: str
    execution: str | None
    finished: str | None


@dataclass(frozen=True)
class CampaignAction:
    """One action a campaign made, with its device and its history."""

    id: int
    device_id: int
    controller_id: str
    groups: tuple[str, ...]
    release_id: int
    status: str
    created_at: datetime
    steps: tuple[ActionStep, ...]
    campaign_id: int = 0
    active: bool = True


@dataclass(frozen=True)
class HealthSample:
    """One health report, reduced to what the crash comparison reads."""

    device_id: int
    at: datetime
    running_version: str | None
    crashes: int
    uptime_s: float | None


@dataclass(frozen=True)
class CancelledActions:
    """What :meth:`CampaignRepository.cancel_pending` marked: action ids (and their devices)
    now ``canceling`` and now ``canceled``."""

    canceling: tuple[tuple[int, int], ...] = ()
    canceled: tuple[tuple[int, int], ...] = ()

    @property
    def count(self) -> int:
        return len(self.canceling) + len(self.canceled)


class CampaignRepository(FigureRepository):
    """Campaign rows, and the fleet reads of the campaign engine."""

    @abc.abstractmethod
    def add(self, new: NewCampaign) -> int:
        """Insert a campaign; returns its id."""

    @abc.abstractmethod
    def get(
        self, campaign_id: int, *, lock: bool = False, share: bool = False
    ) -> CampaignRecord | None:
        """One campaign; ``lock`` takes its row lock (``SELECT … FOR UPDATE``), ``share`` a
        shared lock (``FOR SHARE``: a transition waits for it, other readers do not)."""

    @abc.abstractmethod
    def list(self, *, states: Collection[str] | None = None) -> Sequence[CampaignRecord]:
        """Campaigns, oldest first, optionally of some states only."""

    @abc.abstractmethod
    def page(self, *, after_id: int, limit: int) -> Sequence[CampaignRecord]:
        """Campaigns with ids above ``after_id``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    def update(self, campaign_id: int, changes: CampaignChanges) -> None:
        """Change columns of one campaign (those ``changes`` sets)."""

    @abc.abstractmethod
    def scan_devices(
        self,
        *,
        after_id: int,
        limit: int,
        hardware: Collection[str] | None,
        query: filters.Expression | None = None,
    ) -> Sequence[FleetDevice]:
        """A batch of devices by id (``hardware``: only these models, None: any). With a
        device ``query``, the batch holds at least the devices it selects (a superset
        where SQL cannot say it exactly), with their attributes, metadata and last-seen;
        ``limit`` counts the rows read, so a short batch is the end."""

    @abc.abstractmethod
    def known_groups(self) -> set[str]:
        """Every group name some device is in."""

    @abc.abstractmethod
    def actions(self, campaign_id: int) -> Sequence[CampaignAction]:
        """The campaign's actions with their steps, oldest first."""

    @abc.abstractmethod
    def device_actions(self, device_id: int, *, limit: int) -> Sequence[CampaignAction]:
        """The device's latest ``limit`` campaign actions with their steps, oldest first."""

    @abc.abstractmethod
    def cancel_pending(
        self,
        campaign_id: int,
        *,
        statuses: Collection[str],
        now: datetime,
        detail: str,
        release_id: int | None = None,
        limit: int | None = None,
    ) -> CancelledActions:
        """In the caller's transaction, mark the open actions of the campaign (of
        ``release_id`` only, when given; the first ``limit`` by id, when given) whose
        status is one of ``statuses`` for cancellation, in one statement per resulting
        status: one the device never accepted (``waiting_confirmation``) is closed as
        ``canceled`` at once, any other waits in ``canceling`` for the device's
        ``cancelAction`` feedback. Each gets a history step saying ``detail`` at ``now``."""

    @abc.abstractmethod
    def count_pending(
        self, campaign_id: int, *, statuses: Collection[str], release_id: int | None = None
    ) -> int:
        """How many open actions of the campaign (of ``release_id``) have these statuses."""

    @abc.abstractmethod
    def succeeded_releases(self, release_ids: Collection[int]) -> set[int]:
        """Of these releases, those some device finished an action for successfully."""

    @abc.abstractmethod
    def health_since(self, since: datetime) -> Sequence[HealthSample]:
        """Health reports received since ``since``."""

    @abc.abstractmethod
    def finished_campaigns(self, device_id: int) -> set[int]:
        """Campaigns with a closed action on this device."""
