"""JSON POSTed to audit witnesses in the background, with retry.

The witnesses (``PATCHGATE_AUDIT_WITNESS``) get a copy of each signed audit checkpoint.
Each post is delivered in a background thread: up to ``attempts`` tries per endpoint, with
exponential back-off, a 2xx answer counting as delivered; one that still fails is logged
at ERROR level (the checkpoint itself is already in the database and the journal file).
Notices to people go through the notice outbox instead (docs/notifications.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from patchgate.services.ports import Witnesses

log = logging.getLogger("patchgate.webhooks")


class HttpWebhooks(Witnesses):
    """POST each notice to every endpoint, retrying with back-off."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.transport = transport
        # Deliveries started and not yet seen finished; pruned at each post, so a
        # long-running server keeps only those in flight.
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def post(self, notice: dict[str, Any]) -> None:
        with self._lock:
            self.threads = [thread for thread in self.threads if thread.is_alive()]
            for url in self.endpoints:
                thread = threading.Thread(
                    target=self._deliver, args=(url, notice), name="patchgate-webhook", daemon=True
                )
                thread.start()
                self.threads.append(thread)

    def _deliver(self, url: str, notice: dict[str, Any]) -> bool:
        delay = self.backoff
        with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
            for attempt in range(1, self.attempts + 1):
                try:
                    answer = client.post(url, json=notice)
                    if answer.is_success:
                        return True
                    problem = f"HTTP {answer.status_code}"
                except httpx.HTTPError as exc:
                    problem = str(exc) or type(exc).__name__
                log.warning("webhook %s: attempt %d failed (%s)", url, attempt, problem)
                if attempt < self.attempts:
                    time.sleep(delay)
                    delay *= 2
        log.error("webhook %s: notice %s not delivered", url, notice.get("event"))
        return False

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for deliveries in flight (for the CLI before it exits, and tests)."""
        with self._lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout)
