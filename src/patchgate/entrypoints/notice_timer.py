"""The server's notice timer: ``services.notifications.run_once`` at start and then every
``interval`` seconds, in a background thread of each process (docs/notifications.md).
Several processes may run it at once: the outbox stores each event once and each delivery
is claimed before it is sent. A timed pass is also claimed for its tick
(``services.state.claim_tick``), so across the processes on one database it runs once per
tick; a kick (a halt) runs at once wherever it lands."""

from __future__ import annotations

import logging
import threading

from patchgate.services import notifications
from patchgate.services.context import Context
from patchgate.services.notice_ports import Channels, NoticePass
from patchgate.services.state import claim_tick, tick_start

log = logging.getLogger("patchgate.notifications")


class NoticeTimer(NoticePass):
    """Derive, store and send notices on a timer; ``poke`` runs a pass soon."""

    def __init__(self, ctx: Context, channels: Channels | None, interval: float) -> None:
        self.ctx = ctx
        self.channels = channels
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None or self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="notices", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Run a pass now (a halt was committed)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _due(self, kicked: bool) -> bool:
        """A kicked pass runs; a timed one only if this process claims the tick."""
        if kicked:
            return True
        return claim_tick(self.ctx, "notices", tick_start(self.ctx.clock(), self.interval))

    def _loop(self) -> None:
        kicked = True  # the first pass, at start, runs in every process
        while not self._stop.is_set():
            try:
                if self._due(kicked):
                    self._pass()
            except Exception:  # keep the timer alive; the next pass retries
                log.exception("notice pass failed; retrying")
            kicked = self._wake.wait(self.interval)
            self._wake.clear()

    def _pass(self) -> None:
        result = notifications.run_once(self.ctx, self.channels)
        if result.stored or result.failed:
            log.info(
                "notices: %d new, %d sent, %d waiting for a retry",
                result.stored, result.sent, result.failed,
            )  # fmt: skip
