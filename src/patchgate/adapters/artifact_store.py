"""The local content-addressed artifact store (the default ``ArtifactStore``).

Blobs live at ``<root>/sha256/ab/abcdef…``. A blob is written to a temporary file in the
same folder tree, hashed while it streams in, fsynced, then renamed into place, so a reader
never sees a partial blob and a crash leaves at most a temporary file that the next
``sweep_temporary`` removes. Identical content is stored once: a second upload of the same
bytes finds the blob already there, drops its temporary copy and touches the blob.

A blob no release came to use (its upload was refused or broke off after the blob was
stored) is not deleted at once: an upload of the same bytes in another process may have just
found it and not yet committed its release. ``stale_blobs`` and ``delete_if_stale`` let the
release service sweep such blobs once they are old enough; a store-wide ``flock`` makes the
"still stale?" test and the removal atomic with respect to the "already stored?" test and
the touch of ``put_stream``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from patchgate.adapters.keys import fsync_dir
from patchgate.domain.errors import InvalidInput, NotFound
from patchgate.services.artifact_ports import ArtifactStore, BlobHasher, StoredBlob

CHUNK = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TMP_PREFIX = ".incoming-"


class LocalArtifactStore(ArtifactStore):
    """Blobs in a folder of the data folder, named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise InvalidInput(f"not a SHA-256 digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredBlob:
        incoming = self.root / "incoming"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner-only (docs/security.md)
        incoming.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=incoming)
        tmp = Path(tmp_name)
        hasher = BlobHasher(max_bytes)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    if not chunk:
                        continue
                    hasher.update(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            blob = hasher.blob()
            final = self._path(blob.sha256)
            with self._locked():
                try:
                    # Already stored: touch it so a sweep of unused blobs leaves it to this
                    # upload's release.
                    os.utime(final)
                except FileNotFoundError:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, final)
                    fsync_dir(final.parent)
                else:
                    tmp.unlink()
            return blob
        except BaseException:
            # Interrupted, too large or failed: nothing of this upload stays behind.
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def local_path(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None

    def open(self, sha256: str) -> Iterator[bytes]:
        path = self._path(sha256)
        if not path.is_file():
            raise NotFound(f"no stored blob {sha256}")
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The store-wide lock (an ``flock`` on the ``sha256`` folder, so no lock file
        sits among the blobs), held only while a blob is stored, touched or removed."""
        folder = self.root / "sha256"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def stale_blobs(self, older_than_seconds: float) -> Iterator[str]:
        folder = self.root / "sha256"
        if not folder.is_dir():
            return
        cutoff = time.time() - older_than_seconds
        for path in folder.glob("??/*"):
            if not _SHA256.match(path.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime <= cutoff:
                    yield path.name

    def delete_if_stale(self, sha256: str, older_than_seconds: float) -> bool:
        path = self._path(sha256)
        with self._locked():
            try:
                if path.stat().st_mtime > time.time() - older_than_seconds:
                    return False
                path.unlink()
            except FileNotFoundError:
                return False
        return True

    def sweep_temporary(self, older_than_seconds: float = 0) -> int:
        incoming = self.root / "incoming"
        if not incoming.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in incoming.glob(_TMP_PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
        return removed
