"""CSAF advisories (docs/compliance.md): the document as drafted, and once published the
exact text served, hashed and signed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, str255


class Advisory(Base):
    """One CSAF document by its tracking ID."""

    __tablename__ = "advisories"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # draft | final
    title: Mapped[str] = mapped_column(Text)
    vulnerability_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    created_by: Mapped[str255]
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(String(255), unique=True)
    text: Mapped[str | None] = mapped_column(Text)
    signature: Mapped[str | None] = mapped_column(Text)
