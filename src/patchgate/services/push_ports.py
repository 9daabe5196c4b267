"""The port for push notices (docs/push.md): tell devices that something
waits for them, so they poll now instead of at their next interval.

A wake-up carries no release details and no secrets; the device learns what waits by its
next DDI poll, which stays the only channel that decides anything. Push is an optimisation:
a lost or late wake-up only means the device polls at its usual interval.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

__all__ = ["Wakeups"]


class Wakeups(abc.ABC):
    """Sends "poll now" notices to devices, each on its own topic
    (``patchgate.domain.push.wake_topic``). ``Context.wakeups`` is None when push is off."""

    @abc.abstractmethod
    def wake(self, tenant: str, controller_ids: Sequence[str]) -> None:
        """Ask each device to poll now. Never blocks on the network and never raises for
        a broker problem: notices are queued and sent in the background (the oldest are
        dropped, and counted, when the queue is full)."""

    @property
    def collectors(self) -> tuple[Any, ...]:
        """Metrics for the server to register in its Prometheus registry (none by default)."""
        return ()

    def close(self, timeout: float = 2.0) -> None:  # noqa: B027 (optional hook, no-op default)
        """Send what is queued (waiting at most ``timeout`` seconds), then stop."""
