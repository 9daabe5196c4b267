"""A disk that forgets, for the agent's power-cut tests.

The agent's files are real files, written through the real :class:`DeviceIO` primitives, so
everything the agent reads back while running is what a page cache would show it. Beside
them, :class:`VolatileDisk` keeps what the *medium* holds, by POSIX's rules:

- a file's data reaches the medium at ``fsync`` of that file (POSIX ``fsync``: "all data
  for the open file descriptor … transferred to the storage device");
- a directory entry (a created, renamed or unlinked name) reaches it at ``fsync`` of the
  folder — not at ``fsync`` of the file (Linux ``fsync(2)``: "calling fsync() does not
  necessarily ensure that the entry in the directory containing the file has also reached
  disk. For that an explicit fsync() on a file descriptor for the directory is also
  needed").

When the power goes out, :meth:`VolatileDisk.power_fail` rewrites the folder to what a file
system could show after the reboot, in one of three ways (:data:`MODES`):

- ``"synced-only"``: only what was synced survives (names and data);
- ``"writeback"``: every name and file size survives but unsynced data does not — the blocks
  read as zeros (ext4 ``data=writeback``, XFS after a crash: the metadata journal ran ahead
  of the data);
- ``"everything"``: every write reached the medium, and the write that was cut is torn.

Files the agent does not write through ``DeviceIO`` (the TUF client's metadata cache) are left
as they are. ``skip_fsync`` names fsync labels whose effect is dropped, which is how a test
shows that removing one of the agent's fsyncs breaks the guarantee: ``"fsync slot-b"`` drops
every fsync whose label starts so, ``"fsync dir state after fsync download.part"`` only the
folder fsync that comes next after that file's.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from patchgate.agent.io import WriteHandle
from tests.unit.agent_device import CrashingIO

__all__ = ["MODES", "VolatileDisk"]

MODES = ("synced-only", "writeback", "everything")

_inodes = itertools.count(1)


@dataclass
class _Inode:
    """One file's data as the medium holds it (``durable``), None before its first sync."""

    number: int
    durable: bytes = b""


class VolatileDisk(CrashingIO):
    """:class:`CrashingIO` (counts crash points, tears a cut write) that also tracks which
    names and bytes are on the medium."""

    def __init__(
        self, root: str, crash_at: int | None = None, *, skip_fsync: tuple[str, ...] = ()
    ) -> None:
        super().__init__(crash_at)
        self.root = os.path.abspath(root)
        self.skip_fsync = skip_fsync
        # name -> inode, as the running system sees it and as the medium holds it.
        self.names: dict[str, _Inode] = {}
        self.durable_names: dict[str, _Inode] = {}
        self.touched: set[str] = set()
        self.handles: dict[int, _Inode] = {}
        self.last_sync = ""
        for entry in os.scandir(self.root):
            if entry.is_file():
                inode = _Inode(next(_inodes), _read(entry.path))
                self.names[entry.path] = self.durable_names[entry.path] = inode

    # -- the primitives, mirrored into the model ---------------------------------------
    def _inode_of(self, path: str) -> _Inode:
        path = os.path.abspath(path)
        inode = self.names.get(path)
        if inode is None:
            inode = self.names[path] = _Inode(next(_inodes))
        self.touched.add(path)
        return inode

    def open_write(self, path: str, *, offset: int = 0, truncate: bool = False) -> WriteHandle:
        handle = super().open_write(path, offset=offset, truncate=truncate)
        self.handles[handle.fd] = self._inode_of(path)
        return handle

    def fsync(self, handle: WriteHandle) -> None:
        label = f"fsync {os.path.basename(handle.path)}"
        self.checkpoint(label)
        if not self._skipped(label):
            self.handles[handle.fd].durable = _read(handle.path)

    def close(self, handle: WriteHandle) -> None:
        self.handles.pop(handle.fd, None)
        super().close(handle)

    def rename(self, source: str, target: str) -> None:
        super().rename(source, target)
        source, target = os.path.abspath(source), os.path.abspath(target)
        self.touched.update((source, target))
        self.names[target] = self.names.pop(source)

    def fsync_dir(self, path: str) -> None:
        label = f"fsync dir {os.path.basename(path)}"
        self.checkpoint(label)
        if self._skipped(label):
            return
        folder = os.path.abspath(path)
        for name in list(self.durable_names):
            if os.path.dirname(name) == folder and name not in self.names:
                del self.durable_names[name]
        for name, inode in self.names.items():
            if os.path.dirname(name) == folder:
                self.durable_names[name] = inode

    def unlink(self, path: str) -> None:
        super().unlink(path)
        path = os.path.abspath(path)
        self.touched.add(path)
        self.names.pop(path, None)

    def _skipped(self, label: str) -> bool:
        previous, self.last_sync = self.last_sync, label
        for skip in self.skip_fsync:
            wanted, _, after = skip.partition(" after ")
            if label.startswith(wanted) and (not after or previous.startswith(after)):
                return True
        return False

    # -- the cut -------------------------------------------------------------------------
    def power_fail(self, mode: str) -> None:
        """Make the folder show what the medium holds after the cut (see :data:`MODES`)."""
        if mode == "everything":
            return
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        surviving = self.durable_names if mode == "synced-only" else self.names
        for path in sorted(self.touched):
            inode = surviving.get(path)
            if inode is None:
                if os.path.exists(path):
                    os.unlink(path)
                continue
            data = inode.durable
            if mode == "writeback":
                # The size was journaled; the blocks past what was synced were not written.
                size = os.path.getsize(path) if os.path.exists(path) else len(data)
                data = data[:size] + bytes(max(0, size - len(data)))
            with open(path, "wb") as handle:
                handle.write(data)
        self.names = dict(surviving)
        self.durable_names = dict(surviving)
        self.touched.clear()


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
