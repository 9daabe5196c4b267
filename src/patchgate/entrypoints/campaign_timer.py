"""The server's campaign timer: gate evaluation in a background thread of each process.

It runs ``services.campaigns.commands.tick`` every ``interval`` seconds (soaks end, quiet devices
time out, scheduled campaigns start and end, attempts past a campaign's in-progress timeout
are closed: docs/campaigns.md "Timing, retries and schedule") and soon after device
feedback or health reports (``poke``; several pokes within ``debounce`` seconds make one
evaluation).

Several processes, on one host or many, run it at once on one database. Their ticks fall
on the same grid (multiples of ``interval`` since the epoch), and before evaluating a
campaign each claims it for the tick (``services.state.claim_tick``: one upsert), so each
campaign is evaluated once per tick across the cluster; a poke claims it for the moment
the feedback arrived, so an evaluation another process began after that counts for it.
Each transition also takes the campaign's row lock, so none is applied twice.
docs/deploy.md, "What each process keeps".
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from patchgate.services.campaigns import commands
from patchgate.services.context import Context
from patchgate.services.state import tick_start

log = logging.getLogger("patchgate.campaigns")

# How long after a tick's start the timer wakes (timers never wake early, but the clock
# read on waking must already be inside the new tick).
_PAST_THE_TICK = 0.05


class CampaignTimer:
    """Evaluate campaigns on a timer and when poked."""

    def __init__(self, ctx: Context, interval: float, *, debounce: float = 0.2) -> None:
        self.ctx = ctx
        self.interval = interval
        self.debounce = debounce
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._poked_at: datetime | None = None

    def poke(self) -> None:
        """Evaluate soon (device feedback arrived); starts the thread on first use."""
        self.start()
        with self._lock:
            if self._poked_at is None:
                self._poked_at = self.ctx.clock()
        self._wake.set()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None or self.interval <= 0:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="campaigns", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current evaluation."""
        self._stop.set()
        self._wake.set()

    def run_once(self) -> dict[int, str]:
        """One evaluation at the context's clock, without the tick claim (tests drive the
        timer with it, under a clock of their own); returns the verdicts."""
        return commands.tick(self.ctx)

    def _until_next_tick(self) -> float:
        """Seconds to the next tick on the shared grid (a little after it, so the clock
        reads the new tick when the timer wakes)."""
        now = self.ctx.clock().timestamp()
        return self.interval - now % self.interval + _PAST_THE_TICK

    def _reason(self) -> datetime:
        """Since when the evaluation about to run is due: the first poke's time, else the
        start of the current tick."""
        with self._lock:
            poked, self._poked_at = self._poked_at, None
        return poked if poked is not None else tick_start(self.ctx.clock(), self.interval)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._until_next_tick())
            if self._stop.is_set():
                return
            if self._wake.is_set():
                self._stop.wait(self.debounce)
                self._wake.clear()
            try:
                commands.tick(self.ctx, since=self._reason())
            except Exception:  # keep evaluating; the next round retries
                log.exception("campaign evaluation failed; retrying")
