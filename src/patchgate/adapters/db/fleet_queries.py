"""Fleet read models on SQLAlchemy (``services.fleet_ports.FleetQueries``); the device
list itself pages through ``device_repos`` (keyset, with device queries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Action, Device, Tenant
from patchgate.domain.actions import Status
from patchgate.domain.clock import as_utc
from patchgate.services.fleet_ports import Finish, FleetQueries

_FAILED = (Status.ERROR.value,)


class SqlFleetQueries(FleetQueries):
    def __init__(self, session: Session) -> None:
        self.session = session

    def counts(self, tenant: str, seen_since: datetime) -> tuple[int, int]:
        total, seen = self.session.execute(
            select(func.count(), func.count().filter(Device.last_seen >= seen_since))
            .select_from(Device)
            .join(Tenant, Tenant.id == Device.tenant_id)
            .where(Tenant.name == tenant, Device.removed_at.is_(None))
        ).one()
        return int(total), int(seen)

    def finishes(self, campaign_id: int) -> Sequence[Finish]:
        found = self.session.execute(
            select(Action.closed_at, Action.status)
            .where(Action.campaign_id == campaign_id, Action.closed_at.is_not(None))
            .order_by(Action.closed_at)
        )
        return [Finish(as_utc(at), status in _FAILED) for at, status in found if at is not None]
