"""SQL of a campaign's stored figures (``services.figure_ports``; docs/campaigns.md,
"Figures"): indexed maxima, reads after a mark, one aggregate for the per-stage counts."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    any_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import (
    Action,
    ActionEvent,
    CampaignExecution,
    CampaignFigure,
    Device,
    Tenant,
)
from patchgate.adapters.db.models.devices import HealthReport
from patchgate.domain.clock import as_utc
from patchgate.services import campaign_ports as cp
from patchgate.services import figure_ports as p

_CHUNK = 1000
# DDI steps that move no execution (``services.campaigns.figures.execution_of``): a halt
# writes one per pending action, so the change read leaves them out in SQL. Their ids
# look like a gap to the mark, which passes it once the row after it is older than the
# grace period (``services.campaigns.catchup``), as it passes any gap.
_SILENT_STEPS = ("canceling",)


def _chunks(ids: Collection[int]) -> list[list[int]]:
    ordered = sorted(ids)
    return [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]


def id_in(session: Session, column: Any, ids: Collection[int]) -> list[ColumnElement[bool]]:
    """Conditions that together select ``column`` in ``ids``, one statement each: on
    PostgreSQL one, the ids as one array parameter (a catch-up of 100,000 devices is one
    query, not 100 of 1,000 parameters each); elsewhere one per 1,000 ids."""
    if not ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(literal(sorted(ids), ARRAY(BigInteger)))]
    return [column.in_(chunk) for chunk in _chunks(ids)]


# A device's groups, read as the JSON text and parsed once per distinct value: a fleet
# shares a few group sets, and a scan reads a million rows.
GROUPS_TEXT = cast(Device.group_names, Text)
# The columns of a ``FleetDevice`` (a device as campaign plans and figures read it), in
# its field order; the query joins the device's tenant.
FLEET_DEVICE_COLUMNS = (
    Device.id,
    Device.controller_id,
    Device.hardware,
    Device.installed_version,
    GROUPS_TEXT,
    Tenant.name,
)


@lru_cache(maxsize=4096)
def groups_of(raw: str | None) -> tuple[str, ...]:
    return tuple(json.loads(raw)) if raw else ()


_HEALTH = (
    HealthReport.id,
    HealthReport.at,
    HealthReport.device_id,
    HealthReport.running_version,
    HealthReport.crash_count,
    HealthReport.watchdog_count,
    HealthReport.uptime_s,
)


def _health(r: Any) -> p.NumberedHealth:
    return p.NumberedHealth(
        int(r[0]), as_utc(r[1]), int(r[2]), r[3], (r[4] or 0) + (r[5] or 0), r[6]
    )


class SqlFigureQueries:
    """The figure port's SQL, mixed into the campaign repository."""

    session: Session

    def current_marks(self) -> p.Marks:
        row = self.session.execute(
            select(
                select(func.max(ActionEvent.id)).scalar_subquery(),
                select(func.max(HealthReport.id)).scalar_subquery(),
                select(func.max(Device.id)).scalar_subquery(),
            )
        ).one()
        return p.Marks(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))

    def stored_figures(self, campaign_id: int) -> p.StoredFigures | None:
        row = self.session.get(CampaignFigure, campaign_id, populate_existing=True)
        if row is None:
            return None
        return p.StoredFigures(
            campaign_id,
            p.Marks(row.event_mark, row.health_mark, row.device_mark),
            tuple(int(e) for e in row.eligible),
            row.fleet,
            row.updated_crashes,
            row.updated_hours,
            row.baseline_crashes,
            row.baseline_hours,
        )

    def save_figures(self, figures: p.StoredFigures, now: datetime) -> None:
        values = {
            "event_mark": figures.marks.event,
            "health_mark": figures.marks.health,
            "device_mark": figures.marks.device,
            "eligible": list(figures.eligible),
            "fleet": figures.fleet,
            "updated_crashes": figures.updated_crashes,
            "updated_hours": figures.updated_hours,
            "baseline_crashes": figures.baseline_crashes,
            "baseline_hours": figures.baseline_hours,
            "updated_at": now,
        }
        row = self.session.get(CampaignFigure, figures.campaign_id)
        if row is None:
            self.session.add(CampaignFigure(campaign_id=figures.campaign_id, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)
        self.session.flush()

    def execution_counts(self, campaign_id: int, now: datetime) -> Mapping[tuple[int, str], int]:
        status = case(
            (CampaignExecution.due_at <= now, "timed_out"), else_=CampaignExecution.status
        )
        query = (
            select(CampaignExecution.stage, status, func.count())
            .where(CampaignExecution.campaign_id == campaign_id)
            .group_by(CampaignExecution.stage, status)
        )
        return {(int(r[0]), str(r[1])): int(r[2]) for r in self.session.execute(query)}

    def stored_executions(
        self, campaign_id: int, device_ids: Collection[int]
    ) -> Mapping[int, p.StoredExecution]:
        out: dict[int, p.StoredExecution] = {}
        for chosen in id_in(self.session, CampaignExecution.device_id, device_ids):
            query = select(
                CampaignExecution.device_id,
                CampaignExecution.stage,
                CampaignExecution.status,
                CampaignExecution.due_at,
            ).where(CampaignExecution.campaign_id == campaign_id, chosen)
            for r in self.session.execute(query):
                due = None if r[3] is None else as_utc(r[3])
                out[int(r[0])] = p.StoredExecution(int(r[0]), int(r[1]), str(r[2]), due)
        return out

    def save_executions(self, campaign_id: int, rows: Sequence[p.StoredExecution]) -> None:
        for chosen in id_in(self.session, CampaignExecution.device_id, [r.device_id for r in rows]):
            self.session.execute(
                delete(CampaignExecution)
                .where(CampaignExecution.campaign_id == campaign_id, chosen)
                .execution_options(synchronize_session=False)
            )
        if rows and self.session.get_bind().dialect.name == "postgresql":
            # One statement over five array parameters, not batches of bound rows.
            self.session.execute(
                text(
                    "INSERT INTO campaign_executions (campaign_id, device_id, stage, status, "
                    "due_at) SELECT :campaign, * FROM unnest(CAST(:devices AS BIGINT[]), "
                    "CAST(:stages AS INTEGER[]), CAST(:statuses AS TEXT[]), "
                    "CAST(:dues AS TIMESTAMPTZ[]))"
                ),
                {
                    "campaign": campaign_id,
                    "devices": [r.device_id for r in rows],
                    "stages": [r.stage for r in rows],
                    "statuses": [r.status for r in rows],
                    "dues": [r.due_at for r in rows],
                },
            )
            return
        values = [
            {
                "campaign_id": campaign_id,
                "device_id": r.device_id,
                "stage": r.stage,
                "status": r.status,
                "due_at": r.due_at,
            }
            for r in rows
        ]
        for start in range(0, len(values), 10 * _CHUNK):
            self.session.execute(insert(CampaignExecution), values[start : start + 10 * _CHUNK])

    def events_after(self, campaign_id: int, mark: int, *, limit: int) -> Sequence[p.Numbered]:
        # The campaign's own actions only (ix_actions_campaign_status, then each action's
        # events above the mark from ix_action_events_action): a campaign read long after
        # its last event costs its own actions, not every event the fleet sent since.
        query = (
            select(ActionEvent.id, ActionEvent.at, Action.device_id)
            .join(Action, Action.id == ActionEvent.action_id)
            .where(
                Action.campaign_id == campaign_id,
                ActionEvent.id > mark,
                ActionEvent.status_after.not_in(_SILENT_STEPS),
            )
            .order_by(ActionEvent.id)
            .limit(limit)
        )
        return [p.Numbered(int(r[0]), as_utc(r[1]), int(r[2])) for r in self.session.execute(query)]

    def health_after(self, mark: int, *, limit: int) -> Sequence[p.NumberedHealth]:
        query = (
            select(*_HEALTH).where(HealthReport.id > mark).order_by(HealthReport.id).limit(limit)
        )
        return [_health(r) for r in self.session.execute(query)]

    def devices_after(self, mark: int, *, limit: int) -> Sequence[p.Numbered]:
        query = (
            select(Device.id, Device.registered_at)
            .where(Device.id > mark)
            .order_by(Device.id)
            .limit(limit)
        )
        return [p.Numbered(int(r[0]), as_utc(r[1]), int(r[0])) for r in self.session.execute(query)]

    def fleet_devices(self, device_ids: Collection[int]) -> Sequence[cp.FleetDevice]:
        out: list[cp.FleetDevice] = []
        for chosen in id_in(self.session, Device.id, device_ids):
            query = (
                select(*FLEET_DEVICE_COLUMNS)
                .join(Tenant, Tenant.id == Device.tenant_id)
                .where(chosen, Device.removed_at.is_(None))
            )
            out.extend(
                cp.FleetDevice(r[0], r[1], r[2], r[3], groups_of(r[4]), r[5])
                for r in self.session.execute(query)
            )
        return out

    def health_of_devices(
        self, device_ids: Collection[int], since: datetime, *, upto: int
    ) -> Sequence[p.NumberedHealth]:
        out: list[p.NumberedHealth] = []
        for chosen in id_in(self.session, HealthReport.device_id, device_ids):
            query = (
                select(*_HEALTH)
                .where(
                    chosen,
                    HealthReport.id <= upto,
                    HealthReport.at >= since,
                )
                .order_by(HealthReport.id)
            )
            out.extend(_health(r) for r in self.session.execute(query))
        return sorted(out, key=lambda h: h.id)

    def health_between(self, since: datetime, upto: int) -> Sequence[p.NumberedHealth]:
        query = (
            select(*_HEALTH)
            .where(HealthReport.at >= since, HealthReport.id <= upto)
            .order_by(HealthReport.id)
        )
        return [_health(r) for r in self.session.execute(query)]
