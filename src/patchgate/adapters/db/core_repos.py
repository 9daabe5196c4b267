"""SQLAlchemy implementations of the shared ports: state, audit, tokens, policy, tenants."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sl_insert
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import (
    ApiToken,
    AuditCheckpointRow,
    AuditEntryRow,
    AuditHead,
    Device,
    PolicyVersion,
    SavedFilter,
    StateVersion,
    Tenant,
    TickClaim,
)
from patchgate.adapters.db.pg_notify import notify
from patchgate.domain.audit import GENESIS_HASH, AuditRecord, Checkpoint
from patchgate.domain.clock import as_utc
from patchgate.services import ports

M = TypeVar("M", Device, SavedFilter)


def tenant_row(
    session: Session, model: type[M], named: ColumnElement[bool], tenant: str, *, lock: bool
) -> M | None:
    """The row of ``model`` that ``named`` picks in tenant ``tenant``, locked (``FOR UPDATE``
    of that table only) when ``lock``."""
    query = (
        select(model).join(Tenant, Tenant.id == model.tenant_id).where(Tenant.name == tenant, named)
    )
    if lock:
        query = query.with_for_update(of=model)
    return session.execute(query).scalar_one_or_none()


class SqlStateRepository(ports.StateRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def bump(self, now: datetime) -> int:
        # An UPDATE takes the row lock, so concurrent bumps serialise and never collide.
        result = self.session.execute(
            update(StateVersion)
            .where(StateVersion.id == 1)
            .values(version=StateVersion.version + 1, changed_at=now)
            .returning(StateVersion.version)
        )
        version = int(result.scalar_one())
        if self.session.get_bind().dialect.name == "postgresql":
            # Every server process hears it at the commit (adapters/db/pg_notify.py).
            notify(self.session, version)
        return version

    def current(self) -> int:
        return int(self.session.execute(select(StateVersion.version)).scalar_one())

    def claim(self, key: str, since: datetime, now: datetime) -> bool:
        # One upsert, atomic on both engines: of the processes that race for a tick, the
        # first moves ``claimed_at`` past ``since`` and the others' WHERE finds it there.
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sl_insert
        upsert = (
            insert(TickClaim)
            .values(key=key, claimed_at=now)
            .on_conflict_do_update(
                index_elements=[TickClaim.key],
                set_={"claimed_at": now},
                where=TickClaim.claimed_at < since,
            )
            .returning(TickClaim.key)
        )
        return self.session.execute(upsert).first() is not None


def _record(row: AuditEntryRow) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class SqlAuditRepository(ports.AuditRepository):
    def __init__(self, session: Session) -> None:
        self.session = session
        self._head: AuditHead | None = None

    def lock_head(self) -> tuple[int, str]:
        head = self.session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS_HASH)
            self.session.add(head)
            self.session.flush()
        self._head = head
        return head.seq, head.hash

    def append(self, record: AuditRecord) -> None:
        assert self._head is not None, "lock_head() first"
        self.session.add(
            AuditEntryRow(
                seq=record.seq,
                at=record.at,
                actor=record.actor,
                action=record.action,
                subject=record.subject,
                details=dict(record.details),
                prev_hash=record.prev_hash,
                hash=record.hash,
            )
        )
        self._head.seq = record.seq
        self._head.hash = record.hash
        self.session.flush()

    def all(self) -> Sequence[AuditRecord]:
        rows = self.session.execute(select(AuditEntryRow).order_by(AuditEntryRow.seq))
        return [_record(r) for r in rows.scalars()]

    def page(
        self,
        *,
        limit: int,
        before_seq: int | None = None,
        subject: str | None = None,
        action_prefix: str | None = None,
    ) -> Sequence[AuditRecord]:
        query = select(AuditEntryRow).order_by(AuditEntryRow.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(AuditEntryRow.seq < before_seq)
        if subject is not None:
            query = query.where(AuditEntryRow.subject == subject)
        if action_prefix is not None:
            query = query.where(AuditEntryRow.action.startswith(action_prefix, autoescape=True))
        return [_record(r) for r in self.session.execute(query).scalars()]

    def checkpoints(self) -> Sequence[Checkpoint]:
        rows = self.session.execute(select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq))
        return [
            Checkpoint(seq=r.seq, head_hash=r.head_hash, at=r.at, signature=r.signature)
            for r in rows.scalars()
        ]

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.session.add(
            AuditCheckpointRow(
                seq=checkpoint.seq,
                head_hash=checkpoint.head_hash,
                at=checkpoint.at,
                signature=checkpoint.signature,
            )
        )


def _token(row: ApiToken) -> ports.TokenRecord:
    return ports.TokenRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
    )


class SqlTokenRepository(ports.TokenRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, *, name: str, role: str, token_hash: str, now: datetime) -> ports.TokenRecord:
        row = ApiToken(name=name, role=role, token_hash=token_hash, created_at=now)
        self.session.add(row)
        self.session.flush()
        return _token(row)

    def by_hash(self, token_hash: str) -> ports.TokenRecord | None:
        row = self.session.execute(
            select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        ).scalar_one_or_none()
        return _token(row) if row else None

    def by_name(self, name: str) -> ports.TokenRecord | None:
        row = self.session.execute(
            select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        ).scalar_one_or_none()
        return _token(row) if row else None

    def list(self) -> Sequence[ports.TokenRecord]:
        return [
            _token(r)
            for r in self.session.execute(select(ApiToken).order_by(ApiToken.id)).scalars()
        ]

    def revoke(self, name: str, now: datetime) -> bool:
        result = self.session.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult has it


class SqlPolicyRepository(ports.PolicyRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def current(self) -> ports.PolicyRecord | None:
        row = self.session.execute(
            select(PolicyVersion).order_by(PolicyVersion.id.desc()).limit(1)
        ).scalar_one_or_none()
        if row is None:
            return None
        return ports.PolicyRecord(
            row.id, row.sha256, row.source, as_utc(row.applied_at), row.applied_by
        )

    def add(self, *, source: str, sha256: str, now: datetime, actor: str) -> ports.PolicyRecord:
        row = PolicyVersion(sha256=sha256, source=source, applied_at=now, applied_by=actor)
        self.session.add(row)
        self.session.flush()
        return ports.PolicyRecord(row.id, sha256, source, now, actor)


class SqlTenantRepository(ports.TenantRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def _row(self, name: str) -> Tenant | None:
        return self.session.execute(select(Tenant).where(Tenant.name == name)).scalar_one_or_none()

    def get(self, name: str) -> ports.TenantRecord | None:
        row = self._row(name)
        return ports.TenantRecord(row.id, row.name, row.anonymous_ddi) if row else None

    def add(self, name: str, now: datetime) -> ports.TenantRecord:
        row = Tenant(name=name, created_at=now)
        self.session.add(row)
        self.session.flush()
        return ports.TenantRecord(row.id, row.name, row.anonymous_ddi)

    def set_gateway_token_hash(self, name: str, token_hash: str | None) -> None:
        row = self._row(name)
        if row is not None:
            row.gateway_token_hash = token_hash

    def set_anonymous(self, name: str, enabled: bool) -> None:
        row = self._row(name)
        if row is not None:
            row.anonymous_ddi = enabled

    def list(self) -> Sequence[ports.TenantRecord]:
        rows = self.session.execute(select(Tenant).order_by(Tenant.id)).scalars()
        return [ports.TenantRecord(r.id, r.name, r.anonymous_ddi) for r in rows]
