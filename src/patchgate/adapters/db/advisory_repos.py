"""SQLAlchemy implementation of the advisory repository."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Advisory
from patchgate.domain.clock import as_utc
from patchgate.services.advisories.ports import AdvisoryRecord, AdvisoryRepository


def _record(row: Advisory) -> AdvisoryRecord:
    return AdvisoryRecord(
        id=row.id,
        state=row.state,
        title=row.title,
        vulnerability_ids=tuple(row.vulnerability_ids),
        document=dict(row.document),
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        published_at=as_utc(row.published_at) if row.published_at else None,
        published_by=row.published_by,
        path=row.path,
        text=row.text,
        signature=row.signature,
    )


class SqlAdvisoryRepository(AdvisoryRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, advisory_id: str, *, for_update: bool = False) -> AdvisoryRecord | None:
        query = select(Advisory).where(Advisory.id == advisory_id)
        if for_update:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        return _record(row) if row else None

    def list(self) -> Sequence[AdvisoryRecord]:
        rows = self.session.execute(
            select(Advisory).order_by(Advisory.created_at.desc(), Advisory.id.desc())
        ).scalars()
        return [_record(r) for r in rows]

    def by_path(self, path: str) -> AdvisoryRecord | None:
        row = self.session.execute(
            select(Advisory).where(Advisory.path == path, Advisory.state == "final")
        ).scalar_one_or_none()
        return _record(row) if row else None

    def count_with_prefix(self, prefix: str) -> int:
        return int(
            self.session.execute(
                select(func.count()).select_from(Advisory).where(Advisory.id.startswith(prefix))
            ).scalar_one()
        )

    def save(self, record: AdvisoryRecord) -> None:
        row = self.session.get(Advisory, record.id) or Advisory(id=record.id)
        row.state = record.state
        row.title = record.title
        row.vulnerability_ids = list(record.vulnerability_ids)
        row.document = record.document
        row.created_at = record.created_at
        row.created_by = record.created_by
        row.published_at = record.published_at
        row.published_by = record.published_by
        row.path = record.path
        row.text = record.text
        row.signature = record.signature
        self.session.add(row)
        self.session.flush()
