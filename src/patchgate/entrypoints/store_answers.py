"""Answering a download from whichever artifact store holds it (docs/storage.md).

A local store's blob is a ``files.BlobResponse`` on its path (zero-copy, as before). A
remote store's blob is answered by ``PATCHGATE_ARTIFACT_DELIVERY``:

- ``redirect``: a 307 to a presigned URL valid for ``PATCHGATE_ARTIFACT_PRESIGN_SECONDS``,
  issued only after the caller passed every check (token, offer, signed and not
  withdrawn) and the store confirmed it holds an object of the recorded size under the
  blob's SHA-256. The client's ``Range`` goes to the store with the redirected request.
- ``stream``: the bytes pass through the server; a single ``Range`` is passed to the store
  as it is (several ranges are answered whole, as RFC 9110 §14.2 allows).

Either way ``If-None-Match`` with the blob's ETag is a 304 without asking the store. A
blob the store has lost is a 404, a store that does not answer a 502; both are logged as
an ``ALERT`` on the ``patchgate.artifacts`` logger, so no device receives a broken file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import anyio.to_thread
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from patchgate.domain.errors import NotFound, Unavailable
from patchgate.entrypoints.files import OCTET_STREAM, BlobResponse, _disposition, etag_matches
from patchgate.services.artifact_ports import (
    ArtifactStore,
    BlobRef,
    RangeNotSatisfiable,
    RemoteArtifactStore,
)

log = logging.getLogger("patchgate.artifacts")

_SINGLE_RANGE = re.compile(r"^bytes=(\d+-\d*|-\d+)$")
_CACHE = "public, max-age=3600"


def blob_answer(
    store: ArtifactStore | None, blob: BlobRef, *, filename: str | None = None
) -> Response | None:
    """The answer serving ``blob``; None when a local store has no file for it (the
    caller's route then words the 404)."""
    if store is None:
        return None
    if isinstance(store, RemoteArtifactStore):
        return RemoteBlobResponse(store, blob, filename=filename)
    path = store.local_path(blob.sha256)
    return None if path is None else BlobResponse(path, blob.sha256, filename=filename)


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


class RemoteBlobResponse(Response):
    """One blob of a remote store, redirected to or streamed as the store is configured
    (a ``Response``, so a route may return it; its answer is decided when it is sent)."""

    def __init__(
        self, store: RemoteArtifactStore, blob: BlobRef, *, filename: str | None = None
    ) -> None:
        self.store = store
        self.blob = blob
        self.filename = filename
        self.etag = f'"{blob.sha256}"'
        self.status_code = 200
        self.raw_headers = []
        self.background = None

    def _answer_headers(self) -> dict[str, str]:
        headers = {
            "etag": self.etag,
            "accept-ranges": "bytes",
            "cache-control": _CACHE,
            "content-type": OCTET_STREAM,
        }
        if self.filename is not None:
            headers["content-disposition"] = _disposition(self.filename)
        return headers

    def _alert(self, status: int, problem: str) -> Response:
        log.error("ALERT artifact store %s: %s", self.store.url, problem)
        return PlainTextResponse(problem, status_code=status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if etag_matches(_header(scope, b"if-none-match"), self.etag):
            headers = {"etag": self.etag, "cache-control": _CACHE}
            await Response(status_code=304, headers=headers)(scope, receive, send)
            return
        answer: Response | None
        try:
            if scope["method"] == "HEAD" or self.store.delivery == "redirect":
                answer = await anyio.to_thread.run_sync(self._checked, scope["method"])
            else:
                answer = await self._stream(scope, send)
        except Unavailable as exc:
            answer = self._alert(502, str(exc))
        if answer is not None:
            await answer(scope, receive, send)

    def _checked(self, method: str) -> Response:
        """HEAD, or the redirect: only once the store holds the blob whole."""
        size = self.store.size(self.blob.sha256)
        if size is None:
            return self._alert(404, f"blob {self.blob.sha256} is missing from the store")
        if size != self.blob.size:
            return self._alert(
                502,
                f"blob {self.blob.sha256} is {size} bytes in the store, "
                f"{self.blob.size} when uploaded",
            )
        if method == "HEAD":
            headers = {**self._answer_headers(), "content-length": str(size)}
            return Response(status_code=200, headers=headers)
        url = self.store.presigned_url(self.blob.sha256, filename=self.filename)
        return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})

    def _range(self, scope: Scope) -> str | None:
        """The client's ``Range`` to pass to the store: one range, and only while
        ``If-Range`` (when sent) names this blob."""
        wanted = _header(scope, b"range")
        if wanted is None or not _SINGLE_RANGE.match(wanted.replace(" ", "")):
            return None
        if_range = _header(scope, b"if-range")
        if if_range is not None and if_range != self.etag:
            return None
        return wanted.replace(" ", "")

    async def _stream(self, scope: Scope, send: Send) -> Response | None:
        byte_range = self._range(scope)
        try:
            body = await anyio.to_thread.run_sync(self.store.get, self.blob.sha256, byte_range)
        except NotFound:
            return self._alert(404, f"blob {self.blob.sha256} is missing from the store")
        except RangeNotSatisfiable:
            headers = {"content-range": f"bytes */{self.blob.size}"}
            return PlainTextResponse("", status_code=416, headers=headers)
        with body.close:
            if body.status == 200 and body.length != self.blob.size:
                return self._alert(
                    502,
                    f"blob {self.blob.sha256} is {body.length} bytes in the store, "
                    f"{self.blob.size} when uploaded",
                )
            headers = {**self._answer_headers(), "content-length": str(body.length)}
            if body.content_range is not None:
                headers["content-range"] = body.content_range
            raw = [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]
            await send({"type": "http.response.start", "status": body.status, "headers": raw})
            await _relay(send, body.chunks, self.store.url, self.blob.sha256)
        return None


async def _relay(send: Send, chunks: Iterator[bytes], url: str, sha256: str) -> None:
    """Send the store's chunks as they come (each read in a worker thread). A store that
    breaks off mid-answer is logged; the connection then closes short of the announced
    length, which every HTTP client treats as a failed download."""
    while True:
        try:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
        except Unavailable as exc:
            log.error("ALERT artifact store %s: blob %s broke off: %s", url, sha256, exc)
            raise
        if chunk is None:
            break
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
