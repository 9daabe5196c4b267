"""The fleet: devices and their groups (docs/devices.md), and what the device API keeps about
them: actions (a release offered to a device), their feedback history as events, and health
telemetry.

Shared by the device API (which registers devices and keeps these rows current), the
vulnerability register (exposure counts) and the campaign engine (target selection).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk, str64, str255


class Device(Base):
    """A device as the server knows it. ``controller_id`` is the DDI controllerId.

    ``installed_version`` is what the device last reported (configData, installedBase, or a
    confirmed healthy update); ``hardware`` is its hardware model, which also ties it to the
    policy's products (each product lists its hardware models).

    The poll reads this row alone (with the state version in the same statement), so what a
    poll needs is kept here: ``open_action_id`` (the one action not yet closed, if any),
    ``installed_action_id`` (the last action that finished successfully), ``group_names``
    (a copy of the ``device_groups`` rows, written in the same transaction), and the flags
    ``config_requested`` and ``auto_confirm``; and what a campaign's device query may read
    (``attributes``, ``meta``: the operator's metadata).

    A removed (decommissioned) device keeps its row, with ``removed_at`` set and no token,
    so its actions, health reports and campaign figures stay as they were; it no longer
    counts in the fleet (docs/devices.md, "Removing a device").
    """

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "controller_id"),
        # The fleet by product and version (exposure, the /metrics gauges) from the index
        # alone, without reading the table (docs/metrics.md).
        Index("ix_devices_hardware_version", "hardware", "installed_version", "removed_at"),
        # Which device holds an action open, or runs what it installed: looked up when
        # action history is pruned (docs/deploy.md, "Pruning action history").
        Index("ix_devices_open_action", "open_action_id"),
        Index("ix_devices_installed_action", "installed_action_id"),
    )

    id: Mapped[intpk]
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    controller_id: Mapped[str255]
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    hardware: Mapped[str | None] = mapped_column(String(128), index=True)
    installed_version: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Operator metadata (docs/device-filters.md "Metadata"): key → text, read by the poll.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    registered_at: Mapped[datetime]
    last_seen: Mapped[datetime | None]
    group_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    open_action_id: Mapped[int | None] = mapped_column(BigInteger)
    installed_action_id: Mapped[int | None] = mapped_column(BigInteger)
    config_requested: Mapped[bool] = mapped_column(default=True)
    auto_confirm: Mapped[bool] = mapped_column(default=False)
    auto_confirm_by: Mapped[str | None] = mapped_column(String(255))
    auto_confirm_remark: Mapped[str | None] = mapped_column(Text)
    auto_confirm_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]


class DeviceGroup(Base):
    """Membership of a device in a group or tag (``internal``, ``qa``, ``canary-optin``…)."""

    __tablename__ = "device_groups"
    __table_args__ = (Index("ix_device_groups_name", "name"),)

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str64] = mapped_column(primary_key=True)


class Action(Base):
    """hawkBit's "action": one release offered to one device, and where it stands.

    ``status`` follows ``patchgate.domain.actions`` (``waiting_confirmation``, ``offered``,
    ``downloading``, ``downloaded``, ``running``, ``canceling``, ``finished``, ``error``,
    ``canceled``); ``active`` is false once it is closed. ``campaign_id`` names the campaign
    that made the offer (no foreign key: the campaign tables belong to the campaign engine).
    ``succeeded_at`` is the time of the action's first successful finish (a deployment
    feedback ``closed``/``success`` that moved it to ``finished``), written with that
    feedback's event and never changed after.
    """

    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_device_created", "device_id", "id"),
        Index("ix_actions_release_status", "release_id", "status"),
        # Closed actions by age, for pruning (docs/deploy.md, "Pruning action history").
        Index("ix_actions_closed_at", "closed_at"),
        # A campaign's actions counted by status from the index alone (docs/deploy.md,
        # "Indexes at a million devices": 2.3 s → 88 ms at 333,000 actions a campaign);
        # with ``active`` and the release, which a stopped campaign's reads need to say
        # an action is cancelled (docs/campaigns.md, "Halt"), still without the rows.
        Index("ix_actions_campaign_status", "campaign_id", "status", "active", "release_id"),
        # A release's successful finishes with their devices, from the index alone: the
        # fix rollout of a vulnerability (docs/console.md, "Performance"). Only actions
        # that succeeded are in it: offers and the feedback before a finish leave it alone.
        Index(
            "ix_actions_release_succeeded",
            "release_id",
            "succeeded_at",
            "device_id",
            sqlite_where=text("succeeded_at IS NOT NULL"),
            postgresql_where=text("succeeded_at IS NOT NULL"),
        ),
    )

    id: Mapped[intpk]
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    campaign_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    download_type: Mapped[str] = mapped_column(String(8))
    update_type: Mapped[str] = mapped_column(String(8))
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(String(16))
    progress_cnt: Mapped[int | None]
    progress_of: Mapped[int | None]
    last_execution: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    created_by: Mapped[str255]
    # The version the device reported running when the action was created: with the
    # releases its successful actions installed, the device's own history of what it ran
    # (the revert target rule, docs/campaigns.md "Revert").
    from_version: Mapped[str | None] = mapped_column(String(128))


class ActionEvent(Base):
    """One entry of an action's history: device feedback or a server-side step.

    Stage counts and gate figures are computed from these rows (docs/gates.md), so every
    figure can be traced to the devices behind it.
    """

    __tablename__ = "action_events"
    __table_args__ = (Index("ix_action_events_action", "action_id", "id"),)

    id: Mapped[intpk]
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(16))
    execution: Mapped[str | None] = mapped_column(String(16))
    finished: Mapped[str | None] = mapped_column(String(16))
    progress_cnt: Mapped[int | None]
    progress_of: Mapped[int | None]
    code: Mapped[int | None]
    details: Mapped[list[str]] = mapped_column(JSON, default=list)
    status_after: Mapped[str] = mapped_column(String(32))


class HealthReport(Base):
    """Post-update health telemetry from a device, tied to the release it was running."""

    __tablename__ = "health_reports"
    __table_args__ = (
        Index("ix_health_reports_device", "device_id", "id"),
        Index("ix_health_reports_release", "release_id", "at"),
    )

    id: Mapped[intpk]
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    at: Mapped[datetime]
    running_version: Mapped[str | None] = mapped_column(String(128))
    boot_count: Mapped[int | None] = mapped_column(BigInteger)
    uptime_s: Mapped[float | None]
    crash_count: Mapped[int | None] = mapped_column(BigInteger)
    watchdog_count: Mapped[int | None] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
