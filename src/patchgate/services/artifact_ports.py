"""The artifact store port: content-addressed bytes, streamed in and out."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredBlob:
    """What the store knows of some bytes once they are safely on disk."""

    sha256: str
    sha1: str
    md5: str
    size: int


class ArtifactStore(abc.ABC):
    """Bytes named by their SHA-256. Writes are atomic: a blob is either whole or absent."""

    @abc.abstractmethod
    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredBlob:
        """Store a stream of bytes, hashing while streaming; never holds it all in memory.

        Raises ``TooLarge`` (leaving nothing behind) past ``max_bytes``.
        """

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """True when the blob is stored."""

    @abc.abstractmethod
    def local_path(self, sha256: str) -> Path | None:
        """A local file holding the blob, for zero-copy serving; None for remote stores."""

    @abc.abstractmethod
    def open(self, sha256: str) -> Iterable[bytes]:
        """The blob's bytes as a stream of chunks."""

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
