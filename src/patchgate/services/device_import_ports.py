"""Port of the bulk device import (docs/devices.md, "Importing a fleet"): rows are staged
as they stream in, checked against the fleet in one query, then written in one statement,
all in the caller's transaction."""

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
        """Stage a batch of rows (streamed: COPY on PostgreSQL, batched inserts else)."""

    @abc.abstractmethod
    def clashes(self, *, limit: int) -> Sequence[Clash]:
        """Staged rows whose controllerId exists in the tenant, by line."""

    @abc.abstractmethod
    def write(self) -> int:
        """Insert every staged row as a device and its groups; returns how many."""

    def close(self) -> None:  # noqa: B027 - most writers hold nothing to release
        """Release what staging holds (a writing thread), written or not; before the
        transaction ends."""
