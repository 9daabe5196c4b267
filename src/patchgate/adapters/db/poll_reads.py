"""The poll's one read (docs/ddi.md, "The poll path"): the statement that finds a device,
its tenant, its open action and the state version in one go, and the synchronous reader
that runs it without the ORM. The PostgreSQL reader for the event loop is in
``pg_poll_reads``; the ORM repository answers the same read in ``device_repos``."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Text, bindparam, cast, select

from patchgate.adapters.db.engine import outage, unreachable
from patchgate.adapters.db.models import Action, Device, StateVersion, Tenant
from patchgate.domain.clock import as_utc
from patchgate.services import device_ports as p

STATE_VERSION = (
    select(StateVersion.version).where(StateVersion.id == 1).scalar_subquery().label("sv")
)
ROW_COLUMNS = (
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
    Action.campaign_id.label("action_campaign_id"),
    Action.window_start.label("action_window_start"),
    # What a campaign's device query may read beyond the columns above, as the stored JSON
    # text: parsed only when a query reads an attribute or a metadata key
    # (docs/device-filters.md "Campaigns on a filter").
    cast(Device.attributes, Text).label("attributes_json"),
    cast(Device.meta, Text).label("metadata_json"),
)


def by_token_query(tenant: Any, token_hash: Any, *columns: Any) -> Any:
    """The poll's read of a device by its token hash (a device of ``tenant`` only)."""
    return (
        select(*columns)
        .select_from(Device)
        .join(Tenant, Tenant.id == Device.tenant_id)
        .outerjoin(Action, Action.id == Device.open_action_id)
        .where(Device.token_hash == token_hash, Tenant.name == tenant)
    )


def by_controller_query(tenant: Any, controller_id: Any, *columns: Any) -> Any:
    """The poll's read by tenant and controllerId: the tenant's row even when no device
    has that controllerId (gateway registration and anonymous mode need it). A removed
    device reads as no device here, and ``register`` refuses its controllerId."""
    return (
        select(*columns)
        .select_from(Tenant)
        .outerjoin(
            Device,
            (Device.tenant_id == Tenant.id)
            & (Device.controller_id == controller_id)
            & Device.removed_at.is_(None),
        )
        .outerjoin(Action, Action.id == Device.open_action_id)
        .where(Tenant.name == tenant)
    )


BY_TOKEN = by_token_query(bindparam("tenant"), bindparam("token_hash"), STATE_VERSION, *ROW_COLUMNS)
BY_CONTROLLER = by_controller_query(
    bindparam("tenant"), bindparam("controller_id"), STATE_VERSION, *ROW_COLUMNS
)


class Prepared:
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


def auth_row(row: Any) -> p.DeviceAuthRow | None:
    """The auth row from a tuple of the state version, then ``ROW_COLUMNS``: a SQLAlchemy
    ``Row`` or what a raw DBAPI or libpq read returns (every reader of the poll's row)."""
    if row is None:
        return None
    (sv, tenant_id, tenant, anonymous, gateway, device_id, controller_id, token_hash,
     hardware, version, groups, installed_action, config_requested,
     auto_confirm, last_seen, action_id, action_status, action_release,
     action_campaign, window_start, attributes_json, metadata_json) = row  # fmt: skip
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
        action_campaign_id=action_campaign,
        action_window_start=_datetime(window_start),
        attributes_json=attributes_json,
        metadata_json=metadata_json,
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
        self._by_token = Prepared(engine, BY_TOKEN)
        self._by_controller = Prepared(engine, BY_CONTROLLER)
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

    def _fetch(self, prepared: Prepared, values: dict[str, Any]) -> Any:
        try:
            return self._fetch_raw(prepared, values)
        except Exception as exc:
            # Raw DBAPI calls bypass the engine's error hook: an outage is said here.
            if unreachable(exc):
                raise outage("poll again shortly") from exc
            raise

    def _fetch_raw(self, prepared: Prepared, values: dict[str, Any]) -> Any:
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

    def _one(self, prepared: Prepared, values: dict[str, Any]) -> p.DeviceAuthRow | None:
        return auth_row(self._fetch(prepared, values))

    def by_token(self, tenant: str, token_hash: str) -> p.DeviceAuthRow | None:
        return self._one(self._by_token, {"token_hash": token_hash, "tenant": tenant})

    def by_controller(self, tenant: str, controller_id: str) -> p.DeviceAuthRow | None:
        return self._one(self._by_controller, {"controller_id": controller_id, "tenant": tenant})
