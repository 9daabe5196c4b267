"""TUF metadata in the database: the one place of truth when several hosts serve
``/tuf/metadata`` (docs/storage.md, "TUF metadata").

Writers take ``pg_advisory_xact_lock`` in the transaction that writes (and the data
folder's file lock), so the CLI and every server process on every host sign new versions
one at a time, and
the timestamp refresher of each process, re-reading under the lock, re-signs only when no
other process has just done it. Readers read the committed rows: every process serves the
same versions. Versioned files (``N.root.json``…) never change once written and are kept
in memory; ``timestamp.json`` and ``root.json`` are read on each request.

An installation that kept its metadata in the data folder before gets its files copied
in on first use (when the table is still empty).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, text

from patchgate.adapters.db.models import TufMetadataRow
from patchgate.adapters.tuf_metadata import MetadataStore, file_lock

# pg_advisory_xact_lock's key for the TUF repository ("TUF" in ASCII).
ADVISORY_KEY = 0x545546
_TABLE = TufMetadataRow.__table__
_ROW = TufMetadataRow


class DbMetadata(MetadataStore):
    """Metadata rows of ``tuf_metadata``; ``legacy_folder``'s files imported once."""

    def __init__(self, engine: Engine, lock_path: Path, legacy_folder: Path | None = None):
        self.engine = engine
        self.lock_path = lock_path
        self.legacy_folder = legacy_folder
        self._local = threading.local()
        self._immutable: dict[str, bytes] = {}
        self._imported = False

    def _conn(self) -> Connection | None:
        return getattr(self._local, "conn", None)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        held = self._conn()
        if held is not None:
            yield held
            return
        with self.engine.connect() as conn:
            yield conn

    def read(self, name: str) -> bytes | None:
        cached = self._immutable.get(name)
        if cached is not None:
            return cached
        self._import_legacy()
        with self._reading() as conn:
            body = conn.execute(select(_TABLE.c.body).where(_TABLE.c.name == name)).scalar()
        if body is None:
            return None
        data = bytes(body)
        if name[0].isdigit() and self._conn() is None:
            self._immutable[name] = data
        return data

    def names(self) -> list[str]:
        self._import_legacy()
        with self._reading() as conn:
            return [str(n) for n in conn.execute(select(_TABLE.c.name)).scalars()]

    def write(self, name: str, data: bytes) -> None:
        conn = self._conn()
        if conn is None:
            raise RuntimeError("TUF metadata is written only under the repository lock")
        self._put(conn, name, data)

    @staticmethod
    def _put(conn: Connection, name: str, data: bytes) -> None:
        conn.execute(delete(_ROW).where(_ROW.name == name))
        values: dict[str, Any] = {"name": name, "body": data, "written_at": datetime.now(UTC)}
        conn.execute(insert(_ROW).values(**values))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        if self._conn() is not None:
            yield  # already held by this thread (a writer calling another writer)
            return
        with file_lock(self.lock_path), self.engine.connect() as conn:
            conn.begin()
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY})
            self._local.conn = conn
            try:
                yield
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                self._local.conn = None

    def _import_legacy(self) -> None:
        """Copy the data folder's metadata files in, once, when the table is empty."""
        if self._imported or self.legacy_folder is None:
            return
        self._imported = True
        if not self.legacy_folder.is_dir():
            return
        with self.engine.connect() as conn:
            if conn.execute(select(_TABLE.c.name).limit(1)).first() is not None:
                return
        files = sorted(p for p in self.legacy_folder.iterdir() if p.suffix == ".json")
        if not files:
            return
        with self.locked():
            held = self._conn()
            assert held is not None
            if held.execute(select(_TABLE.c.name).limit(1)).first() is None:
                for path in files:
                    self._put(held, path.name, path.read_bytes())
