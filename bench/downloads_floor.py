"""The floor of a Range answer through granian's ASGI interface: an application that sends
the 128 KiB answer of ``bench/downloads_vs_nginx.sh`` from memory, with no work of its own
(no lookup, no file). ``FLOOR=1 bench/downloads_vs_nginx.sh`` serves it beside patchgate
with the same workers, so the table shows what is left to cut inside patchgate and what
is the server's own (BENCHMARKS.md "Downloads")."""

from __future__ import annotations

from typing import Any

SIZE = 50 * 1024 * 1024
START, END = 1048576, 1179647  # the script's RANGE
BODY = bytes(END - START + 1)
HEADERS = [
    (b"content-type", b"application/octet-stream"),
    (b"accept-ranges", b"bytes"),
    (b"etag", b'"floor"'),
    (b"content-range", f"bytes {START}-{END}/{SIZE}".encode()),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 206, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
