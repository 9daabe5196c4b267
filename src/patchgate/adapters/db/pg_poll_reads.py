"""The poll's read on PostgreSQL for the event loop: libpq's asynchronous calls, and
polls that arrive together answered by one statement (docs/ddi.md, "The poll path")."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Text, bindparam, cast, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY

from patchgate.adapters.db.engine import outage, unreachable
from patchgate.adapters.db.poll_reads import (
    ROW_COLUMNS,
    STATE_VERSION,
    auth_row,
    by_controller_query,
    by_token_query,
)
from patchgate.services import device_ports as p


def _keyed(read: Any) -> Any:
    """``read`` (:func:`by_token_query` or :func:`by_controller_query`) for a batch of lookups: the
    keys come as two text arrays, ``tenants`` and ``keys``, and each answer row starts with
    the 1-based position of its key (``n``), so every lookup finds its own row. The read runs
    once per key (``LATERAL``), the same indexed lookup as a single poll's whatever the
    planner's statistics say; the state version is read once, in the same statement."""
    keys = (
        func.unnest(cast(bindparam("tenants"), ARRAY(Text)), cast(bindparam("keys"), ARRAY(Text)))
        .table_valued("tenant", "key", with_ordinality="n")
        .render_derived(name="k")
    )
    one = read(keys.c.tenant, keys.c.key, *ROW_COLUMNS).lateral("r")
    return select(keys.c.n, STATE_VERSION, *one.c).select_from(keys).join(one, true())


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


def _answerable(exc: Exception) -> Exception:
    """What the polls of a failed batch are told: an outage (the retry could not even
    connect) is the domain's outage error, answered 503 like any other request's
    (adapters/db/engine.py); anything else is passed on as it is."""
    return outage("poll again shortly") if unreachable(exc) else exc


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
        self._by_token = _PqStatement(engine, _keyed(by_token_query), b"pg_poll_by_token")
        self._by_controller = _PqStatement(
            engine, _keyed(by_controller_query), b"pg_poll_by_controller"
        )
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
                    _fail(batch, _answerable(exc))
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
        return auth_row(await self._lookup(self._by_token, tenant, token_hash))

    async def by_controller(self, tenant: str, controller_id: str) -> p.DeviceAuthRow | None:
        return auth_row(await self._lookup(self._by_controller, tenant, controller_id))
