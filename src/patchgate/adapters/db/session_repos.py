"""Console sessions on SQLAlchemy (``services.session_ports.SessionRepository``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import ApiToken, ConsoleSessionRow
from patchgate.domain.clock import as_utc
from patchgate.services.ports import TokenRecord
from patchgate.services.session_ports import SessionRecord, SessionRepository


class SqlSessionRepository(SessionRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, *, session_hash: str, token_id: int, csrf: str, now: datetime) -> int:
        row = ConsoleSessionRow(
            session_hash=session_hash,
            token_id=token_id,
            csrf=csrf,
            created_at=now,
            last_seen_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def by_hash(self, session_hash: str) -> SessionRecord | None:
        found = self.session.execute(
            select(ConsoleSessionRow, ApiToken)
            .join(ApiToken, ApiToken.id == ConsoleSessionRow.token_id)
            .where(ConsoleSessionRow.session_hash == session_hash, ApiToken.revoked_at.is_(None))
        ).first()
        if found is None:
            return None
        row, token = found
        return SessionRecord(
            id=row.id,
            token=TokenRecord(
                token.id, token.name, token.role, as_utc(token.created_at), token.revoked_at
            ),
            csrf=row.csrf,
            created_at=as_utc(row.created_at),
            last_seen_at=as_utc(row.last_seen_at),
        )

    def touch(self, session_id: int, now: datetime) -> None:
        self.session.execute(
            update(ConsoleSessionRow)
            .where(ConsoleSessionRow.id == session_id)
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )

    def remove(self, session_hash: str) -> bool:
        result = self.session.execute(
            delete(ConsoleSessionRow).where(ConsoleSessionRow.session_hash == session_hash)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult has it

    def remove_idle(self, before: datetime) -> int:
        result = self.session.execute(
            delete(ConsoleSessionRow).where(ConsoleSessionRow.last_seen_at < before)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]  # CursorResult has it
