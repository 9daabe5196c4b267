"""The state version, and the one cache type that follows it.

The state version is a single counter row. A command raises it (:func:`changed`) in its
own transaction when it changes what a server process keeps derived in memory: campaign
and release state, the security floor, the policy in force (docs/architecture.md "State
version"). Other writes (an audit entry, a token, a triage) leave it alone, so they cost
no process a rebuild.

Each in-memory view remembers the version it was built from and is rebuilt as soon as a
newer version is read, so a change committed by the CLI or another process is seen by the
next request that checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from patchgate.services.context import Context
from patchgate.services.unit_of_work import UnitOfWork

T = TypeVar("T")


def current_version(ctx: Context) -> int:
    """The committed state version (one single-row read)."""
    with ctx.read_uow() as uow:
        return uow.state.current()


def changed(ctx: Context, uow: UnitOfWork) -> int:
    """Raise the state version in the caller's transaction (it commits or rolls back with
    the change); returns the new version. Concurrent raises serialise on the row."""
    return uow.state.bump(ctx.clock())


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
