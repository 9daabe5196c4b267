"""The notice outbox: one row per event people are told about, one per delivery of it.

A notice's ``key`` names its event and is unique, so the same event is never stored (and
so never sent) twice, whichever process derives it and however often (docs/notifications.md).
Each delivery (one e-mail address or webhook URL) keeps its own state, attempts and last
error, so a mail server that is down delays e-mail without holding back webhooks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk


class NoticeRow(Base):
    __tablename__ = "notices"

    id: Mapped[intpk]
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime]
    created_at: Mapped[datetime]


class NoticeDelivery(Base):
    """``state``: ``pending`` (to be tried at ``next_attempt_at``) or ``sent``.
    ``claimed_until`` is set by the process sending it, so two processes never send one
    delivery at once."""

    __tablename__ = "notice_deliveries"
    __table_args__ = (
        UniqueConstraint("notice_id", "channel", "target"),
        Index("ix_notice_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[intpk]
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
