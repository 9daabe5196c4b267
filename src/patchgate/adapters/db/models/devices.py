"""The fleet: devices and their groups (PRODUCT.md §4).

Shared by the device API (which registers devices and keeps these rows current), the
vulnerability register (exposure counts) and the campaign engine (target selection).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk, str64, str255


class Device(Base):
    """A device as the server knows it. ``controller_id`` is the DDI controllerId.

    ``installed_version`` is what the device last reported (configData, installedBase, or a
    confirmed healthy update); ``hardware`` is its hardware model, which also ties it to the
    policy's products (each product lists its hardware models).
    """

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("tenant_id", "controller_id"),)

    id: Mapped[intpk]
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    controller_id: Mapped[str255]
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    hardware: Mapped[str | None] = mapped_column(String(128), index=True)
    installed_version: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    registered_at: Mapped[datetime]
    last_seen: Mapped[datetime | None]


class DeviceGroup(Base):
    """Membership of a device in a group or tag (``internal``, ``qa``, ``canary-optin``…)."""

    __tablename__ = "device_groups"
    __table_args__ = (Index("ix_device_groups_name", "name"),)

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str64] = mapped_column(primary_key=True)
