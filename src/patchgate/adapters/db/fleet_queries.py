"""Fleet read models on SQLAlchemy (``services.fleet_ports.FleetQueries``); the device
list itself pages through ``device_repos`` (keyset, with device queries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, cast, distinct, func, or_, select, true
from sqlalchemy.orm import Session

from patchgate.adapters.db.campaign_repos import status_as_stopped, stop_facts
from patchgate.adapters.db.models import Action, Device, Tenant
from patchgate.domain.actions import Status
from patchgate.domain.clock import as_utc
from patchgate.services.fleet_ports import Census, Finish, FinishPoint, FleetQueries

_FAILED = (Status.ERROR.value,)


class SqlFleetQueries(FleetQueries):
    def __init__(self, session: Session) -> None:
        self.session = session

    def census(
        self, tenant: str, seen_since: datetime, hardware: Sequence[str], keys: Sequence[str],
        suffix: str, values: Sequence[str],
    ) -> Census:  # fmt: skip
        in_fleet = (Tenant.name == tenant, Device.removed_at.is_(None))
        rows = self.session.execute(
            select(Device.hardware, func.count(),
                   func.count().filter(Device.last_seen >= seen_since))
            .join(Tenant, Tenant.id == Device.tenant_id)
            .where(*in_fleet)
            .group_by(Device.hardware)
        ).all()  # fmt: skip
        asked = set(hardware)
        out = {str(h): (int(n), 0) for h, n, _s in rows if h in asked}
        total, seen = sum(int(n) for _h, n, _s in rows), sum(int(s) for _h, _n, s in rows)
        if out:
            self._schemes(out, in_fleet, list(out), keys, suffix, values)
        return Census(total, seen, out)

    def _schemes(
        self, out: dict[str, tuple[int, int]], in_fleet: tuple[Any, ...], hardware: list[str],
        keys: Sequence[str], suffix: str, values: Sequence[str],
    ) -> None:  # fmt: skip
        in_service = (
            select(Device.id, Device.hardware, Device.attributes)
            .join(Tenant, Tenant.id == Device.tenant_id)
            .where(*in_fleet, Device.hardware.in_(hardware))
            .subquery()
        )
        # The attributes are a JSON object per device: each backend's JSON table function
        # lists its members (SQLite json_each, PostgreSQL json_each_text).
        dialect = self.session.get_bind().dialect.name
        each = "json_each_text" if dialect == "postgresql" else "json_each"
        member = getattr(func, each)(in_service.c.attributes).table_valued("key", "value")
        name, value = func.lower(member.c.key), func.lower(cast(member.c.value, String))
        escaped = suffix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found = self.session.execute(
            select(in_service.c.hardware, func.count(distinct(in_service.c.id)))
            .select_from(in_service)
            .join(member, true())
            .where(
                or_(name.in_(list(keys)), name.like(f"%{escaped}", escape="\\")),
                value.in_(list(values)),
            )
            .group_by(in_service.c.hardware)
        ).all()
        for h, n in found:
            total, _ab = out.get(str(h), (0, 0))
            out[str(h)] = (total, int(n))

    def campaign_tallies(self, campaign_ids: Sequence[int]) -> Mapping[int, Mapping[str, int]]:
        out: dict[int, dict[str, int]] = {c: {} for c in campaign_ids}
        if not campaign_ids:
            return out
        rows = self.session.execute(
            select(Action.campaign_id, Action.status, Action.active, Action.release_id,
                   func.count())
            .where(Action.campaign_id.in_(list(campaign_ids)))
            .group_by(Action.campaign_id, Action.status, Action.active, Action.release_id)
        ).all()  # fmt: skip
        # As every read of an action says it: cancelled by its campaign's stop from the
        # stop's commit (docs/campaigns.md, "Halt").
        stops = stop_facts(self.session, campaign_ids)
        for campaign, status, active, release, n in rows:
            cid = int(campaign or 0)
            said = status_as_stopped(str(status), bool(active), int(release), stops.get(cid))
            out[cid][said] = out[cid].get(said, 0) + int(n)
        return out

    def finishes(self, campaign_id: int) -> Sequence[Finish]:
        found = self.session.execute(
            select(Action.closed_at, Action.status)
            .where(Action.campaign_id == campaign_id, Action.closed_at.is_not(None))
            .order_by(Action.closed_at)
        )
        return [Finish(as_utc(at), status in _FAILED) for at, status in found if at is not None]

    def finish_curve(self, campaign_id: int, points: int) -> Sequence[FinishPoint]:
        closed = (Action.campaign_id == campaign_id, Action.closed_at.is_not(None))
        first, last, count = self.session.execute(
            select(func.min(Action.closed_at), func.max(Action.closed_at), func.count()).where(
                *closed
            )
        ).one()
        if not count or first is None or last is None:
            return []
        if count <= points:
            out, failed = [], 0
            for n, f in enumerate(self.finishes(campaign_id), start=1):
                failed += f.failed
                out.append(FinishPoint(f.at, n, failed))
            return out
        start, end = as_utc(first), as_utc(last)
        span = max((end - start).total_seconds(), 1e-6)
        bucket = cast(
            func.floor((self._epoch(Action.closed_at) - start.timestamp()) * points / span),
            Integer,
        ).label("bucket")
        rows = self.session.execute(
            select(bucket, func.count(), func.count().filter(Action.status.in_(_FAILED)))
            .where(*closed)
            .group_by(bucket)
            .order_by(bucket)
        ).all()
        out, finished, failed = [], 0, 0
        for b, n, bad in rows:
            finished, failed = finished + int(n), failed + int(bad)
            at = min(start + timedelta(seconds=span * (int(b) + 1) / points), end)
            out.append(FinishPoint(at, finished, failed))
        return out

    def _epoch(self, column: Any) -> Any:
        """Seconds since 1970 of a stored time, in this backend's SQL."""
        if self.session.get_bind().dialect.name == "postgresql":
            return func.extract("epoch", column)
        return (func.julianday(column) - 2440587.5) * 86400.0
