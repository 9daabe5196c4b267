"""Where the TUF repository keeps its metadata files (docs/storage.md, "TUF metadata").

``FileMetadata`` keeps them in the data folder (one host: SQLite installations), under an
exclusive file lock. ``adapters.db.tuf_metadata.DbMetadata`` keeps them in the database
(PostgreSQL, any number of hosts), under an advisory lock: every process serves the
versions the database holds, and a role is re-signed by whichever process takes the lock
first while the others, re-reading under it, find it fresh.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from patchgate.adapters.keys import write_atomic


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created when missing) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class MetadataStore(abc.ABC):
    """Metadata files by name (``1.root.json``, ``timestamp.json``…); writes happen only
    inside ``locked``, which serialises every writer of the repository."""

    @abc.abstractmethod
    def read(self, name: str) -> bytes | None:
        """The file's bytes; None when it does not exist."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Every file's name."""

    @abc.abstractmethod
    def write(self, name: str, data: bytes) -> None:
        """Create or replace a file (inside ``locked``)."""

    @abc.abstractmethod
    def locked(self) -> contextlib.AbstractContextManager[None]:
        """The repository-wide write lock; reads inside it see the writes made in it."""


class FileMetadata(MetadataStore):
    """The files of ``tuf/metadata`` in the data folder, each written atomically."""

    def __init__(self, folder: Path, lock_path: Path) -> None:
        self.folder = folder
        self.lock_path = lock_path

    def read(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return [p.name for p in self.folder.iterdir() if p.is_file()]

    def write(self, name: str, data: bytes) -> None:
        write_atomic(self.folder / name, data, mode=0o644)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.lock_path)
