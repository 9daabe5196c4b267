"""SQL for saved device queries and operator metadata (``services.targeting_ports``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, null, select, update
from sqlalchemy.orm import Session

from patchgate.adapters.db.core_repos import tenant_row
from patchgate.adapters.db.models import Device, Release, SavedFilter, Tenant
from patchgate.domain.clock import as_utc
from patchgate.services import targeting_ports as p


def _record(row: SavedFilter, tenant: str) -> p.SavedFilterRecord:
    return p.SavedFilterRecord(
        id=row.id,
        tenant=tenant,
        name=row.name,
        query=row.query,
        description=row.description or "",
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        updated_at=as_utc(row.updated_at),
        updated_by=row.updated_by,
    )


class SqlTargetingRepository(p.TargetingRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def saved_filter(
        self, tenant: str, name: str, *, lock: bool = False
    ) -> p.SavedFilterRecord | None:
        row = tenant_row(self.session, SavedFilter, SavedFilter.name == name, tenant, lock=lock)
        return _record(row, tenant) if row is not None else None

    def saved_filters(self, tenant: str) -> Sequence[p.SavedFilterRecord]:
        rows = self.session.execute(
            select(SavedFilter)
            .join(Tenant, Tenant.id == SavedFilter.tenant_id)
            .where(Tenant.name == tenant)
            .order_by(SavedFilter.name)
        ).scalars()
        return [_record(row, tenant) for row in rows]

    def add_saved_filter(self, new: p.NewSavedFilter, now: datetime) -> int:
        row = SavedFilter(
            tenant_id=new.tenant_id,
            name=new.name,
            query=new.query,
            description=new.description,
            created_at=now,
            created_by=new.actor,
            updated_at=now,
            updated_by=new.actor,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def update_saved_filter(
        self, filter_id: int, *, query: str, description: str, actor: str, now: datetime
    ) -> None:
        self.session.execute(
            update(SavedFilter)
            .where(SavedFilter.id == filter_id)
            .values(query=query, description=description, updated_at=now, updated_by=actor)
        )

    def delete_saved_filter(self, filter_id: int) -> None:
        self.session.execute(delete(SavedFilter).where(SavedFilter.id == filter_id))

    def set_device_metadata(self, device_id: int, metadata: Mapping[str, str]) -> None:
        self.session.execute(
            update(Device)
            .where(Device.id == device_id)
            .values(meta=dict(metadata) if metadata else null())
        )

    def set_release_metadata(self, release_id: int, metadata: Mapping[str, str]) -> None:
        self.session.execute(
            update(Release)
            .where(Release.id == release_id)
            .values(meta=dict(metadata) if metadata else null())
        )
