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
``http.response.pathsend`` extension where the server offers it (granian does). What every
answer for one file shares (its header bytes, its ``Last-Modified`` date) is built once per
file and modification time, and one range in the usual form (``bytes=a-b``) is parsed
without the general parser: a small range request is a few dictionary look-ups, one
``open``, ``fstat`` and ``pread``, and two messages to the server (docs/downloads.md).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path
from secrets import token_hex
from urllib.parse import quote

import anyio.to_thread
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.types import Message, Receive, Scope, Send

INLINE_BYTES = 512 * 1024
CHUNK_BYTES = 1024 * 1024
OCTET_STREAM = "application/octet-stream"

Ranges = list[tuple[int, int]]


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


class _Head:
    """What every answer for one stored file shares, built once per (file, ETag, name,
    modification time, size): the header bytes of a 200 or 206 (without the length and
    range), the ``Last-Modified`` date ``If-Range`` compares, the size."""

    __slots__ = ("headers", "last_modified", "size", "size_tail")

    def __init__(
        self,
        etag: str,
        filename: str | None,
        cache_control: str,
        content_type: str,
        st: os.stat_result,
    ) -> None:
        self.last_modified = formatdate(st.st_mtime, usegmt=True)
        self.size = st.st_size
        self.size_tail = f"/{st.st_size}".encode()
        headers = [
            (b"content-type", content_type.encode()),
            (b"accept-ranges", b"bytes"),
            (b"etag", etag.encode()),
            (b"last-modified", self.last_modified.encode()),
            (b"cache-control", cache_control.encode()),
        ]
        if filename is not None:
            headers.append((b"content-disposition", _disposition(filename).encode()))
        self.headers = tuple(headers)


_HEADS: dict[tuple[str, str | None, str, str, int, int], _Head] = {}
_HEADS_KEPT = 4096
# One range as resuming and streaming clients send it; anything else goes to Starlette's
# parser (several ranges, suffix ranges, spaces, a range past the end).
_ONE_RANGE = re.compile(rb"bytes=(\d{1,18})-(\d{1,18})")


def _head(
    etag: str, filename: str | None, cache_control: str, content_type: str, st: os.stat_result
) -> _Head:
    key = (etag, filename, cache_control, content_type, st.st_mtime_ns, st.st_size)
    head = _HEADS.get(key)
    if head is None:
        if len(_HEADS) >= _HEADS_KEPT:
            _HEADS.clear()
        head = _HEADS[key] = _Head(etag, filename, cache_control, content_type, st)
    return head


async def serve_blob(
    scope: Scope,
    send: Send,
    path: str,
    etag: str,
    *,
    filename: str | None = None,
    cache_control: str = "public, max-age=3600",
    media_type: str = OCTET_STREAM,
) -> int:
    """Answer a GET or HEAD of the stored file ``path`` (strong ``etag``) as the module
    docstring describes; the status sent, or 0 when there is no such file and nothing was
    sent (the caller words that answer)."""
    http_range = if_range = if_none_match = None
    for name, value in scope["headers"]:
        if name == b"range":
            http_range = value
        elif name == b"if-range":
            if_range = value.decode("latin-1")
        elif name == b"if-none-match":
            if_none_match = value.decode("latin-1")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        cached = [(b"etag", etag.encode()), (b"cache-control", cache_control.encode())]
        await send({"type": "http.response.start", "status": 304, "headers": cached})
        await send({"type": "http.response.body", "body": b""})
        return 304
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        head = _head(etag, filename, cache_control, media_type, st)
        head_only = scope["method"] == "HEAD"
        if http_range is None or not _use_range(if_range, etag, head.last_modified):
            await _whole(scope, send, fd, path, head, head_only)
            return 200
        one = _ONE_RANGE.fullmatch(http_range)
        if one is not None and int(one[1]) < head.size and int(one[1]) <= int(one[2]):
            start = int(one[1])
            ranges: Ranges = [(start, min(int(one[2]) + 1, head.size))]
        else:
            try:
                ranges = FileResponse._parse_range_header(http_range.decode("latin-1"), head.size)
            except MalformedRangeHeader as exc:
                await _Plain(exc.content, status_code=400)(scope, _no_body, send)
                return 400
            except RangeNotSatisfiable:
                unsatisfiable = {"content-range": f"bytes */{head.size}"}
                await _Plain(status_code=416, headers=unsatisfiable)(scope, _no_body, send)
                return 416
            if not ranges:  # more ranges than Starlette's limit: the whole file
                await _whole(scope, send, fd, path, head, head_only)
                return 200
        if len(ranges) > 1:
            await _multiple(send, fd, head, media_type, ranges, head_only)
        else:
            await _single(send, fd, head, ranges[0], head_only)
        return 206
    finally:
        os.close(fd)


def _use_range(if_range: str | None, etag: str, last_modified: str) -> bool:
    if if_range is None:
        return True
    if if_range.startswith("W/"):
        return False
    return if_range in (etag, last_modified)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        served = await serve_blob(
            scope,
            send,
            str(self.path),
            self.etag,
            filename=self.filename,
            cache_control=self.cache_control,
            media_type=self.content_type,
        )
        if not served:
            await _Plain("the file is no longer stored", status_code=404)(scope, receive, send)


async def _whole(
    scope: Scope, send: Send, fd: int, path: str, head: _Head, head_only: bool
) -> None:
    headers = [*head.headers, (b"content-length", str(head.size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if head_only:
        await send({"type": "http.response.body", "body": b""})
    elif "http.response.pathsend" in scope.get("extensions", {}) and head.size > INLINE_BYTES:
        await send({"type": "http.response.pathsend", "path": path})
    else:
        await _send_chunks(send, _read(fd, 0, head.size), last=True)


async def _single(send: Send, fd: int, head: _Head, span: tuple[int, int], head_only: bool) -> None:
    start, end = span
    headers = [
        *head.headers,
        (b"content-range", b"bytes %d-%d%s" % (start, end - 1, head.size_tail)),
        (b"content-length", b"%d" % (end - start)),
    ]
    await send({"type": "http.response.start", "status": 206, "headers": headers})
    if head_only:
        await send({"type": "http.response.body", "body": b""})
    elif end - start <= INLINE_BYTES:
        await send({"type": "http.response.body", "body": os.pread(fd, end - start, start)})
    else:
        await _send_chunks(send, _read(fd, start, end), last=True)


async def _multiple(
    send: Send, fd: int, head: _Head, content_type: str, ranges: Ranges, head_only: bool
) -> None:
    size = head.size
    boundary = token_hex(13)
    parts = [
        (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n"
        ).encode("latin-1")
        for start, end in ranges
    ]
    closing = f"--{boundary}--".encode("latin-1")
    length = sum(len(p) + (end - start) + 2 for p, (start, end) in zip(parts, ranges, strict=True))
    headers = [h for h in head.headers if h[0] != b"content-type"]
    headers.append((b"content-type", f"multipart/byteranges; boundary={boundary}".encode()))
    headers.append((b"content-length", str(length + len(closing)).encode()))
    await send({"type": "http.response.start", "status": 206, "headers": headers})
    if head_only:
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
