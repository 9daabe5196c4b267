"""What counts as the database being away (docs/deploy.md, "When PostgreSQL restarts"),
and how each entrypoint answers it."""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg
from sqlalchemy.exc import OperationalError as WrappedOperationalError

from patchgate.adapters.db.engine import outage, unreachable
from patchgate.domain.errors import DatabaseUnavailable, Unavailable
from patchgate.entrypoints.errors import ddi_status, exit_code, http_status
from patchgate.entrypoints.logs import OutageAsWarning


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection refused"),  # no connection: no SQLSTATE
        pg.AdminShutdown(),  # 57P01, a fast shutdown or restart
        pg.CannotConnectNow(),  # 57P03, starting up
        pg.ConnectionFailure(),  # class 08
        WrappedOperationalError("SELECT 1", {}, pg.AdminShutdown()),
        DatabaseUnavailable("away"),
    ],
)
def test_an_outage_is_recognised(error: BaseException) -> None:
    assert unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        pg.QueryCanceled(),  # 57014: an answer (statement timeout), not an outage
        pg.SerializationFailure(),
        pg.UniqueViolation(),
        pg.LockNotAvailable(),
        ValueError("not a database error"),
    ],
)
def test_a_refusal_is_not_an_outage(error: BaseException) -> None:
    assert not unreachable(error)


def test_a_disconnect_sqlalchemy_detected_is_an_outage() -> None:
    assert unreachable(ValueError("whatever the driver raised"), disconnect=True)


def test_every_entrypoint_answers_an_outage_as_retry_later() -> None:
    error = outage("try again shortly")
    assert isinstance(error, Unavailable)
    assert (http_status(error), ddi_status(error), exit_code(error)) == (503, 503, 1)
    assert error.message.startswith("the database is not reachable")


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        return logging.LogRecord(
            "patchgate.x", logging.ERROR, __file__, 1, "tick failed", None, sys.exc_info()
        )


def test_an_outage_is_logged_as_one_warning_line_and_other_failures_keep_their_traceback() -> None:
    away = _record(pg.AdminShutdown("terminating connection due to administrator command"))
    assert OutageAsWarning().filter(away)
    assert (away.levelname, away.exc_info) == ("WARNING", None)
    assert away.getMessage() == "tick failed: terminating connection due to administrator command"

    broken = _record(KeyError("bug"))
    assert OutageAsWarning().filter(broken)
    assert broken.levelname == "ERROR" and broken.exc_info is not None


def test_the_import_threads_errors_reach_the_caller_in_the_domains_terms() -> None:
    from patchgate.adapters.db.device_import import _refusal
    from patchgate.domain.errors import Conflict

    assert isinstance(_refusal(pg.UniqueViolation()), Conflict)
    assert isinstance(_refusal(pg.AdminShutdown()), DatabaseUnavailable)
    other = pg.NumericValueOutOfRange()
    assert _refusal(other) is other


def test_sqlite_write_lock_held_past_the_busy_timeout_is_a_clear_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding SQLite's write lock longer than the busy timeout: the unit
    of work is refused with the domain's error (HTTP 503, CLI exit 1 and one line), not
    an internal error, and nothing of it is written."""
    from patchgate.adapters.db import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_SECONDS", 0.2)
    path = tmp_path / "busy.db"
    engines = engine_module.make_engines(f"sqlite:///{path}")
    with engines.write.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with (
            pytest.raises(DatabaseUnavailable, match=r"the database is busy .* 0\.2 s\)"),
            engines.write.begin() as conn,
        ):
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        holder.rollback()
        holder.close()
    with engines.read.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    engines.dispose()
    assert http_status(DatabaseUnavailable("busy")) == 503
    assert exit_code(DatabaseUnavailable("busy")) == 1


def _sqlite_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, busy: float) -> Any:
    from patchgate.adapters.db import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_SECONDS", busy)
    engines = engine_module.make_engines(f"sqlite:///{tmp_path / 'gate.db'}")
    with engines.write.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    return engines


def _write_from_another_thread(engines: Any, value: int) -> BaseException | None:
    """One insert in a thread of its own; returns what it raised, if anything."""
    outcome: list[BaseException | None] = [None]

    def write() -> None:
        try:
            with engines.write.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (?)", (value,))
        except BaseException as exc:  # handed to the asserting thread
            outcome[0] = exc

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    return outcome[0]


def test_writers_of_one_process_queue_on_the_gate_and_every_way_out_gives_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one process a SQLite writer waits on the process's write gate, not in SQLite's
    sleeping busy handler: while a transaction is open another thread's write waits (and
    past the timeout is refused with the outage's error, nothing written); a commit, a
    rollback, an error inside the transaction and a connection closed mid-transaction each
    give the gate back, so the next writer goes straight in."""
    engines = _sqlite_engines(tmp_path, monkeypatch, busy=0.3)
    with engines.write.connect() as holder:
        holder.begin()
        holder.exec_driver_sql("INSERT INTO t VALUES (1)")
        refused = _write_from_another_thread(engines, 2)
        assert isinstance(refused, DatabaseUnavailable)
        assert "no write could start within 0.3 s" in str(refused)
        holder.commit()
    assert _write_from_another_thread(engines, 3) is None  # after a commit

    with engines.write.connect() as holder:
        holder.begin()
        holder.exec_driver_sql("INSERT INTO t VALUES (4)")
        holder.rollback()
    assert _write_from_another_thread(engines, 5) is None  # after a rollback

    def fail_inside() -> None:
        with engines.write.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (6)")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_inside()
    assert _write_from_another_thread(engines, 7) is None  # after an error inside

    holder = engines.write.connect()
    transaction = holder.begin()
    holder.exec_driver_sql("INSERT INTO t VALUES (8)")
    holder.invalidate()  # the connection is discarded with its transaction open
    assert _write_from_another_thread(engines, 9) is None
    transaction.rollback()
    holder.close()

    with engines.read.connect() as conn:
        rows = [r[0] for r in conn.exec_driver_sql("SELECT x FROM t ORDER BY x")]
    assert rows == [1, 3, 5, 7, 9]
    engines.dispose()


def test_many_writers_of_one_process_all_get_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen threads writing at once, each many short transactions: every write lands
    and none is refused (the gate hands the lock on; no writer is left asleep)."""
    engines = _sqlite_engines(tmp_path, monkeypatch, busy=30)
    failures: list[BaseException] = []

    def writer(base: int) -> None:
        for i in range(50):
            try:
                with engines.write.begin() as conn:
                    conn.exec_driver_sql("INSERT INTO t VALUES (?)", (base + i,))
            except BaseException as exc:  # collected for the assertion
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    with engines.read.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 16 * 50
    engines.dispose()
