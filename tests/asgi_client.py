"""Requests through an ASGI app in this process, counting the body bytes it pulls: the
app behind its real middleware, without a server (for checks a client library would hide,
such as how much of a body the app reads before it answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    body: bytes
    read: int  # body bytes the app pulled from the client
    headers: dict[str, str]


def call(
    asgi: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    chunks: Iterator[bytes] | None = None,
) -> Answer:
    """One request through the ASGI app; ``chunks`` streams a body without a length."""
    path, _, query = path.partition("?")
    parts = iter(chunks) if chunks is not None else iter([body])
    read = 0
    sent: list[dict[str, Any]] = []
    body_done = False
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal read, body_done
        part = None if body_done else next(parts, None)
        if part is None:
            if body_done:  # asked again after the whole body: wait for the disconnect
                await finished.wait()
                return {"type": "http.disconnect"}
            body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(part)
        if chunks is None:
            body_done = True
        return {"type": "http.request", "body": part, "more_body": chunks is not None}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            finished.set()

    raw_headers = [(b"host", b"testserver")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if chunks is None:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    asyncio.run(asgi(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers_out = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    return Answer(start["status"], content, read, headers_out)
