"""The server's end-of-support notifier: ``services.compliance.support.send_notices`` once
at start and then every ``interval`` seconds, in a background thread of each process
(docs/compliance.md). Each notice is recorded under a lock, so it goes out once however
many processes run this."""

from __future__ import annotations

import logging
import threading

from patchgate.services.compliance import support
from patchgate.services.context import Context

log = logging.getLogger("patchgate.support")
INTERVAL_SECONDS = 3600.0


class SupportNotifier:
    """Send due end-of-support notices on a timer (only when webhooks are configured)."""

    def __init__(self, ctx: Context, interval: float = INTERVAL_SECONDS) -> None:
        self.ctx = ctx
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None or self.ctx.webhooks is None or self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="support-notices", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for notice in support.send_notices(self.ctx):
                    log.info(
                        "end-of-support notice sent: %s %s", notice["product"], notice["notice"]
                    )
            except Exception:  # keep the thread alive; the next round tries again
                log.exception("end-of-support notices failed")
            self._stop.wait(self.interval)
