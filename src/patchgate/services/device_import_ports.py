"""Port of the bulk device import (docs/devices.md, "Importing a fleet"): rows are handed
over a batch at a time as they stream in, checked against the fleet and written (as they
come, or at the end), all in the caller's transaction."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple


class StagedRow(NamedTuple):
    """One checked CSV row with the hash of its new target token (a named tuple: an
    import makes a million of them, and a frozen dataclass costs several times more)."""

    line: int
    controller_id: str
    token_hash: str
    hardware: str | None
    version: str | None
    groups: tuple[str, ...]


# Clashes (controllerIds the tenant has) named at most, by line.
MAX_CLASHES = 100


@dataclass(frozen=True)
class Clash:
    """A staged row whose controllerId the tenant already has (``removed``: a removed
    device's, which is never reused)."""

    line: int
    controller_id: str
    removed: bool


class DeviceImportWriter(abc.ABC):
    """Stages rows, then writes them as devices (with their group rows)."""

    @abc.abstractmethod
    def stage(self, rows: Sequence[StagedRow]) -> None:
        """Take a batch of rows (on PostgreSQL checked and written as it comes, by COPY;
        on SQLite staged by batched inserts)."""

    @abc.abstractmethod
    def clashes(self, *, limit: int) -> Sequence[Clash]:
        """Rows handed over whose controllerId exists in the tenant, by line."""

    @abc.abstractmethod
    def write(self) -> int:
        """Insert every row handed over as a device and its groups (those not written
        yet); returns how many."""

    def close(self) -> None:  # noqa: B027 - most writers hold nothing to release
        """Release what staging holds (a writing thread), written or not; before the
        transaction ends."""
