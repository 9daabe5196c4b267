"""Saved device queries (docs/device-filters.md "Saved filters"): hawkBit's target filter
queries, named per tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk, str64, str255


class SavedFilter(Base):
    """A named device query of a tenant; ``query`` is kept in its canonical form."""

    __tablename__ = "saved_filters"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[intpk]
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str64]
    query: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str255]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str255]
