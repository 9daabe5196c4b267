"""The bulk device import's SQL (``services.device_import_ports``; docs/devices.md,
"Importing a fleet"): rows are staged in a temporary table — with COPY on PostgreSQL,
batched inserts on SQLite — then checked against the fleet in one query and written with
one ``INSERT … SELECT`` (on PostgreSQL one statement writes the devices and, from the
rows it inserted, their group rows), all in the caller's transaction: a failure or a
killed process leaves nothing behind.

On PostgreSQL a batch goes to ``COPY`` as one block of text (the COPY text format,
PostgreSQL documentation "COPY", "File Formats"), not row by row: at a million rows the
per-row calls were most of the client's time."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from patchgate.adapters.db.engine import outage, unreachable
from patchgate.domain.errors import Conflict
from patchgate.services.device_import_ports import (
    MAX_CLASHES,
    Clash,
    DeviceImportWriter,
    StagedRow,
)

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
_PG_CREATE = (_ROWS + " ON COMMIT DROP",)
_SQLITE_CREATE = (_ROWS, _GROUPS)
_SQLITE_DROP = ("DROP TABLE device_import_rows", "DROP TABLE device_import_groups")
_SQLITE_CLASHES = (
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
# PostgreSQL, per staged batch (the staging table holds one batch: it is emptied after
# each): the clashes, then the devices and their group rows in one statement — the group
# rows from the rows just inserted (their ids and group names), not from a join of the
# fleet on controllerId. A clash is looked up row by row in the (tenant_id,
# controller_id) index (the LATERAL … LIMIT 1): a join would let the planner hash the
# whole devices table for every batch, which grows to a million rows during the import
# (seen at 1,000,000 rows: the backend reading a hash join's spill files, the import far
# over a minute).
_PG_CLASHES = (
    "SELECT s.line, s.controller_id, d.removed_at FROM device_import_rows s "
    "CROSS JOIN LATERAL (SELECT removed_at FROM devices WHERE tenant_id = %(tenant)s "
    "AND controller_id = s.controller_id LIMIT 1) d ORDER BY s.line LIMIT %(limit)s"
)
_PG_INSERT = (
    "WITH written AS (INSERT INTO devices (tenant_id, controller_id, token_hash, hardware, "
    "installed_version, attributes, registered_at, group_names, config_requested, "
    "auto_confirm) SELECT %(tenant)s, s.controller_id, s.token_hash, s.hardware, s.version, "
    "CAST('{}' AS JSON), %(now)s, CAST(s.group_names AS JSON), true, false "
    "FROM device_import_rows s ORDER BY s.line "
    "RETURNING id, group_names), "
    "grouped AS (INSERT INTO device_groups (device_id, name) "
    "SELECT w.id, json_array_elements_text(w.group_names) FROM written w) "
    "SELECT count(*) FROM written"
)
_PG_EMPTY = "TRUNCATE device_import_rows"
_SQLITE_INSERT = _INSERT.format(empty="'{}'", groups="s.group_names")
_SQLITE_INSERT_GROUPS = (
    "INSERT INTO device_groups (device_id, name) SELECT d.id, g.name "
    "FROM device_import_groups g JOIN device_import_rows s ON s.line = g.line "
    "JOIN devices d ON d.tenant_id = :tenant AND d.controller_id = s.controller_id"
)


# COPY's text format: a backslash, and the characters that end a field or a row, are
# escaped; ``\\N`` is NULL (PostgreSQL documentation, "COPY", "Text Format").
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: str | None) -> str:
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


class _PgPipeline:
    """PostgreSQL: each batch is copied to the staging table, checked for clashes and
    written by a background thread on the import's own connection (so in its
    transaction), while the caller checks the rows of the next one; at a million rows the
    database's writing and the client's checking then overlap instead of adding up.
    Once a clash is found nothing more is written (the caller refuses the file and the
    transaction rolls back); the batches left are still checked for clashes."""

    def __init__(self, raw: Any, tenant_id: int, now: datetime) -> None:
        self.raw = raw
        self.params: dict[str, Any] = {"tenant": tenant_id, "now": now}
        self.found: list[Clash] = []
        self.count = 0
        self.error: BaseException | None = None
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._run, name="device-import", daemon=True)
        self.thread.start()

    def put(self, block: str) -> None:
        if self.error is None:
            self.queue.put(block)

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # handed to the caller by finish()
                    self.error = exc

    def _write(self, block: str) -> None:
        with self.raw.cursor() as cursor:
            with cursor.copy(_COPY_ROWS) as copy:
                copy.write(block)
            if len(self.found) < MAX_CLASHES:
                cursor.execute(_PG_CLASHES, {**self.params, "limit": MAX_CLASHES})
                self.found.extend(Clash(int(r[0]), str(r[1]), r[2] is not None) for r in cursor)
            if not self.found:
                cursor.execute(_PG_INSERT, self.params)
                row = cursor.fetchone()
                self.count += int(row[0]) if row else 0
            cursor.execute(_PG_EMPTY)

    def finish(self, *, check: bool = True) -> None:
        """Wait for the batches handed over; raise what writing one raised (``check``)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if check and self.error is not None:
            refusal = _refusal(self.error)
            if refusal is self.error:
                raise refusal
            raise refusal from self.error


def _refusal(error: BaseException) -> BaseException:
    """What the writing thread's psycopg error means to the caller, in the domain's terms
    (raw DBAPI calls bypass the engine's error hook): a device another import or a
    registration wrote meanwhile is a conflict, an outage is an outage."""
    import psycopg

    if isinstance(error, psycopg.errors.UniqueViolation):
        return Conflict(
            "a device in the file was registered by someone else while the import ran; "
            "nothing was imported, run the import again"
        )
    if unreachable(error):
        return outage("run the import again")
    return error


class SqlDeviceImportWriter(DeviceImportWriter):
    def __init__(self, session: Session, tenant_id: int, now: datetime) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.now = now
        self.postgres = session.get_bind().dialect.name == "postgresql"
        for statement in _PG_CREATE if self.postgres else _SQLITE_CREATE:
            session.execute(text(statement))
        self.pipeline: _PgPipeline | None = None
        if self.postgres:
            raw = session.connection().connection.driver_connection
            self.pipeline = _PgPipeline(raw, tenant_id, now)

    def stage(self, rows: Sequence[StagedRow]) -> None:
        if not rows:
            return
        if self.pipeline is not None:
            self.pipeline.put(_copy_text(rows))
            return
        staged = [
            (r.line, r.controller_id, r.token_hash, r.hardware, r.version, json.dumps(r.groups))
            for r in rows
        ]
        grouped = [(r.line, g) for r in rows for g in r.groups]
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        raw.executemany(
            "INSERT INTO device_import_rows (line, controller_id, token_hash, hardware, version, "
            "group_names) VALUES (?, ?, ?, ?, ?, ?)",
            staged,
        )
        raw.executemany("INSERT INTO device_import_groups (line, name) VALUES (?, ?)", grouped)

    def clashes(self, *, limit: int) -> Sequence[Clash]:
        if self.pipeline is not None:
            self.pipeline.finish()
            return sorted(self.pipeline.found, key=lambda c: c.line)[:limit]
        found = self.session.execute(
            text(_SQLITE_CLASHES), {"tenant": self.tenant_id, "limit": limit}
        )
        return [Clash(int(r[0]), str(r[1]), r[2] is not None) for r in found]

    def write(self) -> int:
        if self.pipeline is not None:
            self.pipeline.finish()
            return self.pipeline.count
        values = {"tenant": self.tenant_id, "now": self.now, "yes": True, "no": False}
        inserted = self.session.execute(text(_SQLITE_INSERT), values)
        self.session.execute(text(_SQLITE_INSERT_GROUPS), {"tenant": self.tenant_id})
        for statement in _SQLITE_DROP:
            self.session.execute(text(statement))
        return int(getattr(inserted, "rowcount", 0) or 0)

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.finish(check=False)  # an error was raised to the caller already


def _copy_text(rows: Sequence[StagedRow]) -> str:
    """A batch as one block of COPY text (one row a line)."""
    groups_json: dict[tuple[str, ...], str] = {}  # most rows share a few group sets
    lines = []
    for r in rows:
        names = groups_json.get(r.groups)
        if names is None:
            names = groups_json[r.groups] = _field(json.dumps(r.groups))
        lines.append(
            f"{r.line}\t{_field(r.controller_id)}\t{_field(r.token_hash)}\t"
            f"{_field(r.hardware)}\t{_field(r.version)}\t{names}\n"
        )
    return "".join(lines)
