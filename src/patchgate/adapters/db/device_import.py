"""The bulk device import's SQL (``services.device_import_ports``; docs/devices.md,
"Importing a fleet"): rows are staged in a temporary table — with COPY on PostgreSQL,
batched inserts on SQLite — then checked against the fleet in one query and written with
one ``INSERT … SELECT`` per table, all in the caller's transaction: a failure or a killed
process leaves nothing behind."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from patchgate.services.device_import_ports import Clash, DeviceImportWriter, StagedRow

_COPY_ROWS = (
    "COPY device_import_rows (line, controller_id, token_hash, hardware, version, group_names) "
    "FROM STDIN"
)
# Temporary tables belong to the connection: the names cannot clash with another import.
_ROWS = (
    "CREATE TEMPORARY TABLE device_import_rows (line BIGINT PRIMARY KEY, "
    "controller_id VARCHAR(255) NOT NULL, token_hash VARCHAR(64) NOT NULL, "
    "hardware VARCHAR(128), version VARCHAR(128), group_names TEXT NOT NULL)"
)
_GROUPS = "CREATE TEMPORARY TABLE device_import_groups (line BIGINT, name VARCHAR(64))"
_PG_CREATE = (_ROWS + " ON COMMIT DROP", _GROUPS + " ON COMMIT DROP")
_SQLITE_CREATE = (_ROWS, _GROUPS)
_SQLITE_DROP = ("DROP TABLE device_import_rows", "DROP TABLE device_import_groups")
_CLASHES = (
    "SELECT s.line, s.controller_id, d.removed_at FROM device_import_rows s "
    "JOIN devices d ON d.tenant_id = :tenant AND d.controller_id = s.controller_id "
    "ORDER BY s.line LIMIT :limit"
)
_INSERT = (
    "INSERT INTO devices (tenant_id, controller_id, token_hash, hardware, installed_version, "
    "attributes, registered_at, group_names, config_requested, auto_confirm) "
    "SELECT :tenant, s.controller_id, s.token_hash, s.hardware, s.version, {empty}, :now, "
    "{groups}, :yes, :no FROM device_import_rows s ORDER BY s.line"
)
_PG_INSERT = _INSERT.format(empty="CAST('{}' AS JSON)", groups="CAST(s.group_names AS JSON)")
_SQLITE_INSERT = _INSERT.format(empty="'{}'", groups="s.group_names")
_INSERT_GROUPS = (
    "INSERT INTO device_groups (device_id, name) SELECT d.id, g.name "
    "FROM device_import_groups g JOIN device_import_rows s ON s.line = g.line "
    "JOIN devices d ON d.tenant_id = :tenant AND d.controller_id = s.controller_id"
)


class SqlDeviceImportWriter(DeviceImportWriter):
    def __init__(self, session: Session, tenant_id: int, now: datetime) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.now = now
        self.postgres = session.get_bind().dialect.name == "postgresql"
        for statement in _PG_CREATE if self.postgres else _SQLITE_CREATE:
            session.execute(text(statement))

    def stage(self, rows: Sequence[StagedRow]) -> None:
        if not rows:
            return
        staged = [
            (r.line, r.controller_id, r.token_hash, r.hardware, r.version, json.dumps(r.groups))
            for r in rows
        ]
        grouped = [(r.line, g) for r in rows for g in r.groups]
        if self.postgres:
            self._copy(_COPY_ROWS, staged)
            self._copy("COPY device_import_groups (line, name) FROM STDIN", grouped)
            return
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        raw.executemany(
            "INSERT INTO device_import_rows (line, controller_id, token_hash, hardware, version, "
            "group_names) VALUES (?, ?, ?, ?, ?, ?)",
            staged,
        )
        raw.executemany("INSERT INTO device_import_groups (line, name) VALUES (?, ?)", grouped)

    def _copy(self, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def clashes(self, *, limit: int) -> Sequence[Clash]:
        found = self.session.execute(text(_CLASHES), {"tenant": self.tenant_id, "limit": limit})
        return [Clash(int(r[0]), str(r[1]), r[2] is not None) for r in found]

    def write(self) -> int:
        inserted = self.session.execute(
            text(_PG_INSERT if self.postgres else _SQLITE_INSERT),
            {"tenant": self.tenant_id, "now": self.now, "yes": True, "no": False},
        )
        self.session.execute(text(_INSERT_GROUPS), {"tenant": self.tenant_id})
        if not self.postgres:
            for statement in _SQLITE_DROP:
                self.session.execute(text(statement))
        return int(getattr(inserted, "rowcount", 0) or 0)
