"""The bulk device import's SQL (``services.device_import_ports``; docs/devices.md,
"Importing a fleet"), all in the caller's transaction: a failure or a killed process
leaves nothing behind.

PostgreSQL: each batch is written straight into ``devices`` and ``device_groups``, with
no staging table — its controllerIds are first looked up in the ``(tenant_id,
controller_id)`` index with one query, its device ids are taken from the table's
sequence with another (``nextval`` once per row: safe beside concurrent inserts, which
take ids from the same sequence), then the devices and their group rows go to ``COPY``
as blocks of text (the COPY text format, PostgreSQL documentation "COPY", "File
Formats"), with those ids. Every row is written once, and the group rows need no lookup.

SQLite: rows are staged in a temporary table by batched inserts, checked against the
fleet in one query and written with ``INSERT … SELECT``."""

from __future__ import annotations

import json
import queue
import sys
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

# SQLite: temporary tables belong to the connection, so the names cannot clash with
# another import.
_SQLITE_CREATE = (
    "CREATE TEMPORARY TABLE device_import_rows (line BIGINT PRIMARY KEY, "
    "controller_id VARCHAR(255) NOT NULL, token_hash VARCHAR(64) NOT NULL, "
    "hardware VARCHAR(128), version VARCHAR(128), group_names TEXT NOT NULL)",
    "CREATE TEMPORARY TABLE device_import_groups (line BIGINT, name VARCHAR(64))",
)
_SQLITE_DROP = ("DROP TABLE device_import_rows", "DROP TABLE device_import_groups")
_SQLITE_CLASHES = (
    "SELECT s.line, s.controller_id, d.removed_at FROM device_import_rows s "
    "JOIN devices d ON d.tenant_id = :tenant AND d.controller_id = s.controller_id "
    "ORDER BY s.line LIMIT :limit"
)
_SQLITE_INSERT = (
    "INSERT INTO devices (tenant_id, controller_id, token_hash, hardware, installed_version, "
    "attributes, registered_at, group_names, config_requested, auto_confirm) "
    "SELECT :tenant, s.controller_id, s.token_hash, s.hardware, s.version, '{}', :now, "
    "s.group_names, :yes, :no FROM device_import_rows s ORDER BY s.line"
)
_SQLITE_INSERT_GROUPS = (
    "INSERT INTO device_groups (device_id, name) SELECT d.id, g.name "
    "FROM device_import_groups g JOIN device_import_rows s ON s.line = g.line "
    "JOIN devices d ON d.tenant_id = :tenant AND d.controller_id = s.controller_id"
)

# PostgreSQL, per batch. The clash query probes the index once per controllerId of the
# batch (an array of them): a join against the batch could let the planner hash the
# whole devices table, which grows to a million rows during the import.
_PG_CLASHES = (
    "SELECT controller_id, removed_at FROM devices WHERE tenant_id = %s AND controller_id = ANY(%s)"
)
_PG_IDS = (
    "SELECT string_agg(CAST(nextval(pg_get_serial_sequence('devices', 'id')) AS TEXT), ' ') "
    "FROM generate_series(1, %s)"
)
_PG_COPY_DEVICES = (
    "COPY devices (id, tenant_id, controller_id, token_hash, hardware, installed_version, "
    "attributes, registered_at, group_names, config_requested, auto_confirm) FROM STDIN"
)
_PG_COPY_GROUPS = "COPY device_groups (device_id, name) FROM STDIN"

# COPY's text format: a backslash, and the characters that end a field or a row, are
# escaped; ``\\N`` is NULL (PostgreSQL documentation, "COPY", "Text Format").
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: str | None) -> str:
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


class _Batch:
    """A batch in COPY text, but for each device's id (known once the sequence gave it):
    per row its line, controllerId, the rest of its ``devices`` line and the template of
    its group rows (``{0}``: the device id)."""

    __slots__ = ("controller_ids", "group_rows", "lines", "tails")

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.controller_ids: list[str] = []
        self.tails: list[str] = []
        self.group_rows: list[str] = []


class _PgPipeline:
    """PostgreSQL: two threads beside the caller, which checks the rows of the next batch
    meanwhile. The first looks a batch's controllerIds up and takes its ids from the
    sequence on a second connection, and builds its COPY text; the second only COPYs
    batches on the import's own connection (so in its transaction). The database's writing
    then waits on neither the client's checking nor the round trips of the lookups (at a
    million rows the import's backend is what limits the import).

    The lookups see the fleet as committed, not the rows this import wrote: those are the
    file's own, whose controllerIds the caller refuses twice; a device registered by
    someone else after its lookup stops the COPY on the unique index (``_refusal``).
    Once a clash is found nothing more is written (the caller refuses the file and the
    transaction rolls back); the batches left are still checked for clashes."""

    def __init__(self, raw: Any, lookups: Any, tenant_id: int, now: datetime) -> None:
        self.raw = raw
        self.lookups = lookups  # a pooled connection of the same engine, read and sequence only
        self.tenant_id = tenant_id
        self.found: list[Clash] = []
        self.count = 0
        self.error: BaseException | None = None
        # The COPY text of a device after its controllerId and token hash, by hardware,
        # version and groups (few distinct in a fleet): built and escaped once each.
        self.tails: dict[tuple[str | None, str | None, tuple[str, ...]], tuple[str, str]] = {}
        self.now = now.isoformat()
        self.batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self.blocks: queue.Queue[tuple[str, str, int] | None] = queue.Queue(maxsize=2)
        # Between two statements the database waits for a thread, which waits for the
        # interpreter lock the checking thread holds: by default up to 5 ms a time, a few
        # times a batch. Handed over sooner while the import runs (restored by finish()).
        self.switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self.switch, 0.0005))
        self.threads = [
            threading.Thread(target=self._prepare_all, name="device-import-lookup", daemon=True),
            threading.Thread(target=self._copy_all, name="device-import-copy", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _tail(self, row: StagedRow) -> tuple[str, str]:
        key = (row.hardware, row.version, row.groups)
        found = self.tails.get(key)
        if found is None:
            names = _field(json.dumps(row.groups))
            made = f"{_field(row.hardware)}\t{_field(row.version)}\t{{}}\t{self.now}"
            tail = f"\t{made}\t{names}\tt\tf\n"
            groups = "".join(
                "{0}\t" + _field(g).replace("{", "{{").replace("}", "}}") + "\n" for g in row.groups
            )
            found = (tail, groups)
            if len(self.tails) < 10_000:  # a file of all-different rows builds each anew
                self.tails[key] = found
        return found

    def put(self, rows: Sequence[StagedRow]) -> None:
        if self.error is not None:
            return
        batch = _Batch()
        tenant = f"\t{self.tenant_id}\t"
        for r in rows:
            tail, groups = self._tail(r)
            cid = r.controller_id
            if "\\" in cid or not cid.isprintable():
                cid = _field(cid)
            batch.lines.append(r.line)
            batch.controller_ids.append(r.controller_id)
            batch.tails.append(f"{tenant}{cid}\t{r.token_hash}{tail}")
            batch.group_rows.append(groups)
        self.batches.put(batch)

    def _prepare_all(self) -> None:
        while (item := self.batches.get()) is not None:
            if self.error is None:
                try:
                    self._prepare(item)
                except BaseException as exc:  # handed to the caller by finish()
                    self.error = exc
        self.blocks.put(None)

    def _prepare(self, batch: _Batch) -> None:
        with self.lookups.cursor() as cursor:
            if len(self.found) < MAX_CLASHES:
                cursor.execute(_PG_CLASHES, (self.tenant_id, batch.controller_ids))
                clashes = cursor.fetchall()
                if clashes:
                    line = dict(zip(batch.controller_ids, batch.lines, strict=True))
                    self.found.extend(Clash(line[c], c, r is not None) for c, r in clashes)
            if self.found:
                return
            cursor.execute(_PG_IDS, (len(batch.lines),))
            row = cursor.fetchone()
        ids = str(row[0]).split() if row else []
        devices = "".join(map(str.__add__, ids, batch.tails))
        groups = "".join(map(str.format, batch.group_rows, ids))
        self.blocks.put((devices, groups, len(ids)))

    def _copy_all(self) -> None:
        while (item := self.blocks.get()) is not None:
            if self.error is None:
                try:
                    devices, groups, count = item
                    with self.raw.cursor() as cursor:
                        with cursor.copy(_PG_COPY_DEVICES) as copy:
                            copy.write(devices)
                        with cursor.copy(_PG_COPY_GROUPS) as copy:
                            copy.write(groups)
                    self.count += count
                except BaseException as exc:  # handed to the caller by finish()
                    self.error = exc

    def finish(self, *, check: bool = True) -> None:
        """Wait for the batches handed over; raise what writing one raised (``check``)."""
        if self.threads[0].is_alive():
            self.batches.put(None)
        for thread in self.threads:
            thread.join()
        if self.lookups is not None:
            sys.setswitchinterval(self.switch)
            self.lookups.close()  # back to the pool, which ends its transaction
            self.lookups = None
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
        self.pipeline: _PgPipeline | None = None
        if self.postgres:
            raw = session.connection().connection.driver_connection
            lookups = session.get_bind().engine.raw_connection()
            self.pipeline = _PgPipeline(raw, lookups, tenant_id, now)
        else:
            for statement in _SQLITE_CREATE:
                session.execute(text(statement))

    def stage(self, rows: Sequence[StagedRow]) -> None:
        if not rows:
            return
        if self.pipeline is not None:
            self.pipeline.put(rows)
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
