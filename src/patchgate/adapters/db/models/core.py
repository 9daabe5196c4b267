"""Tables every capability shares: tenants, tokens, the state version, the audit chain,
and the versions of the policy in force."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk, str64, str255


class Tenant(Base):
    """A DDI tenant (``/{tenant}/controller/v1``). Devices and actions belong to one."""

    __tablename__ = "tenants"

    id: Mapped[intpk]
    name: Mapped[str64] = mapped_column(unique=True)
    gateway_token_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    anonymous_ddi: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class StateVersion(Base):
    """One row whose counter rises in the same transaction as every state change.

    Server processes compare it with the version their in-memory snapshot was built from;
    that read is what makes a halt committed anywhere obeyed everywhere.
    """

    __tablename__ = "state_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime]


class TickClaim(Base):
    """Which periodic job ran last, and when, across every server process: a process runs
    a job for a tick only when its claim moves the time past the tick's start (one atomic
    upsert), so a job runs once per tick however many processes and hosts share the
    database (docs/deploy.md, "What each process keeps")."""

    __tablename__ = "tick_claims"

    key: Mapped[str255] = mapped_column(primary_key=True)
    claimed_at: Mapped[datetime]


class ApiToken(Base):
    """A management API token. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"
    # A name is unique among live tokens; a revoked token keeps its name for the record.
    __table_args__ = (
        Index(
            "uq_api_tokens_live_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[intpk]
    name: Mapped[str255]
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str64] = mapped_column(unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditHead(Base):
    """The chain head, one row; appending locks it so entries get consecutive numbers."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str64]


class AuditEntryRow(Base):
    """One tamper-evident audit entry, chained to the previous by SHA-256."""

    __tablename__ = "audit_entries"

    id: Mapped[intpk]
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str255]
    action: Mapped[str] = mapped_column(String(128), index=True)
    subject: Mapped[str255] = mapped_column(index=True)
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str64]
    hash: Mapped[str64]


class AuditCheckpointRow(Base):
    """A signed (seq, head hash) pair; also appended to a file outside the database."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("seq"),)

    id: Mapped[intpk]
    seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str64]
    at: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(Text)


class PolicyVersion(Base):
    """Every policy that has been in force; the highest id is the current one."""

    __tablename__ = "policy_versions"

    id: Mapped[intpk]
    sha256: Mapped[str64]
    source: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime]
    applied_by: Mapped[str255]
