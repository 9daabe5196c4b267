"""SQLAlchemy implementations of the device API's ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Text,
    bindparam,
    cast,
    delete,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import (
    Action,
    ActionEvent,
    Blob,
    Device,
    DeviceGroup,
    HealthReport,
    Release,
    ReleaseArtifact,
    StateVersion,
    Tenant,
)
from patchgate.adapters.db.release_repos import artifact_view, artifacts_by_release
from patchgate.domain.clock import as_utc
from patchgate.services import device_ports as p

_STATE_VERSION = (
    select(StateVersion.version).where(StateVersion.id == 1).scalar_subquery().label("sv")
)
_ROW_COLUMNS = (
    Tenant.id.label("tenant_id"),
    Tenant.name.label("tenant"),
    Tenant.anonymous_ddi,
    Tenant.gateway_token_hash,
    Device.id.label("device_id"),
    Device.controller_id,
    Device.token_hash,
    Device.hardware,
    Device.installed_version,
    Device.group_names,
    Device.installed_action_id,
    Device.config_requested,
    Device.auto_confirm,
    Device.last_seen,
    Action.id.label("action_id"),
    Action.status.label("action_status"),
    Action.release_id.label("action_release_id"),
)


def _by_token(tenant: Any, token_hash: Any, *columns: Any) -> Any:
    """The poll's read of a device by its token hash (a device of ``tenant`` only)."""
    return (
        select(*columns)
        .select_from(Device)
        .join(Tenant, Tenant.id == Device.tenant_id)
        .outerjoin(Action, Action.id == Device.open_action_id)
        .where(Device.token_hash == token_hash, Tenant.name == tenant)
    )


def _by_controller(tenant: Any, controller_id: Any, *columns: Any) -> Any:
    """The poll's read by tenant and controllerId: the tenant's row even when no device
    has that controllerId (gateway registration and anonymous mode need it)."""
    return (
        select(*columns)
        .select_from(Tenant)
        .outerjoin(
            Device, (Device.tenant_id == Tenant.id) & (Device.controller_id == controller_id)
        )
        .outerjoin(Action, Action.id == Device.open_action_id)
        .where(Tenant.name == tenant)
    )


_BY_TOKEN = _by_token(bindparam("tenant"), bindparam("token_hash"), _STATE_VERSION, *_ROW_COLUMNS)
_BY_CONTROLLER = _by_controller(
    bindparam("tenant"), bindparam("controller_id"), _STATE_VERSION, *_ROW_COLUMNS
)


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
    )


class SqlDeviceRepository(p.DeviceRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def auth_by_token(self, tenant: str, token_hash: str) -> p.DeviceAuthRow | None:
        # One statement: device by its unique token hash, its tenant and open action by
        # primary key, and the state version as a scalar subquery.
        row = self.session.execute(_BY_TOKEN, {"token_hash": token_hash, "tenant": tenant}).first()
        return _auth_row(row)

    def auth_by_controller(self, tenant: str, controller_id: str) -> p.DeviceAuthRow | None:
        params = {"controller_id": controller_id, "tenant": tenant}
        row = self.session.execute(_BY_CONTROLLER, params).first()
        return _auth_row(row)

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

    def _tenant_name(self, tenant_id: int) -> str:
        return str(self.session.execute(select(Tenant.name).where(Tenant.id == tenant_id)).scalar())

    def get(self, tenant: str, controller_id: str, *, lock: bool = False) -> p.DeviceRecord | None:
        query = (
            select(Device)
            .join(Tenant, Tenant.id == Device.tenant_id)
            .where(Tenant.name == tenant, Device.controller_id == controller_id)
        )
        if lock:
            query = query.with_for_update(of=Device)
        row = self.session.execute(query).scalar_one_or_none()
        return _device(row, tenant) if row else None

    def get_by_id(self, device_id: int, *, lock: bool = False) -> p.DeviceRecord | None:
        query = select(Device).where(Device.id == device_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        return _device(row, self._tenant_name(row.tenant_id)) if row else None

    def list(
        self, tenant: str, *, group: str | None = None, limit: int = 1000
    ) -> Sequence[p.DeviceRecord]:
        query = (
            select(Device)
            .join(Tenant, Tenant.id == Device.tenant_id)
            .where(Tenant.name == tenant)
            .order_by(Device.controller_id)
            .limit(limit)
        )
        if group is not None:
            query = query.join(DeviceGroup, DeviceGroup.device_id == Device.id).where(
                DeviceGroup.name == group
            )
        return [_device(r, tenant) for r in self.session.execute(query).scalars()]

    def set_groups(self, device_id: int, groups: Sequence[str]) -> None:
        names = sorted(set(groups))
        self.session.execute(delete(DeviceGroup).where(DeviceGroup.device_id == device_id))
        for name in names:
            self.session.add(DeviceGroup(device_id=device_id, name=name))
        self.session.execute(update(Device).where(Device.id == device_id).values(group_names=names))
        self.session.flush()

    def update(self, device_id: int, **values: Any) -> None:
        self.session.execute(update(Device).where(Device.id == device_id).values(**values))

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

    def add(self, **values: Any) -> p.ActionRecord:
        row = Action(**values)
        self.session.add(row)
        self.session.flush()
        return _action(row)

    def get(self, action_id: int, *, lock: bool = False) -> p.ActionRecord | None:
        query = select(Action).where(Action.id == action_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        return _action(row) if row else None

    def update(self, action_id: int, **values: Any) -> None:
        self.session.execute(update(Action).where(Action.id == action_id).values(**values))

    def for_device(self, device_id: int, *, limit: int = 50) -> Sequence[p.ActionRecord]:
        query = (
            select(Action)
            .where(Action.device_id == device_id)
            .order_by(Action.id.desc())
            .limit(limit)
        )
        return [_action(r) for r in self.session.execute(query).scalars()]

    def add_event(self, **values: Any) -> None:
        self.session.add(ActionEvent(**values))
        self.session.flush()

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

    def add(self, **values: Any) -> None:
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


class _Prepared:
    """A statement compiled once for the engine's dialect, run on a raw pooled connection."""

    def __init__(self, engine: Engine, statement: Any) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.positional = engine.dialect.paramstyle in ("qmark", "numeric", "format")
        self.order = tuple(compiled.positiontup or ()) if self.positional else ()
        self.constants = {k: v for k, v in compiled.params.items() if v is not None}

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self.constants, **values}
        return tuple(merged[name] for name in self.order) if self.positional else merged


def _auth_row(row: Any) -> p.DeviceAuthRow | None:
    """The auth row from a tuple of the state version, then ``_ROW_COLUMNS``: a SQLAlchemy
    ``Row`` or what a raw DBAPI or libpq read returns (every reader of the poll's row)."""
    if row is None:
        return None
    (sv, tenant_id, tenant, anonymous, gateway, device_id, controller_id, token_hash,
     hardware, version, groups, installed_action, config_requested,
     auto_confirm, last_seen, action_id, action_status, action_release) = row  # fmt: skip
    return p.DeviceAuthRow(
        state_version=int(sv or 0),
        tenant_id=tenant_id,
        tenant=tenant,
        anonymous_ddi=bool(anonymous),
        gateway_token_hash=gateway,
        device_id=device_id,
        controller_id=controller_id,
        token_hash=token_hash,
        hardware=hardware,
        installed_version=version,
        groups=_groups(groups),
        installed_action_id=installed_action,
        config_requested=bool(config_requested),
        auto_confirm=bool(auto_confirm),
        last_seen=_datetime(last_seen),
        action_id=action_id,
        action_status=action_status,
        action_release_id=action_release,
    )


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands raw DBAPI callers the stored text
        value = datetime.fromisoformat(value)
    return as_utc(value)


def _groups(value: Any) -> tuple[str, ...]:
    if value is None or value == "[]":
        return ()
    return tuple(json.loads(value) if isinstance(value, str | bytes) else value)


class SqlDeviceAuthReader(p.DeviceAuthReader):
    """The poll's read without the ORM: one prepared statement on a raw DBAPI connection
    (no session, no unit of work; on SQLite not even a BEGIN, since a single SELECT is
    atomic on its own).

    With ``dedicated``, the first thread to read keeps one connection of its own in
    autocommit mode (each SELECT sees everything committed before it, so no snapshot goes
    stale) and skips the pool's checkout and reset, which cost more than the query. That
    is meant for the event-loop thread that answers polls; any other thread uses the pool.
    """

    def __init__(self, engine: Engine, *, dedicated: bool = False) -> None:
        self.engine = engine
        self._by_token = _Prepared(engine, _BY_TOKEN)
        self._by_controller = _Prepared(engine, _BY_CONTROLLER)
        self._dedicated = dedicated
        self._owner: int | None = None
        self._connection: Any = None

    def _own_connection(self) -> Any:
        if self._connection is None:
            fairy = self.engine.raw_connection()
            fairy.detach()  # ours for good: the pool neither resets nor reclaims it
            dbapi: Any = fairy.dbapi_connection
            if self.engine.dialect.name == "postgresql":
                dbapi.autocommit = True
            self._connection = dbapi
        return self._connection

    def _fetch(self, prepared: _Prepared, values: dict[str, Any]) -> Any:
        params = prepared.params(values)
        if self._dedicated:
            me = threading.get_ident()
            if self._owner is None:
                self._owner = me
            if self._owner == me:
                for attempt in (1, 2):
                    try:
                        cursor = self._own_connection().cursor()
                        cursor.execute(prepared.sql, params)
                        row = cursor.fetchone()
                        cursor.close()
                        return row
                    except Exception:
                        # A broken connection (database restarted): reconnect once.
                        with contextlib.suppress(Exception):
                            self._connection.close()
                        self._connection = None
                        if attempt == 2:
                            raise
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(prepared.sql, params)
            row = cursor.fetchone()
            cursor.close()
        finally:
            connection.close()  # back to the pool, which rolls back (ends PG's snapshot)
        return row

    def _one(self, prepared: _Prepared, values: dict[str, Any]) -> p.DeviceAuthRow | None:
        return _auth_row(self._fetch(prepared, values))

    def by_token(self, tenant: str, token_hash: str) -> p.DeviceAuthRow | None:
        return self._one(self._by_token, {"token_hash": token_hash, "tenant": tenant})

    def by_controller(self, tenant: str, controller_id: str) -> p.DeviceAuthRow | None:
        return self._one(self._by_controller, {"controller_id": controller_id, "tenant": tenant})


def _keyed(read: Any) -> Any:
    """``read`` (:func:`_by_token` or :func:`_by_controller`) for a batch of lookups: the
    keys come as two text arrays, ``tenants`` and ``keys``, and each answer row starts with
    the 1-based position of its key (``n``), so every lookup finds its own row. The read runs
    once per key (``LATERAL``), the same indexed lookup as a single poll's whatever the
    planner's statistics say; the state version is read once, in the same statement."""
    keys = (
        func.unnest(cast(bindparam("tenants"), ARRAY(Text)), cast(bindparam("keys"), ARRAY(Text)))
        .table_valued("tenant", "key", with_ordinality="n")
        .render_derived(name="k")
    )
    one = read(keys.c.tenant, keys.c.key, *_ROW_COLUMNS).lateral("r")
    return select(keys.c.n, _STATE_VERSION, *one.c).select_from(keys).join(one, true())


def _storable(value: str) -> bool:
    """Whether PostgreSQL can hold ``value`` as text (no NUL, encodable as UTF-8); a key
    it cannot hold matches no row."""
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _text_array(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of ``values``, every element quoted (so commas, braces,
    quotes, backslashes and spaces in a controllerId arrive as sent)."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


class _PqStatement:
    """One of the poll's statements for libpq: named, ``$n`` parameters, text values."""

    def __init__(self, engine: Engine, statement: Any, name: bytes) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        self.name = name
        self.sql = re.sub(r"%\((\w+)\)s", number, str(compiled)).encode()
        self.names = tuple(names)
        self.constants = {k: v for k, v in compiled.params.items() if v is not None}

    def params(self, values: dict[str, Any]) -> list[bytes | None]:
        merged = {**self.constants, **values}
        return [None if merged[n] is None else str(merged[n]).encode() for n in self.names]


class _PqConnection:
    """A psycopg connection used through libpq's asynchronous calls; psycopg's loaders
    turn the answer into Python values exactly as its cursors do."""

    def __init__(self, connection: Any, statements: Sequence[_PqStatement]) -> None:
        from psycopg import pq
        from psycopg.adapt import Transformer

        self.connection = connection
        self.pg = connection.pgconn
        for statement in statements:  # once per connection, before it goes non-blocking
            result = self.pg.prepare(statement.name, statement.sql)
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise RuntimeError(result.get_error_message())
        self.pg.nonblocking = 1
        self.transformer = Transformer(connection)
        self._ok = pq.ExecStatus.TUPLES_OK

    async def fetchall(self, statement: _PqStatement, params: list[bytes | None]) -> list[Any]:
        pg = self.pg
        loop = asyncio.get_running_loop()
        pg.send_query_prepared(statement.name, params)
        while pg.flush():
            await _ready(loop, loop.add_writer, loop.remove_writer, pg.socket)
        pg.consume_input()
        while pg.is_busy():
            await _ready(loop, loop.add_reader, loop.remove_reader, pg.socket)
            pg.consume_input()
        result, extra = pg.get_result(), pg.get_result()
        while extra is not None:  # a single statement gives one result; drain defensively
            extra = pg.get_result()
        if result is None or result.status != self._ok:
            message = result.get_error_message() if result is not None else "no result"
            raise RuntimeError(f"poll read failed: {message}")
        if result.ntuples == 0:
            return []
        self.transformer.set_pgresult(result)
        return self.transformer.load_rows(0, result.ntuples, tuple)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()


async def _ready(loop: Any, add: Any, remove: Any, fd: int) -> None:
    """Until ``fd`` is ready (``add``/``remove``: the loop's reader or writer calls)."""
    future = loop.create_future()
    add(fd, lambda: future.done() or future.set_result(None))
    try:
        await future
    finally:
        remove(fd)


# A queued lookup: tenant, key, the future its poll awaits, its arrival number.
_Queued = tuple[str, str, Any, int]


def _fail(batch: Sequence[_Queued], exc: BaseException) -> None:
    """Settle the waiting polls of ``batch`` with ``exc``."""
    for *_, future, _ in batch:
        if not future.done():
            future.set_exception(exc)


# One statement answers at most this many polls (the rest wait for the next one).
MAX_BATCH = 256


class AsyncPgDeviceAuthReader(p.AsyncDeviceAuthReader):
    """The poll's read on PostgreSQL without blocking the event loop, and shared: polls that
    arrive while a read is in flight wait together, and the next read answers all of them
    with one statement (each key one indexed lookup, the state version read once, in the
    same statement). No poll is ever answered by a read sent before it arrived, so a halt
    is obeyed from its commit.

    The statements are prepared once per connection and sent with libpq's asynchronous
    calls on up to ``connections`` connections of the loop's own, in autocommit mode. A
    read runs in a task of the reader's, not in the request, so a request cancelled while
    it waits abandons nothing. Connections open on first use, inside the loop that uses
    them; one that fails is closed with the idle ones, and its batch is tried once more on
    a connection opened now."""

    def __init__(self, engine: Engine, *, connections: int = 1) -> None:
        self._by_token = _PqStatement(engine, _keyed(_by_token), b"pg_poll_by_token")
        self._by_controller = _PqStatement(engine, _keyed(_by_controller), b"pg_poll_by_controller")
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._limit = max(1, connections)
        self._free: list[_PqConnection] = []
        self._readers = 0
        self._queued: dict[_PqStatement, list[_Queued]] = {
            self._by_token: [],
            self._by_controller: [],
        }
        self._tasks: set[Any] = set()
        self._arrivals = 0
        # for tests and the benchmark's notes: statements sent and lookups they answered
        self.reads = 0
        self.lookups = 0

    async def _lookup(self, statement: _PqStatement, tenant: str, key: str) -> Any:
        if not _storable(tenant):
            return None  # no tenant has that name
        if not _storable(key):
            # No device has that key, but the read still answers for the tenant; a value
            # PostgreSQL cannot take must not fail the other polls of its batch.
            if statement is self._by_token:
                return None
            key = ""  # no controllerId is empty
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._arrivals += 1
        self._queued[statement].append((tenant, key, future, self._arrivals))
        if self._readers < self._limit:
            self._readers += 1
            task = loop.create_task(self._read_while_queued())
            self._tasks.add(task)
            task.add_done_callback(self._reader_done)
        return await future

    def _reader_done(self, task: Any) -> None:
        self._tasks.discard(task)
        self._readers -= 1
        if task.cancelled():
            # The loop is shutting down (a reader is cancelled, perhaps before it began):
            # what still waits gets an error rather than no answer.
            for queue in self._queued.values():
                _fail(queue, RuntimeError("poll read cancelled"))
                queue.clear()

    def _take(self) -> tuple[_PqStatement, list[_Queued]] | None:
        """The first ``MAX_BATCH`` lookups of the queue whose head has waited longest
        (cancelled ones skipped); None when nothing waits."""
        waiting = [s for s, queue in self._queued.items() if queue]
        if not waiting:
            return None
        statement = min(waiting, key=lambda s: self._queued[s][0][3])
        queue = self._queued[statement]
        batch = [item for item in queue[:MAX_BATCH] if not item[2].done()]
        del queue[:MAX_BATCH]
        return statement, batch

    async def _read_while_queued(self) -> None:
        connection: _PqConnection | None = None
        try:
            while (taken := self._take()) is not None:
                statement, batch = taken
                if batch:
                    connection = await self._answer(connection, statement, batch)
        finally:
            if connection is not None:
                self._free.append(connection)

    async def _connect(self) -> _PqConnection:
        import psycopg

        if self._free:
            return self._free.pop()
        raw = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return _PqConnection(raw, (self._by_token, self._by_controller))

    async def _answer(
        self,
        connection: _PqConnection | None,
        statement: _PqStatement,
        batch: list[_Queued],
    ) -> _PqConnection | None:
        """Read ``batch`` and settle its futures; returns the connection to keep using."""
        values = {
            "tenants": _text_array([item[0] for item in batch]),
            "keys": _text_array([item[1] for item in batch]),
        }
        params = statement.params(values)
        for attempt in (1, 2):
            try:
                if connection is None:
                    connection = await self._connect()
                rows = await connection.fetchall(statement, params)
            except asyncio.CancelledError:
                # The loop is shutting down mid-read: the connection's state is unknown, and
                # the polls waiting for this batch get an answer (an error) rather than none.
                if connection is not None:
                    await connection.close()
                _fail(batch, RuntimeError("poll read cancelled"))
                raise
            except Exception as exc:
                # Broken (the database restarted, an administrator ended the session): its
                # state is unknown, so it is closed, not reused, with the idle ones, which
                # the same cause broke; the retry runs on a connection opened now.
                stale = [connection] if connection is not None else []
                stale += self._free
                connection, self._free = None, []
                for broken in stale:
                    await broken.close()
                if attempt == 2:
                    _fail(batch, exc)
                    return None
                continue
            self.reads += 1
            self.lookups += len(batch)
            found: dict[int, Any] = {}
            for row in rows:
                found.setdefault(int(row[0]), row[1:])
            for n, (*_, future, _) in enumerate(batch, start=1):
                if not future.done():
                    future.set_result(found.get(n))
            return connection
        return None  # pragma: no cover

    async def by_token(self, tenant: str, token_hash: str) -> p.DeviceAuthRow | None:
        return _auth_row(await self._lookup(self._by_token, tenant, token_hash))

    async def by_controller(self, tenant: str, controller_id: str) -> p.DeviceAuthRow | None:
        return _auth_row(await self._lookup(self._by_controller, tenant, controller_id))
