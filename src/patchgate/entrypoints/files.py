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

The download fast path goes further with ``OpenFiles``: a stored file stays open and
mapped read-only between requests, so a range costs a copy out of the map and at most
one ``fstat`` a second per file (the file is still the one opened: same size and
modification time, not removed), no ``open``, ``close`` or ``pread``. That relies on how
the local store writes blobs (``adapters/artifact_store.py``): a blob is written to a
temporary file and renamed into place only when no blob of that name exists, never
written in place or truncated, and removed only once no release uses it; the download
checks its release first. A file removed meanwhile keeps its map, whose bytes are still
the ones its content address names.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import threading
import time
import weakref
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path
from secrets import token_hex
from urllib.parse import quote

import anyio.to_thread
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.types import Message, Receive, Scope, Send

INLINE_BYTES = 512 * 1024
# How long a kept file is served before its path is checked again (one fstat). Its map
# stays valid even if the file is removed meanwhile: the bytes of a content-addressed
# blob are what its name says, so the check only lets a replaced file go.
RECHECK_SECONDS = 1.0
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


class StoredFile:
    """A stored file open for answering: its descriptor, its size and modification time
    as opened, and — when ``OpenFiles`` keeps it — a read-only map of its bytes, read
    without a system call. A mapped file's reads do not use the descriptor, so closing it
    (``OpenFiles`` drops a file) never cuts an answer short; the map goes when its last
    reader does."""

    __slots__ = ("checked", "fd", "map", "mtime_ns", "size", "st")

    def __init__(self, fd: int, st: os.stat_result, *, mapped: bool) -> None:
        self.fd = fd
        self.st = st
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns
        self.checked = time.monotonic()
        # An empty file cannot be mapped (and has nothing to read).
        self.map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if mapped and self.size else None

    @classmethod
    def open(cls, path: str, *, mapped: bool = False) -> StoredFile | None:
        """The regular file at ``path``, open; None when there is none."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                return cls(fd, st, mapped=mapped)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return None

    def current(self) -> bool:
        """Whether the path's file is still the one opened (one ``fstat``): not removed,
        the same size and modification time (a re-upload of the same bytes touches it)."""
        st = os.fstat(self.fd)
        return st.st_nlink > 0 and st.st_mtime_ns == self.mtime_ns and st.st_size == self.size

    def read(self, start: int, end: int) -> bytes:
        """The bytes ``start``..``end`` (on the caller's thread)."""
        if self.map is not None:
            return self.map[start:end]
        return os.pread(self.fd, end - start, start)

    def close(self) -> None:
        os.close(self.fd)


class OpenFiles:
    """Stored files kept open and mapped by path, for the download fast path of one
    server process; up to ``kept`` at a time (all are closed when one more is needed).
    Only the thread that first used it keeps files here (the event loop's); another
    thread's ``get`` opens a file for that one answer, which it closes (``release``)."""

    def __init__(self, kept: int = 64) -> None:
        self.kept = kept
        self._files: dict[str, StoredFile] = {}
        self._owner: int | None = None
        # Closed with their owner too (an application dropped in a test, say).
        weakref.finalize(self, _close_all, self._files)

    def get(self, path: str) -> tuple[StoredFile | None, bool]:
        """The open file at ``path`` (None: no such file), and whether the caller
        must close it after its answer (it is not kept)."""
        me = threading.get_ident()
        if self._owner is None:
            self._owner = me
        if self._owner != me:
            return StoredFile.open(path), True
        file = self._files.get(path)
        if file is not None:
            now = time.monotonic()
            if now - file.checked < RECHECK_SECONDS:
                return file, False
            if file.current():
                file.checked = now
                return file, False
            del self._files[path]
            file.close()
        file = StoredFile.open(path, mapped=True)
        if file is not None:
            if len(self._files) >= self.kept:
                self.close()
            self._files[path] = file
        return file, False

    def close(self) -> None:
        _close_all(self._files)


def _close_all(files: dict[str, StoredFile]) -> None:
    kept = list(files.values())
    files.clear()
    for file in kept:
        file.close()


async def _read(file: StoredFile, start: int, end: int) -> AsyncIterator[bytes]:
    """The bytes ``start``..``end`` of ``file``: one read on the loop when short, else
    ``CHUNK_BYTES`` reads in a worker thread."""
    if end - start <= INLINE_BYTES:
        yield file.read(start, end)
        return
    while start < end:
        stop = min(start + CHUNK_BYTES, end)
        chunk = await anyio.to_thread.run_sync(file.read, start, stop)
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


ASKED = frozenset((b"range", b"if-range", b"if-none-match"))


def first_headers(scope: Scope, names: frozenset[bytes]) -> dict[bytes, bytes]:
    """The first value of each header of ``names`` the request has, in one pass."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value
    return found


class Asked:
    """What an answer depends on in the request: the method (HEAD: no body) and the first
    ``Range``, ``If-Range`` and ``If-None-Match`` header (``found``: by ``first_headers``
    for at least the names of ``ASKED``)."""

    __slots__ = ("head_only", "if_none_match", "if_range", "range")

    def __init__(self, method: str, found: dict[bytes, bytes]) -> None:
        self.head_only = method == "HEAD"
        self.range = found.get(b"range")
        if_range = found.get(b"if-range")
        self.if_range = None if if_range is None else if_range.decode("latin-1")
        if_none_match = found.get(b"if-none-match")
        self.if_none_match = None if if_none_match is None else if_none_match.decode("latin-1")


async def serve_blob(
    scope: Scope,
    send: Send,
    path: str,
    etag: str,
    *,
    filename: str | None = None,
    cache_control: str = "public, max-age=3600",
    media_type: str = OCTET_STREAM,
    ask: Asked | None = None,
    files: OpenFiles | None = None,
) -> int:
    """Answer a GET or HEAD of the stored file ``path`` (strong ``etag``) as the module
    docstring describes; the status sent, or 0 when there is no such file and nothing was
    sent (the caller words that answer). ``ask``: the request's headers when the caller
    has read them already; ``files``: the open files to take the file from (else it is
    opened for this answer)."""
    if ask is None:
        ask = Asked(scope["method"], first_headers(scope, ASKED))
    if ask.if_none_match is not None and etag_matches(ask.if_none_match, etag):
        cached = [(b"etag", etag.encode()), (b"cache-control", cache_control.encode())]
        await send({"type": "http.response.start", "status": 304, "headers": cached})
        await send({"type": "http.response.body", "body": b""})
        return 304
    if files is None:
        file, own = StoredFile.open(path), True
    else:
        file, own = files.get(path)
    if file is None:
        return 0
    try:
        head = _head(etag, filename, cache_control, media_type, file.st)
        return await _answer(scope, send, ask, file, path, head, etag, media_type)
    finally:
        if own:
            file.close()


async def _answer(
    scope: Scope,
    send: Send,
    ask: Asked,
    file: StoredFile,
    path: str,
    head: _Head,
    etag: str,
    media_type: str,
) -> int:
    head_only = ask.head_only
    http_range = ask.range
    if http_range is None or not _use_range(ask.if_range, etag, head.last_modified):
        await _whole(scope, send, file, path, head, head_only)
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
            await _whole(scope, send, file, path, head, head_only)
            return 200
    if len(ranges) > 1:
        await _multiple(send, file, head, media_type, ranges, head_only)
    else:
        await _single(send, file, head, ranges[0], head_only)
    return 206


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
    scope: Scope, send: Send, file: StoredFile, path: str, head: _Head, head_only: bool
) -> None:
    headers = [*head.headers, (b"content-length", str(head.size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if head_only:
        await send({"type": "http.response.body", "body": b""})
    elif "http.response.pathsend" in scope.get("extensions", {}) and head.size > INLINE_BYTES:
        await send({"type": "http.response.pathsend", "path": path})
    else:
        await _send_chunks(send, _read(file, 0, head.size), last=True)


async def _single(
    send: Send, file: StoredFile, head: _Head, span: tuple[int, int], head_only: bool
) -> None:
    start, end = span
    headers = [
        *head.headers,
        (b"content-range", b"bytes %d-%d%s" % (start, end - 1, head.size_tail)),
        (b"content-length", b"%d" % (end - start)),
    ]
    if head_only:
        body = b""
    elif end - start <= INLINE_BYTES:
        body = file.read(start, end)
    else:
        await send({"type": "http.response.start", "status": 206, "headers": headers})
        await _send_chunks(send, _read(file, start, end), last=True)
        return
    await send({"type": "http.response.start", "status": 206, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _multiple(
    send: Send, file: StoredFile, head: _Head, content_type: str, ranges: Ranges, head_only: bool
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
        await _send_chunks(send, _read(file, start, end), last=False)
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
