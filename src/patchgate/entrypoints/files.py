"""Serving a stored blob over HTTP (RFC 9110 §14 range requests, §13 conditionals).

``BlobResponse`` answers GET and HEAD for one content-addressed file: a strong ETag (the
SHA-256), ``If-None-Match`` (304), ``Range`` with one or several ranges (206, multiple
ranges as ``multipart/byteranges``), ``If-Range`` (by ETag or ``Last-Modified``), 416 past
the end with ``Content-Range: bytes */size``, 400 for a malformed ``Range``. The ranges are
parsed as Starlette's ``FileResponse`` parses them (the same helper), so every download
route answers alike.

Where the time goes is what sets this apart from ``FileResponse``: that one makes a worker
thread hop for the stat, the open, every 64 KiB read and the close, which made a 128 KiB
``Range`` request cost milliseconds. Here the stat, the open and a read of up to
``INLINE_BYTES`` happen on the event loop (a page-cache read of that size takes
microseconds) and the answer goes out as one body; longer reads go to a worker thread in
``CHUNK_BYTES`` pieces, and a whole file goes out through the server's zero-copy
``http.response.pathsend`` extension where the server offers it (granian does).
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path
from secrets import token_hex
from urllib.parse import quote

import anyio.to_thread
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.types import Receive, Scope, Send

INLINE_BYTES = 512 * 1024
CHUNK_BYTES = 1024 * 1024
OCTET_STREAM = "application/octet-stream"

Ranges = list[tuple[int, int]]


def _request_headers(scope: Scope) -> dict[bytes, str]:
    wanted = (b"range", b"if-range", b"if-none-match")
    return {k: v.decode("latin-1") for k, v in scope["headers"] if k in wanted}


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` against a strong ETag (weak comparison, RFC 9110 §13.1.2)."""
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _disposition(filename: str) -> str:
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


class _Plain(Response):
    media_type = "text/plain"


async def _read(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    """The bytes ``start``..``end`` of ``fd``: one read on the loop when short, else
    ``CHUNK_BYTES`` reads in a worker thread."""
    if end - start <= INLINE_BYTES:
        yield os.pread(fd, end - start, start)
        return
    while start < end:
        chunk = await anyio.to_thread.run_sync(os.pread, fd, min(CHUNK_BYTES, end - start), start)
        if not chunk:
            raise RuntimeError("the stored file is shorter than its size")
        start += len(chunk)
        yield chunk


class BlobResponse(Response):
    """One stored file, as the module docstring describes."""

    def __init__(
        self,
        path: Path,
        sha256: str,
        *,
        filename: str | None = None,
        cache_control: str = "public, max-age=3600",
        media_type: str = OCTET_STREAM,
    ) -> None:
        self.path = path
        self.etag = f'"{sha256}"'
        self.filename = filename
        self.cache_control = cache_control
        self.content_type = media_type
        # What Starlette's Response has, for code that inspects one; the answer's own
        # status and headers are decided when it is sent (from the request's headers).
        self.status_code = 200
        self.raw_headers = []
        self.background = None

    def _answer_headers(self, st: os.stat_result) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", self.content_type.encode()),
            (b"accept-ranges", b"bytes"),
            (b"etag", self.etag.encode()),
            (b"last-modified", formatdate(st.st_mtime, usegmt=True).encode()),
            (b"cache-control", self.cache_control.encode()),
        ]
        if self.filename is not None:
            headers.append((b"content-disposition", _disposition(self.filename).encode()))
        return headers

    def _use_range(self, if_range: str | None, last_modified: bytes) -> bool:
        if if_range is None:
            return True
        if if_range.startswith("W/"):
            return False
        return if_range in (self.etag, last_modified.decode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _request_headers(scope)
        head = scope["method"] == "HEAD"
        if etag_matches(request.get(b"if-none-match"), self.etag):
            await Response(
                status_code=304, headers={"etag": self.etag, "cache-control": self.cache_control}
            )(scope, receive, send)
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            await _Plain("the file is no longer stored", status_code=404)(scope, receive, send)
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                await _Plain("not a file", status_code=404)(scope, receive, send)
                return
            headers = self._answer_headers(st)
            ranges: Ranges = []
            http_range = request.get(b"range")
            if http_range is not None and self._use_range(request.get(b"if-range"), headers[3][1]):
                try:
                    ranges = FileResponse._parse_range_header(http_range, st.st_size)
                except MalformedRangeHeader as exc:
                    await _Plain(exc.content, status_code=400)(scope, receive, send)
                    return
                except RangeNotSatisfiable:
                    await _Plain(
                        status_code=416, headers={"content-range": f"bytes */{st.st_size}"}
                    )(scope, receive, send)
                    return
            if len(ranges) > 1:
                await self._multiple(send, fd, headers, ranges, st.st_size, head)
            elif ranges:
                await self._single(send, fd, headers, ranges[0], st.st_size, head)
            else:
                await self._whole(scope, send, fd, headers, st.st_size, head)
        finally:
            os.close(fd)

    async def _whole(
        self,
        scope: Scope,
        send: Send,
        fd: int,
        headers: list[tuple[bytes, bytes]],
        size: int,
        head: bool,
    ) -> None:
        headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
        elif "http.response.pathsend" in scope.get("extensions", {}) and size > INLINE_BYTES:
            await send({"type": "http.response.pathsend", "path": str(self.path)})
        else:
            await _send_chunks(send, _read(fd, 0, size), last=True)

    async def _single(
        self,
        send: Send,
        fd: int,
        headers: list[tuple[bytes, bytes]],
        span: tuple[int, int],
        size: int,
        head: bool,
    ) -> None:
        start, end = span
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
        headers.append((b"content-length", str(end - start).encode()))
        await send({"type": "http.response.start", "status": 206, "headers": headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
        else:
            await _send_chunks(send, _read(fd, start, end), last=True)

    async def _multiple(
        self,
        send: Send,
        fd: int,
        headers: list[tuple[bytes, bytes]],
        ranges: Ranges,
        size: int,
        head: bool,
    ) -> None:
        boundary = token_hex(13)
        parts = [
            (
                f"--{boundary}\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n"
            ).encode("latin-1")
            for start, end in ranges
        ]
        closing = f"--{boundary}--".encode("latin-1")
        length = sum(
            len(p) + (end - start) + 2 for p, (start, end) in zip(parts, ranges, strict=True)
        )
        headers = [h for h in headers if h[0] != b"content-type"]
        headers.append((b"content-type", f"multipart/byteranges; boundary={boundary}".encode()))
        headers.append((b"content-length", str(length + len(closing)).encode()))
        await send({"type": "http.response.start", "status": 206, "headers": headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        for part, (start, end) in zip(parts, ranges, strict=True):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await _send_chunks(send, _read(fd, start, end), last=False)
            await send({"type": "http.response.body", "body": b"\r\n", "more_body": True})
        await send({"type": "http.response.body", "body": closing})


async def _send_chunks(send: Send, chunks: AsyncIterator[bytes], *, last: bool) -> None:
    """Send ``chunks`` as body messages; with ``last``, the final one ends the answer."""
    pending: bytes | None = None
    async for chunk in chunks:
        if pending is not None:
            await send({"type": "http.response.body", "body": pending, "more_body": True})
        pending = chunk
    await send({"type": "http.response.body", "body": pending or b"", "more_body": not last})
