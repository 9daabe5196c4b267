"""Engines for SQLite (the zero-configuration default) and PostgreSQL (psycopg 3).

On SQLite every connection runs in WAL mode with foreign keys on, and writing units of
work take the write lock up front (``BEGIN IMMEDIATE``) so that two writers never both read
a state and then fail on the upgrade to a write lock. Reads use a second engine with
ordinary deferred transactions so they never wait for a writer.

Within one process the writers queue on a lock of their own (:class:`WriteGate`) before
they ask SQLite for its write lock. SQLite's busy handler retries a locked database by
sleeping (up to 100 ms at a time), so under load a writer that happens to be asleep each
time the lock comes free can lose to newer writers until its busy timeout runs out; a
waiter on the gate is woken the moment the holder finishes. Other processes on the same
file still meet SQLite's busy handler (docs/deploy.md, "SQLite").
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from patchgate.adapters.db import access_mark
from patchgate.domain.errors import DatabaseUnavailable

# How long a SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_SECONDS: float = 30


@dataclass(frozen=True)
class Engines:
    """The write engine (units of work) and the read engine (pages, polls)."""

    write: Engine
    read: Engine
    url: str

    def dispose(self) -> None:
        self.write.dispose()
        if self.read is not self.write:
            self.read.dispose()


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class WriteGate:
    """One writer at a time per process on a SQLite file: taken before ``BEGIN IMMEDIATE``
    and given back when the transaction ends (commit, rollback, or a connection the pool
    returns, discards or invalidates while it still holds the gate)."""

    KEY = "patchgate.write_gate"

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self.timeout = timeout

    def take(self, info: dict[str, Any]) -> None:
        if info.get(self.KEY):
            return  # this connection's transaction already holds it
        if not self._lock.acquire(timeout=self.timeout):
            raise DatabaseUnavailable(
                f"the database is busy (no write could start within {self.timeout:g} s); "
                "nothing was changed, try again shortly"
            )
        info[self.KEY] = True

    def give_back(self, info: dict[str, Any] | None) -> None:
        if info is not None and info.pop(self.KEY, False):
            self._lock.release()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    # The access mark beside the file (docs/downloads.md): moved by revoking writes.
    mark = access_mark.for_database(make_url(url).database)
    engine = create_engine(
        url,
        connect_args={
            "timeout": SQLITE_BUSY_SECONDS,
            "check_same_thread": False,
            "factory": access_mark.MarkedConnection,
        },
        # One connection per thread is enough for SQLite; NullPool would reopen the file
        # for every unit of work and re-run the pragmas.
        pool_size=8,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        dbapi_connection.access_mark = mark
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
        cursor.close()

    if mark is not None:
        event.listen(engine, "after_cursor_execute", access_mark.after_execute)

    if not immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        event.listen(engine, "handle_error", _sqlite_busy)
        return engine

    gate = WriteGate(SQLITE_BUSY_SECONDS)

    @event.listens_for(engine, "begin")
    def _on_begin_write(conn: Any) -> None:
        gate.take(conn.info)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            gate.give_back(conn.info)
            raise

    # Given back as the transaction ends; COMMIT itself follows at once, and in WAL mode
    # it is short, so the next writer's BEGIN IMMEDIATE rarely meets the busy handler.
    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(conn: Any) -> None:
        if not conn.invalidated:  # an invalidated one gave it back as it was discarded
            gate.give_back(conn.info)

    # A connection that leaves without its transaction ending (an error that invalidated
    # it, a pool reset) must not keep the gate.
    @event.listens_for(engine, "checkin")
    @event.listens_for(engine, "invalidate")
    @event.listens_for(engine, "close")
    def _on_leave(_dbapi: Any, record: Any, *_rest: Any) -> None:
        gate.give_back(getattr(record, "info", None))

    event.listen(engine, "handle_error", _sqlite_busy)
    return engine


def _sqlite_busy(context: Any) -> BaseException | None:
    """SQLAlchemy's ``handle_error`` hook for SQLite: when another process held the write
    lock for longer than the busy timeout, the work was not done and can be sent again;
    every entrypoint answers that as it answers an outage (HTTP 503, CLI exit 1 and one
    line), never as an internal error. SQLite reports it as SQLITE_BUSY ("database is
    locked"; https://www.sqlite.org/rescode.html#busy)."""
    error = context.original_exception
    if not isinstance(error, sqlite3.OperationalError):
        return None
    if getattr(error, "sqlite_errorname", "") != "SQLITE_BUSY" and "locked" not in str(error):
        return None
    return DatabaseUnavailable(
        "the database is busy (another process held its write lock for longer than "
        f"{SQLITE_BUSY_SECONDS:g} s); nothing was changed, try again shortly"
    )


def make_engines(url: str, *, pool_size: int = 10) -> Engines:
    """Create the engines for ``url``; nothing connects until first use."""
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return Engines(
            write=_sqlite_engine(url, immediate=True),
            read=_sqlite_engine(url, immediate=False),
            url=url,
        )
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    event.listen(engine, "handle_error", _database_unavailable)
    return Engines(write=engine, read=engine, url=url)


def unreachable(error: BaseException, *, disconnect: bool = False) -> bool:
    """Whether ``error`` (a psycopg error, or SQLAlchemy's wrapping of one) says PostgreSQL
    is not there to answer, rather than that it refused a statement: no connection could
    be made or the one in use broke (SQLSTATE class 08, or no SQLSTATE at all), or the
    server is shutting down or starting up (class 57P: "operator intervention";
    PostgreSQL documentation, Appendix A). A cancelled statement (57014) or a
    serialization failure is an answer, not an outage."""
    import psycopg

    if disconnect or isinstance(error, DatabaseUnavailable):
        return True
    error = getattr(error, "orig", None) or error
    if not isinstance(error, psycopg.OperationalError):
        return False
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


def outage(message: str) -> DatabaseUnavailable:
    """The domain's error for an outage, which every entrypoint answers alike (HTTP 503,
    DDI 503, CLI exit 1, one line) instead of an internal error."""
    return DatabaseUnavailable(
        f"the database is not reachable (it may be restarting); nothing was changed, {message}"
    )


def _database_unavailable(context: Any) -> BaseException | None:
    """SQLAlchemy's ``handle_error`` hook: an outage becomes :func:`outage`. The pool
    still discards the broken connection, and ``pool_pre_ping`` replaces the others once
    the server is back."""
    if not unreachable(context.original_exception, disconnect=context.is_disconnect):
        return None
    return outage("try again shortly")


def make_throwaway_engine(url: str) -> Engine:
    """A pool-less engine for one-off administrative work (migrations, checks)."""
    return create_engine(normalise_url(url), poolclass=NullPool)
