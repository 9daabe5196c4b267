"""Every effect the agent has on persistent storage, behind one interface.

The agent never calls ``open``/``os.rename``/``os.fsync`` itself: it calls a :class:`DeviceIO`.
Each primitive first passes :meth:`DeviceIO.checkpoint`, which does nothing on a real device;
the power-fail test overrides it to cut power at the N-th call (and to tear the write it
interrupts), so every write and every step of an install is a crash point it can enumerate.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["DeviceIO", "PowerCut", "WriteHandle"]


class PowerCut(BaseException):
    """Raised by a test's DeviceIO to model the power going out. A BaseException so no
    ``except Exception`` in the agent can swallow it, as nothing survives a real power cut."""


@dataclass
class WriteHandle:
    """An open file (or block device) being written."""

    fd: int
    path: str


class DeviceIO:
    """Real file-system primitives, each a checkpoint."""

    def checkpoint(self, label: str) -> None:
        """Called before every effect; the real device does nothing here."""

    # -- writing -------------------------------------------------------------------------
    def open_write(self, path: str, *, offset: int = 0, truncate: bool = False) -> WriteHandle:
        """Open ``path`` for writing at ``offset`` (created if missing; block devices are
        never truncated)."""
        self.checkpoint(f"open {os.path.basename(path)}")
        flags = os.O_WRONLY | os.O_CREAT
        if truncate:
            flags |= os.O_TRUNC
        fd = os.open(path, flags, 0o600)
        os.lseek(fd, offset, os.SEEK_SET)
        return WriteHandle(fd, path)

    def write(self, handle: WriteHandle, data: bytes) -> None:
        self.checkpoint(f"write {os.path.basename(handle.path)}")
        self._write_all(handle, data)

    @staticmethod
    def _write_all(handle: WriteHandle, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(handle.fd, view)
            view = view[written:]

    def fsync(self, handle: WriteHandle) -> None:
        self.checkpoint(f"fsync {os.path.basename(handle.path)}")
        os.fsync(handle.fd)

    def close(self, handle: WriteHandle) -> None:
        os.close(handle.fd)

    def rename(self, source: str, target: str) -> None:
        self.checkpoint(f"rename {os.path.basename(target)}")
        os.replace(source, target)

    def fsync_dir(self, path: str) -> None:
        self.checkpoint(f"fsync dir {os.path.basename(path)}")
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def unlink(self, path: str) -> None:
        self.checkpoint(f"unlink {os.path.basename(path)}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    # -- reading (not crash points: a read changes nothing) -------------------------------
    @staticmethod
    def read_bytes(path: str) -> bytes | None:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    @staticmethod
    def size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return 0

    @staticmethod
    def read_chunks(path: str, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The first ``length`` bytes of ``path`` (a slot may be a larger block device)."""
        remaining = length
        with open(path, "rb") as handle:
            while remaining > 0:
                data = handle.read(min(chunk, remaining))
                if not data:
                    return
                remaining -= len(data)
                yield data

    # -- composed ------------------------------------------------------------------------
    def write_file_atomic(self, path: str, data: bytes) -> None:
        """Replace ``path`` with ``data`` so a reader sees the old or the new content:
        write a temporary file, fsync it, rename it over, fsync the folder."""
        temp = f"{path}.tmp"
        handle = self.open_write(temp, truncate=True)
        try:
            self.write(handle, data)
            self.fsync(handle)
        finally:
            self.close(handle)
        self.rename(temp, path)
        self.fsync_dir(os.path.dirname(os.path.abspath(path)))
