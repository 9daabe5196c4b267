"""What counts as the database being away (docs/deploy.md, "When PostgreSQL restarts"),
and how each entrypoint answers it."""

from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path

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
