"""SQLAlchemy implementations of the device API's ports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    bindparam,
    cast,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from patchgate.adapters.db.campaign_repos import STOP_COLUMNS, stop_of
from patchgate.adapters.db.core_repos import tenant_row
from patchgate.adapters.db.device_filters import compile_filter
from patchgate.adapters.db.device_import import SqlDeviceImportWriter
from patchgate.adapters.db.models import (
    Action,
    ActionEvent,
    Blob,
    Campaign,
    Device,
    DeviceGroup,
    HealthReport,
    Release,
    ReleaseArtifact,
    Tenant,
)
from patchgate.adapters.db.poll_reads import BY_CONTROLLER, BY_TOKEN, auth_row
from patchgate.adapters.db.release_repos import artifact_view, artifacts_by_release
from patchgate.domain import campaigns as core
from patchgate.domain import filters
from patchgate.domain.clock import as_utc
from patchgate.services import device_ports as p
from patchgate.services.device_import_ports import DeviceImportWriter


def _device(row: Device, tenant: str) -> p.DeviceRecord:
    return p.DeviceRecord(
        id=row.id,
        tenant=tenant,
        controller_id=row.controller_id,
        hardware=row.hardware,
        installed_version=row.installed_version,
        groups=tuple(sorted(row.group_names or ())),
        attributes=dict(row.attributes or {}),
        registered_at=as_utc(row.registered_at),
        last_seen=as_utc(row.last_seen) if row.last_seen else None,
        open_action_id=row.open_action_id,
        installed_action_id=row.installed_action_id,
        config_requested=row.config_requested,
        auto_confirm=row.auto_confirm,
        auto_confirm_by=row.auto_confirm_by,
        auto_confirm_remark=row.auto_confirm_remark,
        auto_confirm_at=as_utc(row.auto_confirm_at) if row.auto_confirm_at else None,
        removed_at=as_utc(row.removed_at) if row.removed_at else None,
        metadata=dict(row.meta or {}),
    )


class SqlDeviceRepository(p.DeviceRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def auth_by_token(self, tenant: str, token_hash: str) -> p.DeviceAuthRow | None:
        # One statement: device by its unique token hash, its tenant and open action by
        # primary key, and the state version as a scalar subquery.
        row = self.session.execute(BY_TOKEN, {"token_hash": token_hash, "tenant": tenant}).first()
        return auth_row(row)

    def auth_by_controller(self, tenant: str, controller_id: str) -> p.DeviceAuthRow | None:
        params = {"controller_id": controller_id, "tenant": tenant}
        row = self.session.execute(BY_CONTROLLER, params).first()
        return auth_row(row)

    def add(self, tenant_id: int, device: p.NewDevice, now: datetime) -> int:
        row = Device(
            tenant_id=tenant_id,
            controller_id=device.controller_id,
            token_hash=device.token_hash,
            hardware=device.hardware,
            installed_version=device.installed_version,
            attributes={},
            registered_at=now,
            group_names=sorted(set(device.groups)),
            config_requested=True,
            auto_confirm=False,
        )
        self.session.add(row)
        self.session.flush()
        for name in sorted(set(device.groups)):
            self.session.add(DeviceGroup(device_id=row.id, name=name))
        return row.id

    def import_writer(self, tenant_id: int, now: datetime) -> DeviceImportWriter:
        return SqlDeviceImportWriter(self.session, tenant_id, now)

    def _tenant_name(self, tenant_id: int) -> str:
        return str(self.session.execute(select(Tenant.name).where(Tenant.id == tenant_id)).scalar())

    def get(self, tenant: str, controller_id: str, *, lock: bool = False) -> p.DeviceRecord | None:
        named = Device.controller_id == controller_id
        row = tenant_row(self.session, Device, named, tenant, lock=lock)
        return _device(row, tenant) if row else None

    def get_by_id(self, device_id: int, *, lock: bool = False) -> p.DeviceRecord | None:
        query = select(Device).where(Device.id == device_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        return _device(row, self._tenant_name(row.tenant_id)) if row else None

    def list(
        self,
        tenant: str,
        *,
        group: str | None = None,
        after: str | None = None,
        limit: int = 1000,
        query: filters.Expression | None = None,
    ) -> Sequence[p.DeviceRecord]:
        # Keyset paging over the (tenant_id, controller_id) unique index: each page starts
        # where the last one ended, at the same cost on the millionth device as on the first.
        # The tenant's id is a scalar subquery, not a join: with the id a constant the
        # planner walks that index in order and stops at the page's end (PostgreSQL read
        # and sorted the whole table for the first page through the join).
        tenant_id = select(Tenant.id).where(Tenant.name == tenant).scalar_subquery()
        base = (
            select(Device)
            .where(Device.tenant_id == tenant_id, Device.removed_at.is_(None))
            .order_by(Device.controller_id)
        )
        if group is not None:
            base = base.join(DeviceGroup, DeviceGroup.device_id == Device.id).where(
                DeviceGroup.name == group
            )
        compiled = compile_filter(query) if query is not None else None
        if compiled is not None:
            base = base.where(compiled.where)
        if query is None or compiled is None or compiled.exact:
            cursor = base if after is None else base.where(Device.controller_id > after)
            return [_device(r, tenant) for r in self.session.scalars(cursor.limit(limit))]
        # The SQL selects a superset (docs/device-filters.md): keep what the rule selects,
        # reading on until the page is full.
        out: list[p.DeviceRecord] = []
        while len(out) < limit:
            cursor = base if after is None else base.where(Device.controller_id > after)
            rows = list(self.session.scalars(cursor.limit(limit * 4)))
            for row in rows:
                device = _device(row, tenant)
                if filters.matches(query, device):
                    out.append(device)
            if len(rows) < limit * 4:
                break
            after = rows[-1].controller_id
        return out[:limit]

    def set_groups(self, device_id: int, groups: Sequence[str]) -> None:
        names = sorted(set(groups))
        self.session.execute(delete(DeviceGroup).where(DeviceGroup.device_id == device_id))
        for name in names:
            self.session.add(DeviceGroup(device_id=device_id, name=name))
        self.session.execute(update(Device).where(Device.id == device_id).values(group_names=names))
        self.session.flush()

    def update(self, device_id: int, changes: p.DeviceChanges) -> None:
        values = changes.values()
        if values:
            self.session.execute(update(Device).where(Device.id == device_id).values(**values))

    def census(self) -> Mapping[tuple[str | None, str | None], int]:
        # Every column read is in ix_devices_hardware_version: PostgreSQL answers it with
        # an index-only scan (docs/metrics.md).
        rows = self.session.execute(
            select(Device.hardware, Device.installed_version, func.count())
            .where(Device.removed_at.is_(None))
            .group_by(Device.hardware, Device.installed_version)
        ).all()
        return {(hardware, version): int(count) for hardware, version, count in rows}

    def touch_many(self, seen: Mapping[int, datetime]) -> None:
        if not seen:
            return
        # Sorted ids, so concurrent flushers lock rows in the same order.
        rows = sorted(seen.items())
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            # One statement with the batch as two arrays: a fleet's worth of rows per
            # second costs the database one UPDATE and the server almost no Python.
            batch = (
                func.unnest(
                    cast(bindparam("ids"), ARRAY(BigInteger)),
                    cast(bindparam("times"), ARRAY(DateTime(timezone=True))),
                )
                .table_valued("id", "at")
                .render_derived(name="seen")
            )
            connection.execute(
                update(Device).where(Device.id == batch.c.id).values(last_seen=batch.c.at),
                {"ids": [k for k, _ in rows], "times": [v for _, v in rows]},
            )
            return
        # Elsewhere one executemany.
        table = Device.__table__
        connection.execute(
            update(table).where(table.c.id == bindparam("b_id")),  # type: ignore[arg-type]  # a Table
            [{"b_id": k, "last_seen": v} for k, v in rows],
        )


def _action(row: Action) -> p.ActionRecord:
    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value else None

    return p.ActionRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        device_id=row.device_id,
        release_id=row.release_id,
        campaign_id=row.campaign_id,
        source=row.source,
        status=row.status,
        active=row.active,
        download_type=row.download_type,
        update_type=row.update_type,
        window_start=utc(row.window_start),
        window_end=utc(row.window_end),
        result=row.result,
        progress_cnt=row.progress_cnt,
        progress_of=row.progress_of,
        last_execution=row.last_execution,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        closed_at=utc(row.closed_at),
        cancel_requested_at=utc(row.cancel_requested_at),
        created_by=row.created_by,
    )


def _with_stop(query: Any) -> Any:
    """``query`` with the facts of each action's campaign that say whether its halt or
    cancellation cancelled the action (``domain.campaigns.stop_cancel``)."""
    return query.add_columns(*STOP_COLUMNS).outerjoin(Campaign, Campaign.id == Action.campaign_id)


def _stop_cancel(record: p.ActionRecord, row: Any) -> tuple[datetime, str] | None:
    stop = stop_of(tuple(row[1:7]))
    return core.stop_cancel(record.status, record.active, record.release_id, stop)


def _as_stopped(row: Any) -> p.ActionRecord:
    """An action as read, ``canceling`` when its campaign's stop cancelled it though its
    row does not say so yet (docs/campaigns.md, "Halt")."""
    record = _action(row[0])
    cancelled = _stop_cancel(record, row)
    if cancelled is None:
        return record
    return replace(record, status="canceling", cancel_requested_at=cancelled[0])


def _succeeds(event: p.NewActionEvent) -> bool:
    """Whether the event is a successful finish: a deployment feedback ``closed``/``success``
    that moved its action to ``finished`` (the time ``actions.succeeded_at`` keeps)."""
    finish = event.channel == "deployment" and event.status_after == "finished"
    return finish and event.finished == "success"


def _event(row: ActionEvent) -> p.ActionEventRecord:
    return p.ActionEventRecord(
        id=row.id,
        action_id=row.action_id,
        at=as_utc(row.at),
        channel=row.channel,
        execution=row.execution,
        finished=row.finished,
        progress_cnt=row.progress_cnt,
        progress_of=row.progress_of,
        code=row.code,
        details=tuple(row.details or ()),
        status_after=row.status_after,
    )


class SqlActionRepository(p.ActionRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, action: p.NewActionRow) -> p.ActionRecord:
        row = Action(**{f.name: getattr(action, f.name) for f in fields(action)})
        self.session.add(row)
        self.session.flush()
        return _action(row)

    def get(self, action_id: int, *, lock: bool = False) -> p.ActionRecord | None:
        query = _with_stop(select(Action)).where(Action.id == action_id)
        if lock:
            query = query.with_for_update(of=Action)
        row = self.session.execute(query).one_or_none()
        if row is None:
            return None
        record = _action(row[0])
        cancelled = _stop_cancel(record, row)
        if cancelled is None:
            return record
        at, detail = cancelled
        if lock:
            # A writer reads it: its row is made to say what its campaign's stop said
            # (docs/campaigns.md, "Halt"), with the step the stop would have written.
            self.session.execute(
                update(Action)
                .where(Action.id == action_id)
                .values(status="canceling", cancel_requested_at=at, updated_at=at)
                .execution_options(synchronize_session=False)
            )
            self.session.add(
                ActionEvent(
                    action_id=action_id,
                    at=at,
                    channel="server",
                    details=[detail],
                    status_after="canceling",
                )
            )
            self.session.flush()
        return replace(record, status="canceling", cancel_requested_at=at, updated_at=at)

    def update(self, action_id: int, changes: p.ActionChanges) -> None:
        values = changes.values()
        if values:
            self.session.execute(update(Action).where(Action.id == action_id).values(**values))

    def for_device(self, device_id: int, *, limit: int = 50) -> Sequence[p.ActionRecord]:
        query = (
            _with_stop(select(Action))
            .where(Action.device_id == device_id)
            .order_by(Action.id.desc())
            .limit(limit)
        )
        return [_as_stopped(r) for r in self.session.execute(query)]

    def open_for_campaign(
        self, campaign_id: int, created_before: datetime, *, limit: int
    ) -> Sequence[p.ActionRecord]:
        query = (
            _with_stop(select(Action))
            .where(
                Action.campaign_id == campaign_id,
                Action.active.is_(True),
                Action.created_at < created_before,
            )
            .order_by(Action.id)
            .limit(limit)
        )
        return [_as_stopped(r) for r in self.session.execute(query)]

    def add_event(self, event: p.NewActionEvent) -> None:
        values = {f.name: getattr(event, f.name) for f in fields(event)}
        values["details"] = list(event.details)
        self.session.add(ActionEvent(**values))
        self.session.flush()
        if _succeeds(event):
            # The first successful finish, kept on the action in the same transaction
            # as its event (docs/console.md, "Performance"); a later one leaves it.
            self.session.execute(
                update(Action)
                .where(Action.id == event.action_id, Action.succeeded_at.is_(None))
                .values(succeeded_at=event.at)
                .execution_options(synchronize_session=False)
            )

    def last_event(self, action_id: int, channel: str) -> p.ActionEventRecord | None:
        query = (
            select(ActionEvent)
            .where(ActionEvent.action_id == action_id, ActionEvent.channel == channel)
            .order_by(ActionEvent.id.desc())
            .limit(1)
        )
        row = self.session.execute(query).scalar_one_or_none()
        return _event(row) if row else None

    def events(self, action_id: int, *, limit: int = 100) -> Sequence[p.ActionEventRecord]:
        query = (
            select(ActionEvent)
            .where(ActionEvent.action_id == action_id)
            .order_by(ActionEvent.id.desc())
            .limit(limit)
        )
        return [_event(r) for r in reversed(list(self.session.execute(query).scalars()))]


def _health(row: HealthReport) -> p.HealthRecord:
    return p.HealthRecord(
        id=row.id,
        device_id=row.device_id,
        release_id=row.release_id,
        at=as_utc(row.at),
        running_version=row.running_version,
        boot_count=row.boot_count,
        uptime_s=row.uptime_s,
        crash_count=row.crash_count,
        watchdog_count=row.watchdog_count,
        metrics=dict(row.metrics or {}),
    )


class SqlHealthRepository(p.HealthRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, report: p.NewHealthReport) -> None:
        values = {f.name: getattr(report, f.name) for f in fields(report)}
        values["metrics"] = dict(report.metrics)
        self.session.add(HealthReport(**values))
        self.session.flush()

    def for_device(self, device_id: int, *, limit: int = 50) -> Sequence[p.HealthRecord]:
        query = (
            select(HealthReport)
            .where(HealthReport.device_id == device_id)
            .order_by(HealthReport.id.desc())
            .limit(limit)
        )
        return [_health(r) for r in self.session.execute(query).scalars()]

    def for_release(
        self, release_id: int, *, since: datetime | None = None
    ) -> Sequence[p.HealthRecord]:
        query = select(HealthReport).where(HealthReport.release_id == release_id)
        if since is not None:
            query = query.where(HealthReport.at >= since)
        return [_health(r) for r in self.session.execute(query.order_by(HealthReport.id)).scalars()]


class SqlReleaseCatalog(p.ReleaseCatalog):
    def __init__(self, session: Session) -> None:
        self.session = session

    def _view(self, row: Release, artifacts: list[p.ArtifactView]) -> p.ReleaseView:
        return p.ReleaseView(
            id=row.id,
            product=row.product,
            version=row.version,
            type=row.type,
            state=row.state,
            hardware=tuple(row.hardware or ()),
            artifacts=tuple(artifacts),
        )

    def get(self, release_id: int) -> p.ReleaseView | None:
        row = self.session.get(Release, release_id)
        if row is None:
            return None
        return self._view(row, artifacts_by_release(self.session, [row.id]).get(row.id, []))

    def find(self, product: str | None, version: str) -> Sequence[p.ReleaseView]:
        query = select(Release).where(Release.version == version).order_by(Release.id)
        if product is not None:
            query = query.where(Release.product == product)
        rows = list(self.session.execute(query).scalars())
        arts = artifacts_by_release(self.session, [r.id for r in rows])
        return [self._view(r, arts.get(r.id, [])) for r in rows]

    def artifact(self, artifact_id: int) -> tuple[int, p.ArtifactView] | None:
        query = (
            select(ReleaseArtifact, Blob)
            .join(Blob, Blob.sha256 == ReleaseArtifact.sha256)
            .where(ReleaseArtifact.id == artifact_id)
        )
        found = self.session.execute(query).first()
        if found is None:
            return None
        art, blob = found
        return art.release_id, artifact_view(art, blob)
