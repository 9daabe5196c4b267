"""The bootloader environment on disk, redundant as U-Boot's ``CONFIG_SYS_REDUNDAND_ENVIRONMENT``.

Two copies, ``bootenv.0`` and ``bootenv.1``. Each starts with one header line carrying a
sequence number, the body's length and a CRC-32 over both and the body; the body is the env
as JSON. A write goes to the copy that does *not* hold the newest valid env, with the next
sequence number, through :meth:`DeviceIO.write_file_atomic` (temp file, fsync, rename,
fsync of the folder).
A reader takes the valid copy with the highest sequence number. So a torn or lost write
costs at most the change being written: the other copy still holds the state before it.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass

from patchgate.agent.errors import NoValidEnv
from patchgate.agent.io import DeviceIO
from patchgate.domain.ab_state import BootEnv
from patchgate.domain.errors import InvalidInput

__all__ = ["ENV_FILES", "EnvCopy", "EnvStore", "NoValidEnv"]

ENV_FILES = ("bootenv.0", "bootenv.1")
_MAGIC = "patchgate-bootenv/1"


@dataclass(frozen=True)
class EnvCopy:
    """One copy as read from disk: its file index, sequence number and env (or the reason
    it is not valid)."""

    index: int
    sequence: int
    env: BootEnv | None
    problem: str | None = None


def _crc(sequence: int, length: int, body: bytes) -> int:
    """CRC-32 over the sequence number, the length and the body: a damaged sequence number
    must not let an old copy pass for the newest."""
    return zlib.crc32(f"{sequence}:{length}:".encode() + body)


def encode(env: BootEnv, sequence: int) -> bytes:
    body = json.dumps(env.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    crc = _crc(sequence, len(body), body)
    header = f"{_MAGIC} seq={sequence} len={len(body)} crc32={crc:08x}\n"
    return header.encode() + body


def decode(index: int, data: bytes | None) -> EnvCopy:
    """Parse one copy; anything short of a perfect header, length and CRC is invalid."""
    if data is None:
        return EnvCopy(index, -1, None, "missing")
    header, sep, body = data.partition(b"\n")
    fields = header.decode("ascii", "replace").split(" ")
    if not sep or len(fields) != 4 or fields[0] != _MAGIC:
        return EnvCopy(index, -1, None, "bad header")
    try:
        values = dict(field.split("=", 1) for field in fields[1:])
        sequence = int(values["seq"])
        length = int(values["len"])
        crc = int(values["crc32"], 16)
    except (KeyError, ValueError):
        return EnvCopy(index, -1, None, "bad header")
    if len(body) != length:
        return EnvCopy(index, sequence, None, "torn (length differs)")
    if _crc(sequence, length, body) != crc:
        return EnvCopy(index, sequence, None, "checksum mismatch")
    try:
        env = BootEnv.from_dict(json.loads(body))
    except (ValueError, InvalidInput) as exc:
        return EnvCopy(index, sequence, None, f"unreadable: {exc}")
    return EnvCopy(index, sequence, env)


class EnvStore:
    """Reads and writes the redundant environment in ``state_dir`` through ``io``."""

    def __init__(self, state_dir: str, io: DeviceIO) -> None:
        self.state_dir = state_dir
        self.io = io

    def paths(self) -> tuple[str, str]:
        return (
            os.path.join(self.state_dir, ENV_FILES[0]),
            os.path.join(self.state_dir, ENV_FILES[1]),
        )

    def copies(self) -> list[EnvCopy]:
        return [decode(i, self.io.read_bytes(path)) for i, path in enumerate(self.paths())]

    def _newest(self) -> EnvCopy | None:
        valid = [copy for copy in self.copies() if copy.env is not None]
        return max(valid, key=lambda copy: copy.sequence) if valid else None

    def load(self) -> BootEnv:
        """The newest valid env; :class:`NoValidEnv` when neither copy is valid."""
        newest = self._newest()
        if newest is None or newest.env is None:
            raise NoValidEnv("no valid boot environment in the state folder")
        return newest.env

    def save(self, env: BootEnv) -> None:
        """Write ``env`` over the older copy, with the next sequence number."""
        newest = self._newest()
        if newest is None:
            index, sequence = 0, 1
        else:
            index, sequence = 1 - newest.index, newest.sequence + 1
        self.io.write_file_atomic(self.paths()[index], encode(env, sequence))
