"""The access mark of a SQLite database: a cross-process counter pair, in a small file
mapped beside the database, that moves on every write that could take away a download's
permission (docs/downloads.md, "What a server process remembers").

The download fast path remembers, per server process, the answers of its reads (a token's
device, a target's blob) and uses them only while the mark stands where it stood when
they were read. Reading the mark is two loads from shared memory, no system call; a
SQLite statement, even ``PRAGMA data_version``, costs a read transaction (locks on the
WAL index), about what the read it would save costs.

Two counters: ``begun`` moves when a connection first runs a statement that can revoke
(after it ran, so its transaction holds SQLite's write lock), ``ended`` when that
connection's transaction ends (after its COMMIT or ROLLBACK). The mark *stands* only
while they are equal: from the first revoking statement to the end of its transaction no
answer is remembered or reused, and after the end the value has moved past every answer
remembered before. So no answer remembered before a revocation is used once its
transaction has committed. A process killed inside such a transaction leaves the mark
moving (downloads take the read path: slower, never wrong) until ``settle`` runs, which
``patchgate serve`` does at its start while it holds the database's write lock.

The statements that can revoke (``revokes``): any UPDATE or DELETE of ``tenants``,
``releases``, ``release_artifacts``, ``blobs``; a DELETE of ``actions`` (an offer is an
action); an UPDATE of ``devices`` that sets its token, controllerId, tenant or removal.
A write the check cannot place (a CTE around an UPDATE or DELETE, a REPLACE) counts as
revoking. Everything else (polls' last-seen times, feedback, audit, new rows) leaves the mark alone.
Writes made outside patchgate's engines (the ``sqlite3`` shell) do not move it; stop the
servers for those.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import sqlite3
import struct
import threading
from typing import Any

_PAIR = struct.Struct("<QQ")
_ONE = struct.Struct("<Q")
SUFFIX = "-access"

_ANY_CHANGE = frozenset(("tenants", "releases", "release_artifacts", "blobs"))
_DEVICE_KEYS = ("token_hash", "controller_id", "tenant_id", "removed_at")
_WRITE = re.compile(r"\s*(UPDATE|DELETE\s+FROM)\s+\"?(\w+)\"?", re.IGNORECASE)
_HIDDEN_WRITE = re.compile(r"\b(UPDATE|DELETE)\b", re.IGNORECASE)
_REPLACE = re.compile(r"(REPLACE|INSERT\s+OR\s+REPLACE)\b", re.IGNORECASE)


def revokes(statement: str) -> bool:
    """Whether ``statement`` (SQL text) can take away a download's permission. Read
    conservatively: a statement whose write it cannot place (a CTE around an UPDATE or
    DELETE, a REPLACE) counts as revoking."""
    statement = statement.lstrip()
    head = statement[:7].upper()
    if head.startswith("WITH"):
        return _HIDDEN_WRITE.search(statement) is not None
    if head.startswith(("REPLACE", "INSERT ")):
        return _REPLACE.match(statement) is not None
    head = head[:6]
    if head not in ("UPDATE", "DELETE"):
        return False
    match = _WRITE.match(statement)
    if match is None:
        return True  # a write we cannot read: assume it can
    table = match[2].lower()
    if table in _ANY_CHANGE:
        return True
    if head == "DELETE":
        return table in ("actions", "devices")
    if table != "devices":
        return False
    assignments = re.split(r"\sWHERE\s", statement, maxsplit=1, flags=re.IGNORECASE)[0]
    return any(key in assignments for key in _DEVICE_KEYS)


class AccessMark:
    """The counter pair of one database file, mapped shared (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size < _PAIR.size:
                os.ftruncate(self._fd, _PAIR.size)
        self._map = mmap.mmap(self._fd, _PAIR.size, mmap.MAP_SHARED)

    def stamp(self) -> int | None:
        """The mark's value while it stands, else None (a revoking write in progress or
        one that never ended). ``ended`` is read first: both only grow and ``ended`` never
        passes ``begun``, so equal values mean no revoking transaction was open at the
        second read and none ended between the two."""
        ended = _ONE.unpack_from(self._map, 8)[0]
        begun = _ONE.unpack_from(self._map, 0)[0]
        return begun if begun == ended else None

    def begin(self) -> None:
        with self._locked():
            begun, ended = _PAIR.unpack_from(self._map)
            _PAIR.pack_into(self._map, 0, begun + 1, ended)

    def end(self) -> None:
        with self._locked():
            begun, ended = _PAIR.unpack_from(self._map)
            _PAIR.pack_into(self._map, 0, begun, min(ended + 1, begun))

    def settle(self) -> None:
        """End every revoking transaction counted as open. Only for a caller holding the
        database's write lock: then none is open (those past their COMMIT have committed),
        and a late ``end`` cannot carry ``ended`` past ``begun``."""
        with self._locked():
            begun, _ = _PAIR.unpack_from(self._map)
            _PAIR.pack_into(self._map, 0, begun + 1, begun + 1)

    def _locked(self) -> _Flock:
        return _Flock(self._fd)


class _Flock:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


_MARKS: dict[str, AccessMark] = {}
_MARKS_LOCK = threading.Lock()


def for_database(database: str | None) -> AccessMark | None:
    """The mark of the SQLite file ``database`` (one per process); None for an in-memory
    database or one whose folder cannot hold the mark (nothing is remembered then)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = os.path.abspath(database) + SUFFIX
    with _MARKS_LOCK:
        mark = _MARKS.get(path)
        if mark is None:
            try:
                mark = _MARKS[path] = AccessMark(path)
            except OSError:
                return None
        return mark


class MarkedConnection(sqlite3.Connection):
    """A sqlite3 connection that ends its revoking transaction on the mark after the
    transaction's end (``access_mark`` and ``revoking`` are set by the engine's hooks)."""

    access_mark: AccessMark | None = None
    revoking = False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_revoking()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_revoking()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_revoking()

    def end_revoking(self) -> None:
        if self.revoking and self.access_mark is not None:
            self.revoking = False
            self.access_mark.end()


def after_execute(_conn: Any, cursor: Any, statement: str, *_rest: Any) -> None:
    """SQLAlchemy's ``after_cursor_execute``: a revoking statement starts the move."""
    dbapi = cursor.connection
    if not isinstance(dbapi, MarkedConnection) or dbapi.revoking or not revokes(statement):
        return
    if dbapi.access_mark is not None:
        dbapi.access_mark.begin()
        dbapi.revoking = True
        if dbapi.in_transaction:
            return
        # Not in a transaction: the statement has committed by itself already.
        dbapi.end_revoking()


def settle(engine: Any) -> None:
    """``AccessMark.settle`` for the SQLite database of the write engine ``engine``, under
    its write lock (its BEGIN is IMMEDIATE); nothing for another database."""
    if engine.dialect.name != "sqlite":
        return
    mark = for_database(engine.url.database)
    if mark is None:
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")  # the transaction, and with it the lock, is open
        mark.settle()
