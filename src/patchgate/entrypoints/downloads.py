"""The download hot path: GET and HEAD of ``/tuf/targets/{path}`` and of a DDI artifact
link (``…/softwaremodules/{id}/artifacts/{filename}``), answered before FastAPI and the
DDI handler (docs/downloads.md).

A download that may be served costs one prepared read (``services.downloads``: for a
DDI link the device's token and the offer in the same connection, the token first; on
SQLite none while the access mark stands since the answer was read, docs/downloads.md
"What a server process remembers") and
the store's answer (``store_answers.blob_answer``: a ``files.BlobResponse`` for the local
store, a redirect or a stream for a remote one, docs/storage.md); no unit of work, no
routing, and on SQLite no worker thread (the read is a local call of tens of
microseconds; on PostgreSQL it goes to a worker thread). The request's headers are read
once, and a local store's file stays open between requests (``files.OpenFiles``).
Anything else — an unknown or withdrawn target, a refused token, an artifact not offered,
a missing blob, another method, the ``.MD5SUM`` link — goes on to the wrapped application,
whose routes decide and word the answer (404, 401, 405), so both paths keep one rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from patchgate.bootstrap import make_download_reader
from patchgate.domain.errors import PatchgateError
from patchgate.entrypoints.ddi.app import ARTIFACT, PATH
from patchgate.entrypoints.files import ASKED, Asked, OpenFiles, first_headers, serve_blob
from patchgate.entrypoints.middleware import Metrics
from patchgate.entrypoints.runtime import Runtime
from patchgate.entrypoints.store_answers import RemoteBlobResponse
from patchgate.entrypoints.tuf import resolve_target
from patchgate.services import downloads
from patchgate.services.artifact_ports import ArtifactStore, BlobRef, RemoteArtifactStore
from patchgate.services.device_ports import ArtifactView

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
TARGETS = "/tuf/targets/"
KEPT = 65536
PATHS_KEPT = 4096
log = logging.getLogger("patchgate")


class Downloads:
    """ASGI middleware serving the downloads it may serve, passing on everything else.

    It sits in front of every other layer (docs/downloads.md): what it serves it counts in
    ``metrics`` itself; a request it passes on goes through the whole chain (metrics, host
    check, body limit, routes) as any other. A download request that carries a body is
    passed on, so the body limit answers it as before."""

    def __init__(self, app: ASGIApp, rt: Runtime, metrics: Metrics) -> None:
        self.app = app
        self.ctx = rt.ctx
        self.metrics = metrics
        self.inline = rt.app.engines.read.dialect.name == "sqlite"
        self.reader = make_download_reader(rt.app, dedicated=self.inline)
        # Artifacts a device was offered. Only a yes is kept: an offer, once made, stays
        # true (actions are the device's history and are never deleted), and the token is
        # still checked on every request, first.
        self._offered: dict[tuple[int, int, str], ArtifactView] = {}
        # The answers of the reads, reused while the reader's access stamp stands where it
        # stood when they were read (docs/downloads.md, "What a server process
        # remembers"): a target's blob by its path, a TargetToken's device by the link's
        # tenant, controllerId and the Authorization header. Only yeses; every move of the
        # stamp drops them all (and the offers above).
        self._stamp: int | None = None
        self._targets: dict[str, BlobRef] = {}
        self._devices: dict[tuple[str, str, str], int] = {}
        try:
            self.reader.settle()
        except Exception:  # the stamp stays None: every request reads, as before
            log.exception("settling the download access mark failed")
        # The local file of a blob, once found (blobs are content-addressed: a path never
        # names other bytes; a blob removed since is found missing when it is opened),
        # and the files open (files.OpenFiles: each checked by one fstat per request).
        self._paths: dict[str, str] = {}
        self._files = OpenFiles()
        self._store: ArtifactStore | None = None
        self._remote = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path.startswith(TARGETS):
                group = "tuf"
            elif "/softwaremodules/" in path:  # a poll and every other request: one scan
                group = "ddi"
            else:
                group = ""
            if group:
                headers = _Headers(scope)
                if not headers.body and await self._served(group, headers, scope, receive, send):
                    return
        await self.app(scope, receive, send)

    async def _served(
        self, group: str, headers: _Headers, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Answer the request if it may be served here, counted in the metrics; False
        when nothing was sent (the request is passed on)."""
        start = time.perf_counter()
        status = 500  # what an error before the answer counts as, as in Metrics
        try:
            try:
                found = await self._find(scope["path"], headers)
            except PatchgateError:
                # Refused or unanswerable here (the database away, say): passed on, so
                # the route answers it in its own words through the one error table.
                found = None
            store = self.ctx.artifacts
            if store is not self._store:  # an ABC's isinstance costs a microsecond
                self._store, self._remote = store, isinstance(store, RemoteArtifactStore)
            if found is not None and self._remote:
                assert isinstance(store, RemoteArtifactStore)
                status = -1  # counted by ``measure``
                remote = RemoteBlobResponse(store, found[0], filename=found[1])
                await self.metrics.measure(remote, scope, receive, send, start)
            else:
                status = (
                    0 if found is None else await self._local(store, *found, headers, scope, send)
                )
        finally:
            if status > 0:
                seconds = time.perf_counter() - start
                self.metrics.record(group, scope["method"], status, seconds)
        return status != 0

    async def _local(
        self,
        store: ArtifactStore | None,
        blob: BlobRef,
        filename: str | None,
        headers: _Headers,
        scope: Scope,
        send: Send,
    ) -> int:
        """A local store's answer (``files.serve_blob``): its status, 0 when the store has
        no file for the blob (nothing sent)."""
        file = self._paths.get(blob.sha256)
        if file is None:
            local = store.local_path(blob.sha256) if store is not None else None
            if local is None:
                return 0
            if len(self._paths) >= PATHS_KEPT:
                self._paths.clear()
            file = self._paths[blob.sha256] = str(local)
        return await serve_blob(
            scope,
            send,
            file,
            f'"{blob.sha256}"',
            filename=filename,
            ask=headers.asked,
            files=self._files,
        )

    async def _find(self, path: str, headers: _Headers) -> tuple[BlobRef, str | None] | None:
        """The blob this request may download (and the DDI link's file name), else None."""
        stamp = self.reader.access_stamp()
        if stamp != self._stamp:
            self._targets.clear()
            self._devices.clear()
            self._offered.clear()
            self._stamp = stamp
        if path.startswith(TARGETS):
            blob = self._targets.get(path)
            if blob is None:
                lookup = partial(downloads.target_blob, self.reader)
                blob = await self._read(partial(resolve_target, lookup, path[len(TARGETS) :]))
                if blob is not None and stamp is not None and stamp == self._stamp:
                    _keep(self._targets, path, blob)
            return None if blob is None else (blob, None)
        link = _ddi_link(path, headers)
        if link is None:
            return None
        tenant, cid, module_id, filename = link
        device = partial(self._device_file, stamp, tenant, cid, headers.authorization)
        blob = await self._read(partial(device, module_id, filename))
        return None if blob is None else (blob, filename)

    def _device_file(
        self,
        stamp: int | None,
        tenant: str,
        cid: str,
        authorization: str | None,
        module_id: int,
        filename: str,
    ) -> BlobRef | None:
        """The blob of an artifact this device may download; None to pass the request on
        (which answers why not)."""
        known = None if authorization is None else (tenant, cid, authorization)
        device_id = None if known is None else self._devices.get(known)
        if device_id is None:
            device_id = downloads.device_id(self.ctx, self.reader, tenant, cid, authorization)
            if device_id is None:
                return None
            # Kept only under the stamp read before the read (a read that ran in a worker
            # thread while another request saw the stamp move must not be kept).
            fresh = stamp is not None and stamp == self._stamp
            if fresh and known is not None and _target_token(known[2]):
                _keep(self._devices, known, device_id)
        key = (device_id, module_id, filename)
        artifact = self._offered.get(key)
        if artifact is None:
            artifact = downloads.device_artifact(self.reader, device_id, module_id, filename)
            if artifact is not None:
                _keep(self._offered, key, artifact)
        return None if artifact is None else BlobRef(artifact.sha256, artifact.size)

    async def _read(self, fn: Callable[[], T]) -> T:
        return fn() if self.inline else await anyio.to_thread.run_sync(fn)


def _keep(kept: dict[K, V], key: K, value: V) -> None:
    if len(kept) >= KEPT:
        kept.clear()
    kept[key] = value


def _target_token(authorization: str) -> bool:
    """Whether the header is a ``TargetToken`` (read as ``ddi_auth.auth_lookup`` reads
    it): only a device's own token is remembered, a gateway token goes through the poll's
    whole authentication every time."""
    return authorization.strip().partition(" ")[0].lower() == "targettoken"


class _Headers:
    """What the fast path reads of a request's headers, in one pass over them: whether
    it announces a body (a ``Content-Length: 0`` is none), its ``Authorization`` and
    whether it has an ``If-Match`` (the first of each), and the ``files.Asked`` of its
    answer."""

    __slots__ = ("asked", "authorization", "body", "if_match")

    def __init__(self, scope: Scope) -> None:
        found = first_headers(scope, _READ)
        self.body = b"transfer-encoding" in found or (
            found.get(b"content-length", b"0").strip() != b"0"
        )
        authorization = found.get(b"authorization")
        self.authorization = None if authorization is None else authorization.decode("latin-1")
        self.if_match = b"if-match" in found
        self.asked = Asked(scope["method"], found)


_READ = ASKED | {b"authorization", b"if-match", b"content-length", b"transfer-encoding"}


def _ddi_link(path: str, headers: _Headers) -> tuple[str, str, int, str] | None:
    """(tenant, controllerId, module id, file name) of a DDI artifact link this path may
    serve; None for anything the DDI app answers itself."""
    match = PATH.match(path)
    if match is None:
        return None
    link = ARTIFACT.match(match["rest"] or "")
    if link is None or link[2].endswith(".MD5SUM"):
        return None
    if headers.if_match:
        return None  # the DDI app answers If-Match (412 when it names another version)
    return match["tenant"], match["cid"], int(link[1]), link[2]
