"""The state version, and the one cache type that follows it.

The state version is a single counter row. A command raises it (:func:`changed`) in its
own transaction when it changes what a server process keeps derived in memory: campaign
and release state, the security floor, the policy in force (docs/architecture.md "State
version"). Other writes (an audit entry, a token, a triage) leave it alone, so they cost
no process a rebuild.

Each in-memory view remembers the version it was built from and is rebuilt as soon as a
newer version is read, so a change committed by the CLI or another process is seen by the
next request that checks. On PostgreSQL the new version is also pushed to every process at
its commit (:class:`StateFeed`), which rebuilds its caches then, off the request path; the
read stays the fallback (docs/deploy.md, "What each process keeps").
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from patchgate.services.context import Context
from patchgate.services.unit_of_work import UnitOfWork

T = TypeVar("T")


class StateFeed(ABC):
    """Committed state versions pushed to this process as they commit (PostgreSQL
    ``LISTEN/NOTIFY``, adapters/db/pg_notify.py). ``on_change`` gets each version heard, or
    None when notices may have been missed (after a reconnect): re-read it then."""

    @abstractmethod
    def start(self, on_change: Callable[[int | None], None]) -> None: ...

    @abstractmethod
    def wait_listening(self, timeout: float) -> bool:
        """True once the feed listens (notices committed from then on reach it)."""

    @abstractmethod
    def stop(self) -> None: ...


def current_version(ctx: Context) -> int:
    """The committed state version (one single-row read)."""
    with ctx.read_uow() as uow:
        return uow.state.current()


def changed(ctx: Context, uow: UnitOfWork) -> int:
    """Raise the state version in the caller's transaction (it commits or rolls back with
    the change); returns the new version. Concurrent raises serialise on the row."""
    return uow.state.bump(ctx.clock())


def tick_start(now: datetime, interval: float) -> datetime:
    """The start of the tick ``now`` falls in: ticks of ``interval`` seconds counted from
    the epoch, so every process (on hosts whose clocks agree, NTP) cuts the same ticks."""
    seconds = now.timestamp()
    return datetime.fromtimestamp(seconds - seconds % interval, UTC)


def claim_tick(ctx: Context, key: str, since: datetime) -> bool:
    """Claim the periodic job ``key`` for the tick that began at ``since`` (its own
    transaction): True for the one process that gets there first, False for every other
    process on the same database until a later tick."""
    with ctx.uow() as uow:
        won = uow.state.claim(key, since, ctx.clock())
        uow.commit()
    return won


class VersionedCache(Generic[T]):
    """A value rebuilt whenever the state version moves past the one it was built from.

    ``loader`` gets the version it builds for. Reading a current value takes no lock; a
    rebuild happens once, under the lock, however many readers ask for it at once."""

    def __init__(self, loader: Callable[[int], T]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._built: tuple[int, T] | None = None
        self.rebuilds = 0

    def get(self, version: int) -> T:
        """The value for ``version`` (the caller has just read it), rebuilt if older."""
        built = self._built
        if built is not None and built[0] >= version:
            return built[1]
        with self._lock:
            built = self._built
            if built is None or built[0] < version:
                built = (version, self._loader(version))
                self._built = built
                self.rebuilds += 1
            return built[1]
