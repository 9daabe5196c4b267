"""Reading the state version, and caches that follow it.

A server process keeps derived views (the policy in force, the running campaigns) in
memory. Each view remembers the state version it was built from and is rebuilt as soon as
a newer version is read, so a change committed by the CLI or another process is seen by
the next request that checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from patchgate.services.context import Context

T = TypeVar("T")


def current_version(ctx: Context) -> int:
    """The committed state version (one single-row read)."""
    with ctx.read_uow() as uow:
        return uow.state.current()


class VersionedCache(Generic[T]):
    """A value rebuilt whenever the state version moves past the one it was built from."""

    def __init__(self, loader: Callable[[], T]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._version: int | None = None
        self._value: T | None = None

    def get(self, version: int) -> T:
        """The value for ``version`` (the caller has just read it), rebuilt if stale."""
        with self._lock:
            if self._version is None or version > self._version or self._value is None:
                self._value = self._loader()
                self._version = version
            return self._value

    def invalidate(self) -> None:
        """Forget the value; the next ``get`` rebuilds it."""
        with self._lock:
            self._version = None
