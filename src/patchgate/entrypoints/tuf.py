"""TUF metadata and target downloads: ``/tuf/metadata/{name}`` and ``/tuf/targets/{path}``.

Downloads are ``files.BlobResponse``: HEAD, single and multiple ``Range`` requests,
``If-Range``, 416 and 304, and on granian a whole-file answer goes out through the pathsend
extension (zero-copy). Blobs are content-addressed, so the ETag is their SHA-256. A
download that may be served is answered before FastAPI's routing by
``entrypoints.downloads`` (one prepared read, no worker thread); the route here answers
the rest (unknown or withdrawn targets, other methods) and is the reference for its rule.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from patchgate.domain.errors import NotFound
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.entrypoints.store_answers import blob_answer
from patchgate.services import releases
from patchgate.services.artifact_ports import BlobRef

log = logging.getLogger("patchgate.tuf")

router = APIRouter(include_in_schema=False)
Rt = Annotated[Runtime, Depends(runtime)]

_HASH_PREFIXED = re.compile(r"^(?P<dir>.*/)?(?P<sha>[0-9a-f]{64})\.(?P<name>[^/]+)$")
IMMUTABLE = "public, max-age=31536000, immutable"


def _not_modified(request: Request, etag: str) -> bool:
    tags = request.headers.get("if-none-match")
    return tags is not None and etag in [t.strip() for t in tags.split(",")]


@router.api_route("/tuf/metadata/{name}", methods=["GET", "HEAD"])
def metadata(name: str, request: Request, rt: Rt) -> Response:
    """A metadata file as the repository holds it (the data folder, or the database when
    several hosts serve it: docs/storage.md); ``start_refresher`` keeps the timestamp
    fresh. The ETag is the file's SHA-256."""
    data = rt.ctx.trust.metadata_bytes(name)
    versioned = name[0].isdigit()
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    headers = {"cache-control": IMMUTABLE if versioned else "no-cache", "etag": etag}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else data
    headers["content-length"] = str(len(data))
    return Response(body, media_type="application/json", headers=headers)


def resolve_target(lookup: Callable[[str], BlobRef | None], target: str) -> BlobRef | None:
    """The blob of ``target`` by ``lookup``, also by the hash-prefixed path TUF
    clients use with consistent snapshots (``dir/<sha256>.<name>``; the TUF
    specification, "consistent snapshots")."""
    found = lookup(target)
    if found is None and (m := _HASH_PREFIXED.match(target)):
        candidate = lookup(f"{m.group('dir') or ''}{m.group('name')}")
        if candidate is not None and candidate.sha256 == m.group("sha"):
            found = candidate
    return found


@router.api_route("/tuf/targets/{target:path}", methods=["GET", "HEAD"])
def target(target: str, rt: Rt) -> Response:
    """A target file by its TUF path, or by the hash-prefixed path TUF clients use with
    consistent snapshots (``dir/<sha256>.<name>``). Only artifacts of signed, not
    withdrawn releases are served."""
    found = resolve_target(lambda t: releases.downloadable(rt.ctx, t), target)
    if found is None:
        raise NotFound(f"no target {target!r}")
    return artifact_response(rt, found)


def artifact_response(rt: Runtime, blob: BlobRef, *, filename: str | None = None) -> Response:
    """Serve a stored blob from the configured store (``store_answers.blob_answer``): for
    the local store HEAD, Range (single and multiple), If-Range, 416, the SHA-256 as a
    strong ETag and 304 for ``If-None-Match``, whole files zero-copy through pathsend on
    granian; for a remote store a redirect or a stream (docs/storage.md). The device API
    uses this too."""
    answer = blob_answer(rt.ctx.artifacts, blob, filename=filename)
    if answer is None:
        raise NotFound("the artifact's bytes are not in the store")
    return answer


def start_refresher(rt: Runtime, interval_seconds: float) -> threading.Event | None:
    """Re-sign snapshot and timestamp before they expire: one pass now (so a server started
    over stale metadata never serves it), then every ``interval_seconds`` in a daemon
    thread of this process (the repository's file lock makes several processes safe).

    A role is re-signed once less than half its lifetime remains, so the interval is cut
    to a quarter of the timestamp lifetime at most: a timestamp then always has a quarter
    of its lifetime left when served. Returns the event that stops the thread; None when
    disabled (interval 0).
    """
    if interval_seconds <= 0:
        return None
    interval = min(interval_seconds, rt.app.settings.tuf_timestamp_expiry_seconds / 4)
    stop = threading.Event()
    trust = rt.ctx.trust

    def refresh() -> None:
        try:
            if trust.refresh_online(rt.ctx.clock()):
                log.info("TUF timestamp re-signed")
        except Exception:  # serving what exists beats stopping the server
            log.exception("refreshing TUF metadata failed")

    def loop() -> None:
        while not stop.wait(interval):
            refresh()

    refresh()
    threading.Thread(target=loop, name="tuf-refresh", daemon=True).start()
    return stop
