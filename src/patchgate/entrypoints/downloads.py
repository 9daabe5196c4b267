"""The download hot path: GET and HEAD of ``/tuf/targets/{path}`` and of a DDI artifact
link (``…/softwaremodules/{id}/artifacts/{filename}``), answered before FastAPI and the
DDI handler (docs/downloads.md).

A download that may be served costs one prepared read (``services.downloads``: for a
DDI link the device's token and the offer in the same connection, the token first) and
the store's answer (``store_answers.blob_answer``: a ``files.BlobResponse`` for the local
store, a redirect or a stream for a remote one, docs/storage.md); no unit of work, no
routing, and on SQLite no worker thread (the read is a local call of tens of
microseconds; on PostgreSQL it goes to a worker thread).
Anything else — an unknown or withdrawn target, a refused token, an artifact not offered,
a missing blob, another method, the ``.MD5SUM`` link — goes on to the wrapped application,
whose routes decide and word the answer (404, 401, 405), so both paths keep one rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from patchgate.bootstrap import make_download_reader
from patchgate.domain.errors import PatchgateError
from patchgate.entrypoints.ddi.app import ARTIFACT, PATH
from patchgate.entrypoints.runtime import Runtime
from patchgate.entrypoints.store_answers import blob_answer
from patchgate.entrypoints.tuf import resolve_target
from patchgate.services import ddi, downloads
from patchgate.services.artifact_ports import BlobRef
from patchgate.services.device_ports import ArtifactView

T = TypeVar("T")
TARGETS = "/tuf/targets/"
OFFERED_CACHE = 65536


class Downloads:
    """ASGI middleware serving the downloads it may serve, passing on everything else."""

    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.ctx = rt.ctx
        self.inline = rt.app.engines.read.dialect.name == "sqlite"
        self.reader = make_download_reader(rt.app, dedicated=self.inline)
        # Artifacts a device was offered. Only a yes is kept: an offer, once made, stays
        # true (actions are the device's history and are never deleted), and the token is
        # still checked on every request, first.
        self._offered: dict[tuple[int, int, str], ArtifactView] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            response = await self._response(scope["path"], scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _response(self, path: str, scope: Scope) -> ASGIApp | None:
        if path.startswith(TARGETS):
            lookup = partial(downloads.target_blob, self.reader)
            found = await self._read(partial(resolve_target, lookup, path[len(TARGETS) :]))
            return None if found is None else blob_answer(self.ctx.artifacts, found)
        if "/softwaremodules/" not in path:  # a poll and every other request: one scan
            return None
        match = PATH.match(path)
        if match is None:
            return None
        link = ARTIFACT.match(match["rest"] or "")
        if link is None or link[2].endswith(".MD5SUM"):
            return None
        if any(k == b"if-match" for k, _ in scope["headers"]):
            return None  # the DDI app answers If-Match (412 when it names another version)
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        device = partial(
            self._device_file, match["tenant"], match["cid"], authorization, int(link[1]), link[2]
        )
        file = await self._read(device)
        return None if file is None else blob_answer(self.ctx.artifacts, file, filename=link[2])

    def _device_file(
        self, tenant: str, cid: str, authorization: str | None, module_id: int, filename: str
    ) -> BlobRef | None:
        """The blob of an artifact this device may download; None to pass the request on
        (which answers why not)."""
        try:
            caller = ddi.authenticate(self.ctx, tenant, cid, authorization, self.reader)
            device_id = caller.device_id
        except PatchgateError:
            return None
        key = (device_id, module_id, filename)
        artifact = self._offered.get(key)
        if artifact is None:
            artifact = downloads.device_artifact(self.reader, device_id, module_id, filename)
            if artifact is not None:
                if len(self._offered) >= OFFERED_CACHE:
                    self._offered.clear()
                self._offered[key] = artifact
        return None if artifact is None else BlobRef(artifact.sha256, artifact.size)

    async def _read(self, fn: Callable[[], T]) -> T:
        return fn() if self.inline else await anyio.to_thread.run_sync(fn)
