"""SQLAlchemy implementation of the campaign engine's repository port."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import (
    Action,
    ActionEvent,
    Campaign,
    Device,
    DeviceGroup,
    Tenant,
)
from patchgate.adapters.db.models.devices import HealthReport
from patchgate.domain.clock import as_utc
from patchgate.services import campaign_ports as p

_COLUMNS = tuple(f.name for f in fields(p.CampaignRecord))


def _value(value: Any) -> Any:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return as_utc(value) if isinstance(value, datetime) else value


def _record(row: Campaign) -> p.CampaignRecord:
    return p.CampaignRecord(**{name: _value(getattr(row, name)) for name in _COLUMNS})


class SqlCampaignRepository(p.CampaignRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **values: Any) -> int:
        row = Campaign(**values)
        self.session.add(row)
        self.session.flush()
        return row.id

    def get(self, campaign_id: int, *, lock: bool = False) -> p.CampaignRecord | None:
        query = select(Campaign).where(Campaign.id == campaign_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        if lock:
            self.session.refresh(row)
        return _record(row)

    def list(self, *, states: Collection[str] | None = None) -> Sequence[p.CampaignRecord]:
        query = select(Campaign).order_by(Campaign.id)
        if states is not None:
            query = query.where(Campaign.state.in_(list(states)))
        return [_record(row) for row in self.session.execute(query).scalars()]

    def update(self, campaign_id: int, **values: Any) -> None:
        self.session.execute(update(Campaign).where(Campaign.id == campaign_id).values(**values))

    def scan_devices(
        self, *, after_id: int, limit: int, hardware: Collection[str] | None
    ) -> Sequence[p.FleetDevice]:
        query = (
            select(
                Device.id,
                Device.controller_id,
                Device.hardware,
                Device.installed_version,
                Device.group_names,
                Tenant.name,
            )
            .join(Tenant, Tenant.id == Device.tenant_id)
            .where(Device.id > after_id, Device.removed_at.is_(None))
            .order_by(Device.id)
            .limit(limit)
        )
        if hardware is not None:
            query = query.where(Device.hardware.in_(list(hardware)))
        return [
            p.FleetDevice(
                r.id, r.controller_id, r.hardware, r.installed_version, tuple(r[4] or ()), r[5]
            )
            for r in self.session.execute(query)
        ]

    def known_groups(self) -> set[str]:
        return set(self.session.execute(select(DeviceGroup.name).distinct()).scalars())

    def actions(self, campaign_id: int) -> Sequence[p.CampaignAction]:
        rows = self.session.execute(
            select(Action, Device.controller_id, Device.group_names)
            .join(Device, Device.id == Action.device_id)
            .where(Action.campaign_id == campaign_id)
            .order_by(Action.id)
        ).all()
        if not rows:
            return []
        ids = [row[0].id for row in rows]
        steps: dict[int, list[p.ActionStep]] = {i: [] for i in ids}
        for chunk in range(0, len(ids), 500):
            for event in self.session.execute(
                select(ActionEvent)
                .where(ActionEvent.action_id.in_(ids[chunk : chunk + 500]))
                .order_by(ActionEvent.id)
            ).scalars():
                step = p.ActionStep(
                    as_utc(event.at), event.status_after, event.execution, event.finished
                )
                steps[event.action_id].append(step)
        return [
            p.CampaignAction(
                action.id,
                action.device_id,
                controller_id,
                tuple(groups or ()),
                action.release_id,
                action.status,
                as_utc(action.created_at),
                tuple(steps[action.id]),
            )
            for action, controller_id, groups in rows
        ]

    def health_since(self, since: datetime) -> Sequence[p.HealthSample]:
        query = select(HealthReport).where(HealthReport.at >= since).order_by(HealthReport.id)
        return [
            p.HealthSample(
                r.device_id,
                as_utc(r.at),
                r.running_version,
                (r.crash_count or 0) + (r.watchdog_count or 0),
                r.uptime_s,
            )
            for r in self.session.execute(query).scalars()
        ]

    def finished_campaigns(self, device_id: int) -> set[int]:
        query = select(Action.campaign_id).where(
            Action.device_id == device_id, Action.active.is_(False), Action.campaign_id.is_not(None)
        )
        return {int(c) for c in self.session.execute(query).scalars() if c is not None}


__all__ = ["SqlCampaignRepository"]
