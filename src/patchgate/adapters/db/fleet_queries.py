"""Fleet read models on SQLAlchemy (``services.fleet_ports.FleetQueries``).

Listings page by keyset on ``(tenant, controller_id)`` (the unique index), so page 10,000
costs what page 1 costs; a device query's SQL form (``device_filters``) narrows in the
``WHERE`` clause, and where it only selects a superset the rows are checked with the rule
itself, reading on until the page is full.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from patchgate.adapters.db.device_filters import compile_filter
from patchgate.adapters.db.models import Action, Device, Tenant
from patchgate.domain import filters
from patchgate.domain.actions import Status
from patchgate.domain.clock import as_utc
from patchgate.services.fleet_ports import Finish, FleetPage, FleetQueries, FleetRow, VersionCount

_FAILED = (Status.ERROR.value,)
_READ_AHEAD = 4


class SqlFleetQueries(FleetQueries):
    def __init__(self, session: Session) -> None:
        self.session = session

    def _tenant_id(self, tenant: str) -> int | None:
        return self.session.scalar(select(Tenant.id).where(Tenant.name == tenant))

    def page(
        self,
        tenant: str,
        *,
        query: filters.Expression | None,
        after: str | None,
        limit: int,
    ) -> FleetPage:
        tenant_id = self._tenant_id(tenant)
        if tenant_id is None:
            return FleetPage((), None)
        compiled = compile_filter(query) if query is not None else None
        rows: list[FleetRow] = []
        cursor = after
        batch = limit + 1 if compiled is None or compiled.exact else (limit + 1) * _READ_AHEAD
        while True:
            stmt = (
                select(Device)
                .where(Device.tenant_id == tenant_id)
                .order_by(Device.controller_id)
                .limit(batch)
            )
            if cursor is not None:
                stmt = stmt.where(Device.controller_id > cursor)
            if compiled is not None:
                stmt = stmt.where(compiled.where)
            found = list(self.session.scalars(stmt))
            for d in found:
                row = FleetRow(
                    d.controller_id,
                    tuple(d.group_names or ()),
                    d.hardware,
                    d.installed_version,
                    dict(d.attributes or {}),
                    as_utc(d.last_seen) if d.last_seen else None,
                )
                if (
                    compiled is None
                    or compiled.exact
                    or (query is not None and filters.matches(query, row))
                ):
                    rows.append(row)
                if len(rows) > limit:
                    return FleetPage(rows[:limit], rows[limit - 1].controller_id)
            if len(found) < batch:
                return FleetPage(rows, None)
            cursor = found[-1].controller_id

    def counts(self, tenant: str, seen_since: datetime) -> tuple[int, int]:
        tenant_id = self._tenant_id(tenant)
        if tenant_id is None:
            return 0, 0
        total, seen = self.session.execute(
            select(
                func.count(),
                func.count().filter(Device.last_seen >= seen_since),
            ).where(Device.tenant_id == tenant_id)
        ).one()
        return int(total), int(seen)

    def versions(self, tenant: str) -> Sequence[VersionCount]:
        tenant_id = self._tenant_id(tenant)
        if tenant_id is None:
            return []
        found = self.session.execute(
            select(Device.hardware, Device.installed_version, func.count())
            .where(Device.tenant_id == tenant_id)
            .group_by(Device.hardware, Device.installed_version)
        )
        return [VersionCount(hw, version, int(n)) for hw, version, n in found]

    def finishes(self, campaign_id: int) -> Sequence[Finish]:
        found = self.session.execute(
            select(Action.closed_at, Action.status)
            .where(Action.campaign_id == campaign_id, Action.closed_at.is_not(None))
            .order_by(Action.closed_at)
        )
        return [Finish(as_utc(at), status in _FAILED) for at, status in found if at is not None]
