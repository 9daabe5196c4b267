"""The ceiling: a bare ASGI app on the same server software (granian) that answers every
request with a constant DDI poll reply. ``granian --interface asgi bench.ceiling_app:app``."""

from __future__ import annotations

from typing import Any

BODY = b'{"config":{"polling":{"sleep":"00:05:00"}},"_links":{}}'
HEADERS = [
    (b"content-type", b"application/hal+json;charset=UTF-8"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
