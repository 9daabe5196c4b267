"""The state version pushed to every server process through PostgreSQL ``LISTEN/NOTIFY``.

A command that raises the state version also sends ``NOTIFY patchgate_state`` in the same
transaction (:func:`notify`); PostgreSQL delivers it to every listening session when, and
only when, that transaction commits (PostgreSQL documentation, "NOTIFY"). Each server
process keeps one listening connection (:class:`PgStateFeed`) and hands every version it
hears to the caches that follow it, so they are rebuilt at the commit rather than by the
next request that reads the version. The version read stays the fallback: a notice lost
with the listening connection is made good by the next read, and after a reconnect the
feed reports ``None`` ("re-read the version"). docs/deploy.md, "What each process keeps".
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from patchgate.services.state import StateFeed

log = logging.getLogger("patchgate.state")

CHANNEL = "patchgate_state"
# How long the listener waits for a notice before checking whether it should stop, and
# how long it waits before reconnecting after losing its connection.
_POLL_SECONDS = 1.0
_RECONNECT_SECONDS = 1.0


def notify(session: Session, version: int) -> None:
    """Queue the notice of ``version`` in the session's transaction (sent at its commit)."""
    session.execute(text("SELECT pg_notify(:channel, :payload)"), {
        "channel": CHANNEL, "payload": str(version),
    })  # fmt: skip


def conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PgStateFeed(StateFeed):
    """One listening connection in a background thread; reconnects until stopped."""

    def __init__(self, url: str) -> None:
        self._conninfo = conninfo(url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()

    def start(self, on_change: Callable[[int | None], None]) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(on_change,), name="state-listen", daemon=True
        )
        self._thread.start()

    def wait_listening(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        # The thread sees it within a second and closes its connection; nothing waits.
        self._stop.set()

    def _run(self, on_change: Callable[[int | None], None]) -> None:
        # psycopg is imported by the listener only: every command that writes imports this
        # module for notify(), SQLite installations included.
        import psycopg

        first = True
        while not self._stop.is_set():
            try:
                self._listen(on_change, announce=not first)
            except psycopg.Error as exc:
                log.warning("state notices: connection lost (%s); reconnecting", exc)
            except Exception:  # keep listening; the version read covers the gap
                log.exception("state notices: listener failed; reconnecting")
            self._connected.clear()
            first = False
            self._stop.wait(_RECONNECT_SECONDS)

    def _listen(self, on_change: Callable[[int | None], None], *, announce: bool) -> None:
        import psycopg

        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._connected.set()
            log.info("state notices: listening", extra={"pid": os.getpid()})
            if announce:
                on_change(None)  # notices may have been missed while disconnected
            while not self._stop.is_set():
                for notice in conn.notifies(timeout=_POLL_SECONDS):
                    on_change(_version(notice.payload))


def _version(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None
