"""Pure ASGI middleware (no per-request task switching): body size limit and metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patchgate.domain.errors import TooLarge


async def _reject(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": "TooLarge", "message": message, "problems": [message]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLargeError(TooLarge):
    """Raised from ``receive``: a handler that lets it through answers 413 by the domain
    error mapping; one that answered nothing yet gets the 413 from :class:`BodyLimit`."""


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before they are read: at once when
    the declared length is over, else as soon as the bytes received pass it. Only the
    routes named in ``streamed`` (method and exact path: the artifact upload) are let
    through; their handlers authenticate first, then stream and enforce their own limit."""

    def __init__(self, app: ASGIApp, limit: int, streamed: Sequence[tuple[str, str]] = ()) -> None:
        self.app = app
        self.limit = limit
        self.streamed = frozenset(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await _reject(send, 413, f"request body over {self.limit} bytes")
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLargeError(f"request body over {self.limit} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await _reject(send, 413, f"request body over {self.limit} bytes")


class TrustedHost:
    """Links for devices (DDI ``_links``, the public pages' URLs) are built from the Host
    header. Without a configured public URL, the Host a client sends is not trusted: it
    is replaced by the address the connection actually reached (the ASGI ``server``), so
    a forged Host never ends up in a link another device follows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server and server[0]:
            host, port = server[0], server[1]
            if ":" in host:  # IPv6 literal
                host = f"[{host}]"
            authority = f"{host}:{port}" if port else host
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            headers.append((b"host", authority.encode("latin-1")))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def route_group(path: str) -> str:
    """A low-cardinality label for a path (device API, management API, pages, …)."""
    if "/controller/v1/" in path:
        return "ddi"
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/tuf/"):
        return "tuf"
    if path in ("/healthz", "/metrics"):
        return "ops"
    return "web"


class Metrics:
    """Counts requests and their latency per route group into a per-app registry."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "patchgate_http_requests_total",
            "HTTP requests answered",
            ["group", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "patchgate_http_request_seconds",
            "Time to answer an HTTP request",
            ["group"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.measure(self.app, scope, receive, send, time.perf_counter())

    async def measure(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, start: float
    ) -> None:
        """Answer an HTTP request by ``app`` and count it (``start``: its
        ``time.perf_counter()`` when it came in)."""
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, recording_send)
        finally:
            self.record(
                route_group(scope["path"]), scope["method"], status, time.perf_counter() - start
            )

    def record(self, group: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (also for layers in front of this one: downloads)."""
        key = (group, method, status)
        children = self._children.get(key)
        if children is None:  # the labelled series, looked up once per label set
            children = (
                self.requests.labels(group, method, str(status)),
                self.latency.labels(group),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
