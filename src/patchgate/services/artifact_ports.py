"""The artifact store port: content-addressed bytes, streamed in and out.

Two kinds of store stand behind it (docs/storage.md): the local folder of the data folder,
whose blobs are served zero-copy from their path, and a remote object store (S3 and its
compatibles), whose blobs are served by a redirect to a presigned URL or streamed through
patchgate (``RemoteArtifactStore``).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from patchgate.domain.errors import IntegrityError, NotFound, TooLarge

DELIVERIES = ("redirect", "stream")


@dataclass(frozen=True)
class StoredBlob:
    """What the store knows of some bytes once they are safely stored."""

    sha256: str
    sha1: str
    md5: str
    size: int


class BlobHasher:
    """The size and the SHA-256, SHA-1 and MD5 of bytes as they stream in (every store
    hashes while it writes), refusing them past ``max_bytes`` with ``TooLarge``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._sha256 = hashlib.sha256()
        # DDI clients ask for SHA-1 and MD5 as checksums, not for security.
        self._sha1 = hashlib.sha1()  # noqa: S324
        self._md5 = hashlib.md5()  # noqa: S324

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(f"the artifact is over the limit of {self.max_bytes} bytes")
        self._sha256.update(chunk)
        self._sha1.update(chunk)
        self._md5.update(chunk)

    def blob(self) -> StoredBlob:
        return StoredBlob(
            self._sha256.hexdigest(), self._sha1.hexdigest(), self._md5.hexdigest(), self.size
        )


@dataclass(frozen=True)
class BlobRef:
    """A stored blob a download names: its SHA-256 (the store's key) and its size as
    recorded when it was uploaded."""

    sha256: str
    size: int


@dataclass(frozen=True)
class RemoteBody:
    """A (part of a) blob as the remote store answers it: ``status`` 200 or 206, the
    ``content_range`` of a 206, ``length`` bytes in ``chunks``; ``close`` releases the
    connection when the answer is not read to its end."""

    status: int
    length: int
    content_range: str | None
    chunks: Iterator[bytes]
    close: contextlib.AbstractContextManager[object]


class ArtifactStore(abc.ABC):
    """Bytes named by their SHA-256. Writes are atomic: a blob is either whole or absent."""

    @abc.abstractmethod
    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredBlob:
        """Store a stream of bytes, hashing while streaming; never holds it all in memory.

        Raises ``TooLarge`` (leaving nothing behind) past ``max_bytes``, ``StoreUnavailable``
        when the store cannot be reached or refuses the credentials.
        """

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """True when the blob is stored."""

    @abc.abstractmethod
    def local_path(self, sha256: str) -> Path | None:
        """A local file holding the blob, for zero-copy serving; None for remote stores."""

    @abc.abstractmethod
    def open(self, sha256: str) -> Iterable[bytes]:
        """The blob's bytes as a stream of chunks (``NotFound`` when it is not stored)."""

    @abc.abstractmethod
    def stale_blobs(self, older_than_seconds: float) -> Iterable[str]:
        """The SHA-256 of each blob last stored more than ``older_than_seconds`` ago (an
        upload of bytes already stored counts as storing them again)."""

    @abc.abstractmethod
    def delete_if_stale(self, sha256: str, older_than_seconds: float) -> bool:
        """Remove the blob if it is still stale (not stored again since it was listed);
        atomic with respect to ``put_stream``. True when removed."""

    def sweep_temporary(self, older_than_seconds: float) -> int:
        """Remove partial uploads left by a crash, older than ``older_than_seconds`` so an
        upload in progress in another process is never touched. Returns how many."""
        return 0

    @contextlib.contextmanager
    def local_copy(self, sha256: str, work_dir: Path | None = None) -> Iterator[Path]:
        """A local file with the blob's bytes for as long as the block runs: the blob's own
        path in a local store, else a temporary copy (in ``work_dir``) that is checked
        against ``sha256`` while it is written and removed afterwards. Tools that read a
        file (the native-signature checks) use this, so no check is skipped for want of a
        local path."""
        path = self.local_path(sha256)
        if path is not None:
            yield path
            return
        if work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="patchgate-blob-", dir=work_dir) as tmp:
            copy = Path(tmp) / sha256
            self._copy_checked(sha256, copy)
            yield copy

    def cached_file(self, sha256: str, cache_dir: Path) -> Path | None:
        """A local file with the blob's bytes that may be kept (blobs never change under
        their name): the blob's own path in a local store, else a checked copy in
        ``cache_dir``; None when the blob is not stored."""
        path = self.local_path(sha256)
        if path is not None:
            return path
        cached = cache_dir / sha256
        if cached.is_file():
            return cached
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=cache_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            self._copy_checked(sha256, tmp)
            os.replace(tmp, cached)
        except NotFound:
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return cached

    def _copy_checked(self, sha256: str, target: Path) -> None:
        digest = hashlib.sha256()
        with target.open("wb") as handle:
            for chunk in self.open(sha256):
                digest.update(chunk)
                handle.write(chunk)
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"the artifact store's copy of blob {sha256} does not match its SHA-256"
            )


class RemoteArtifactStore(ArtifactStore):
    """A store the server reaches over the network (S3 and compatibles): downloads are a
    redirect to a presigned URL or a stream through the server (``delivery``)."""

    delivery: str  # one of DELIVERIES
    presign_seconds: int

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where the store is (``s3://BUCKET/PREFIX``), for messages and alerts."""

    def local_path(self, sha256: str) -> Path | None:
        return None

    @abc.abstractmethod
    def size(self, sha256: str) -> int | None:
        """The stored object's size, None when it is missing (``StoreUnavailable`` when
        the store does not answer)."""

    @abc.abstractmethod
    def presigned_url(self, sha256: str, *, filename: str | None = None) -> str:
        """A URL any HTTP client may GET the blob from for ``presign_seconds``; with
        ``filename`` the store answers it as that attachment's name."""

    @abc.abstractmethod
    def get(self, sha256: str, byte_range: str | None = None) -> RemoteBody:
        """The blob, or the one range of it (``bytes=a-b``, as HTTP says it) passed to
        the store as it is; ``NotFound`` when missing, ``RangeNotSatisfiable`` past its
        end, ``StoreUnavailable`` when the store does not answer."""


class RangeNotSatisfiable(Exception):
    """The store says the requested range lies past the blob's end."""
