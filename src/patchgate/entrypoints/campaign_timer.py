"""The server's campaign timer: gate evaluation in a background thread of each process.

It runs ``services.campaigns.commands.tick`` every ``interval`` seconds (soaks end, quiet devices
time out, scheduled campaigns start and end, attempts past a campaign's in-progress timeout
are closed: docs/campaigns.md "Timing, retries and schedule") and soon after device
feedback or health reports (``poke``; several pokes within
``debounce`` seconds make one evaluation). Several processes may run it at once: each
transition takes the campaign's row lock, so none is applied twice.
"""

from __future__ import annotations

import logging
import threading

from patchgate.services.campaigns import commands
from patchgate.services.context import Context

log = logging.getLogger("patchgate.campaigns")


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

    def poke(self) -> None:
        """Evaluate soon (device feedback arrived); starts the thread on first use."""
        self.start()
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
        """One evaluation at the context's clock, as the thread makes it (tests drive the
        timer with it, under a clock of their own); returns the verdicts."""
        return commands.tick(self.ctx)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            if self._stop.is_set():
                return
            if self._wake.is_set():
                self._stop.wait(self.debounce)
                self._wake.clear()
            try:
                self.run_once()
            except Exception:  # keep evaluating; the next round retries
                log.exception("campaign evaluation failed; retrying")
