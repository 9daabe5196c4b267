"""Audit checkpoints POSTed to witnesses by the webhook adapter (delivery with retry
against a real endpoint: tests/integration/test_audit_log.py)."""

from __future__ import annotations

import threading

import httpx

from patchgate.adapters.webhooks import HttpWebhooks


def test_finished_deliveries_are_forgotten_when_the_next_notice_is_posted() -> None:
    release = threading.Event()
    received: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        received.append(request.url.path)
        return httpx.Response(204)

    hooks = HttpWebhooks(
        ["http://hooks.test/a", "http://hooks.test/b"], transport=httpx.MockTransport(answer)
    )
    hooks.post({"event": "campaign.halted"})
    first = list(hooks.threads)
    assert len(first) == 2
    release.set()
    hooks.wait()
    assert not any(thread.is_alive() for thread in first)
    for _ in range(50):
        hooks.post({"event": "campaign.halted"})
        hooks.wait()
    assert len(hooks.threads) == 2  # only the last notice's deliveries
    assert not set(first) & set(hooks.threads)
    assert sorted(received) == ["/a"] * 51 + ["/b"] * 51


def test_waiting_joins_deliveries_still_in_flight() -> None:
    release = threading.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        return httpx.Response(204)

    hooks = HttpWebhooks(["http://hooks.test/a"], transport=httpx.MockTransport(answer))
    hooks.post({"event": "campaign.halted"})
    hooks.post({"event": "campaign.completed"})
    assert len(hooks.threads) == 2  # both in flight: neither is forgotten
    release.set()
    hooks.wait()
    assert not any(thread.is_alive() for thread in hooks.threads)
