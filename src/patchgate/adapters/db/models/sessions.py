"""Web console sessions: a signed-in management token, kept server-side.

The browser holds only a random session ID in an HttpOnly cookie; this table keeps its
SHA-256, the token it stands for, the CSRF secret of its forms and when it was last used
(docs/console.md). Revoking the token ends its sessions (the join finds no live token).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk


class ConsoleSessionRow(Base):
    __tablename__ = "console_sessions"

    id: Mapped[intpk]
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
