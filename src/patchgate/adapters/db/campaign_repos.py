"""SQLAlchemy implementation of the campaign engine's repository port."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from patchgate.adapters.db.device_filters import compile_filter
from patchgate.adapters.db.figure_repos import (
    FLEET_DEVICE_COLUMNS,
    GROUPS_TEXT,
    SqlFigureQueries,
    groups_of,
    id_in,
)
from patchgate.adapters.db.models import (
    Action,
    ActionEvent,
    Campaign,
    Device,
    DeviceGroup,
    Tenant,
)
from patchgate.adapters.db.models.devices import HealthReport
from patchgate.domain import campaigns as core
from patchgate.domain import filters
from patchgate.domain.clock import as_utc
from patchgate.services import campaign_ports as p

_COLUMNS = tuple(f.name for f in fields(p.CampaignRecord))


def _value(value: Any) -> Any:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return as_utc(value) if isinstance(value, datetime) else value


def _record(row: Campaign) -> p.CampaignRecord:
    return p.CampaignRecord(**{name: _value(getattr(row, name)) for name in _COLUMNS})


def _fleet_device(r: Any) -> p.FleetDevice:
    device = p.FleetDevice(r[0], r[1], r[2], r[3], groups_of(r[4]), r[5])
    if len(r) == 6:
        return device
    return replace(
        device,
        attributes=dict(r[6] or {}),
        metadata=dict(r[7] or {}),
        last_seen=as_utc(r[8]) if r[8] is not None else None,
    )


def _steps(session: Session, ids: Sequence[int]) -> dict[int, list[p.ActionStep]]:
    """Each action's steps, oldest first (plain rows: the gate tick reads them)."""
    steps: dict[int, list[p.ActionStep]] = {}
    for chosen in id_in(session, ActionEvent.action_id, ids):
        query = (
            select(
                ActionEvent.action_id,
                ActionEvent.at,
                ActionEvent.status_after,
                ActionEvent.execution,
                ActionEvent.finished,
            )
            .where(chosen)
            .order_by(ActionEvent.id)
        )
        for r in session.execute(query):
            steps.setdefault(r[0], []).append(p.ActionStep(as_utc(r[1]), r[2], r[3], r[4]))
    return steps


class SqlCampaignRepository(SqlFigureQueries, p.CampaignRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, new: p.NewCampaign) -> int:
        row = Campaign(**{f.name: getattr(new, f.name) for f in fields(new)})
        self.session.add(row)
        self.session.flush()
        return row.id

    def get(
        self, campaign_id: int, *, lock: bool = False, share: bool = False
    ) -> p.CampaignRecord | None:
        query = select(Campaign).where(Campaign.id == campaign_id)
        if lock:
            query = query.with_for_update()
        elif share:
            query = query.with_for_update(read=True)
        row = self.session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        if lock or share:
            self.session.refresh(row)
        return _record(row)

    def list(self, *, states: Collection[str] | None = None) -> Sequence[p.CampaignRecord]:
        query = select(Campaign).order_by(Campaign.id)
        if states is not None:
            query = query.where(Campaign.state.in_(list(states)))
        return [_record(row) for row in self.session.execute(query).scalars()]

    def page(self, *, after_id: int, limit: int) -> Sequence[p.CampaignRecord]:
        query = select(Campaign).where(Campaign.id > after_id).order_by(Campaign.id).limit(limit)
        return [_record(row) for row in self.session.execute(query).scalars()]

    def update(self, campaign_id: int, changes: p.CampaignChanges) -> None:
        values = changes.values()
        if values:
            self.session.execute(
                update(Campaign).where(Campaign.id == campaign_id).values(**values)
            )

    def scan_devices(
        self,
        *,
        after_id: int,
        limit: int,
        hardware: Collection[str] | None,
        query: filters.Expression | None = None,
    ) -> Sequence[p.FleetDevice]:
        detail = (Device.attributes, Device.meta, Device.last_seen) if query is not None else ()
        statement = (
            select(*FLEET_DEVICE_COLUMNS, *detail)
            .join(Tenant, Tenant.id == Device.tenant_id)
            .where(Device.id > after_id, Device.removed_at.is_(None))
            .order_by(Device.id)
            .limit(limit)
        )
        if hardware is not None:
            statement = statement.where(Device.hardware.in_(list(hardware)))
        if query is not None:
            # The query's SQL condition (a superset where it cannot be exact); the caller
            # keeps the devices the rule itself selects (docs/device-filters.md).
            statement = statement.where(compile_filter(query).where)
        return [_fleet_device(r) for r in self.session.execute(statement)]

    def known_groups(self) -> set[str]:
        return set(self.session.execute(select(DeviceGroup.name).distinct()).scalars())

    def actions(self, campaign_id: int) -> Sequence[p.CampaignAction]:
        rows = self.session.execute(
            select(Action, Device.controller_id, Device.group_names)
            .join(Device, Device.id == Action.device_id)
            .where(Action.campaign_id == campaign_id)
            .order_by(Action.id)
        ).all()
        return self._with_steps(rows)

    def device_actions(self, device_id: int, *, limit: int) -> Sequence[p.CampaignAction]:
        rows = self.session.execute(
            select(Action, Device.controller_id, Device.group_names)
            .join(Device, Device.id == Action.device_id)
            .where(Action.device_id == device_id, Action.campaign_id.is_not(None))
            .order_by(Action.id.desc())
            .limit(limit)
        ).all()
        return self._with_steps(rows[::-1])

    def actions_of_devices(
        self, campaign_id: int, device_ids: Collection[int]
    ) -> Sequence[p.CampaignAction]:
        # Plain rows, not ORM objects: the gate tick reads these for every changed device.
        actions: list[Any] = []
        for chosen in id_in(self.session, Action.device_id, device_ids):
            actions.extend(
                self.session.execute(
                    select(
                        Action.id,
                        Action.device_id,
                        Device.controller_id,
                        GROUPS_TEXT,
                        Action.release_id,
                        Action.status,
                        Action.created_at,
                        Action.active,
                    )
                    .join(Device, Device.id == Action.device_id)
                    .where(Action.campaign_id == campaign_id, chosen)
                ).all()
            )
        actions.sort(key=lambda row: row[0])
        steps = _steps(self.session, [int(a[0]) for a in actions])
        return [
            p.CampaignAction(
                a[0],
                a[1],
                a[2],
                groups_of(a[3]),
                a[4],
                a[5],
                as_utc(a[6]),
                tuple(steps.get(a[0], ())),
                campaign_id=campaign_id,
                active=a[7],
            )
            for a in actions
        ]

    def _with_steps(self, rows: Sequence[Any]) -> Sequence[p.CampaignAction]:
        if not rows:
            return ()
        ids = [row[0].id for row in rows]
        stops = stop_facts(self.session, {row[0].campaign_id for row in rows if row[0].campaign_id})
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
                status_as_stopped(
                    action.status,
                    action.active,
                    action.release_id,
                    stops.get(action.campaign_id or 0),
                ),
                as_utc(action.created_at),
                tuple(steps[action.id]),
                campaign_id=action.campaign_id or 0,
                active=action.active,
            )
            for action, controller_id, groups in rows
        ]

    def cancel_pending(
        self,
        campaign_id: int,
        *,
        statuses: Collection[str],
        now: datetime,
        detail: str,
        release_id: int | None = None,
        limit: int | None = None,
    ) -> p.CancelledActions:
        pending: tuple[Any, ...] = (Action.campaign_id == campaign_id, Action.active.is_(True))
        if release_id is not None:
            pending = (*pending, Action.release_id == release_id)
        if limit is not None:
            chosen = (
                select(Action.id)
                .where(*pending, Action.status.in_(list(statuses)))
                .order_by(Action.id)
                .limit(limit)
                .scalar_subquery()
            )
            pending = (*pending, Action.id.in_(chosen))
        waiting = [s for s in statuses if s == "waiting_confirmation"]
        accepted = [s for s in statuses if s != "waiting_confirmation"]
        closed = self._mark(
            pending,
            waiting,
            status="canceled",
            active=False,
            closed_at=now,
            result="canceled",
            updated_at=now,
            cancel_requested_at=now,
        )
        canceling = self._mark(
            pending, accepted, status="canceling", updated_at=now, cancel_requested_at=now
        )
        if closed:
            closed_ids = [a for a, _ in closed]
            for chunk in range(0, len(closed_ids), 1000):
                self.session.execute(
                    update(Device)
                    .where(Device.open_action_id.in_(closed_ids[chunk : chunk + 1000]))
                    .values(open_action_id=None)
                )
        for marked, status in ((canceling, "canceling"), (closed, "canceled")):
            self._steps_for([a for a, _ in marked], now=now, status=status, detail=detail)
        return p.CancelledActions(tuple(canceling), tuple(closed))

    def count_pending(
        self, campaign_id: int, *, statuses: Collection[str], release_id: int | None = None
    ) -> int:
        query = select(func.count()).where(
            Action.campaign_id == campaign_id,
            Action.status.in_(list(statuses)),
            Action.active.is_(True),
        )
        if release_id is not None:
            query = query.where(Action.release_id == release_id)
        return int(self.session.execute(query).scalar_one())

    def _steps_for(
        self, action_ids: Sequence[int], *, now: datetime, status: str, detail: str
    ) -> None:
        """One history step per action, written by ``INSERT … SELECT``: on PostgreSQL one
        statement over the ids as one array parameter, elsewhere in chunks of 10,000, so a
        halt of 100,000 pending actions costs one statement (or ten), not 100,000
        (docs/campaigns.md, "Halt")."""
        if not action_ids:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text(
                    "INSERT INTO action_events (action_id, at, channel, details, status_after) "
                    "SELECT id, :at, 'server', CAST(:details AS JSON), :status "
                    "FROM unnest(CAST(:ids AS BIGINT[])) AS id"
                ),
                {"at": now, "details": json.dumps([detail]), "status": status,
                 "ids": list(action_ids)},
            )  # fmt: skip
            return
        for start in range(0, len(action_ids), 10_000):
            chunk = action_ids[start : start + 10_000]
            rows = select(
                Action.id,
                literal(now, DateTime(timezone=True)),
                literal("server"),
                literal([detail], JSON),
                literal(status),
            ).where(Action.id.in_(chunk))
            self.session.execute(
                insert(ActionEvent).from_select(
                    ["action_id", "at", "channel", "details", "status_after"], rows
                )
            )

    def _mark(
        self, where: tuple[Any, ...], statuses: Sequence[str], **values: Any
    ) -> tuple[tuple[int, int], ...]:
        """One UPDATE of the matching actions; returns (action id, device id) pairs."""
        if not statuses:
            return ()
        result = self.session.execute(
            update(Action)
            .where(*where, Action.status.in_(list(statuses)))
            .values(**values)
            .returning(Action.id, Action.device_id)
            .execution_options(synchronize_session=False)
        )
        return tuple(sorted((int(r[0]), int(r[1])) for r in result))

    def succeeded_releases(self, release_ids: Collection[int]) -> set[int]:
        if not release_ids:
            return set()
        query = (
            select(Action.release_id)
            .where(Action.release_id.in_(list(release_ids)), Action.status == "finished")
            .distinct()
        )
        return {int(r) for r in self.session.execute(query).scalars()}

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


# A campaign's columns that say what its stop did to its actions (``stop_cancel``).
STOP_COLUMNS = (
    Campaign.id, Campaign.state, Campaign.release_id, Campaign.halted_at,
    Campaign.finished_at, Campaign.halt_reason,
)  # fmt: skip


def stop_of(row: Sequence[Any]) -> core.StopFacts | None:
    """``STOP_COLUMNS`` as read (None for an action of no campaign)."""
    campaign_id, state, release_id, halted_at, finished_at, reason = row
    if campaign_id is None:
        return None
    return core.StopFacts(
        int(campaign_id), state, int(release_id), _value(halted_at), _value(finished_at),
        reason or "",
    )  # fmt: skip


def stop_facts(session: Session, campaign_ids: Collection[int]) -> dict[int, core.StopFacts]:
    """What each of these campaigns' stops say of their actions (``stop_cancel``)."""
    if not campaign_ids:
        return {}
    rows = session.execute(select(*STOP_COLUMNS).where(Campaign.id.in_(list(campaign_ids))))
    return {int(r[0]): stop for r in rows if (stop := stop_of(tuple(r))) is not None}


def status_as_stopped(
    status: str, active: bool, release_id: int, stop: core.StopFacts | None
) -> str:
    """An action's status as it stands: ``canceling`` once its campaign's stop cancelled
    it, before its row says so (docs/campaigns.md, "Halt")."""
    return "canceling" if core.stop_cancel(status, active, release_id, stop) else status


__all__ = ["STOP_COLUMNS", "SqlCampaignRepository", "status_as_stopped", "stop_facts", "stop_of"]
