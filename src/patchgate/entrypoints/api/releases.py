"""Management API: releases (multipart upload, list, show, withdraw, SBOM) and trust status.

Uploads are parsed as a stream: the multipart parser spools each file part to a temporary
file (never the whole body in memory), the byte count is checked while the body arrives
(413 as soon as it passes the limit), and the artifact store then hashes each part as it
copies it into place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from patchgate.domain.errors import InvalidInput, NotFound, TooLarge
from patchgate.entrypoints.api import constraints as rule
from patchgate.entrypoints.api.deps import ReleaseManager, Viewer, limited
from patchgate.entrypoints.bodies import StrictRoute, check_form
from patchgate.entrypoints.presenters import releases as present
from patchgate.services.releases import commands, views
from patchgate.services.releases.rules import MAX_SBOM_BYTES, UPDATE_TYPES

router = APIRouter(tags=["releases"], route_class=StrictRoute)

SLACK_BYTES = 64 * 1024 * 1024  # room for the SBOM, notes and multipart framing
CHUNK = 1024 * 1024


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    handle.seek(0)
    while chunk := handle.read(CHUNK):
        yield chunk


UPLOAD_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["product", "version", "artifact"],
                    "properties": {
                        "product": {"type": "string"},
                        "version": {"type": "string", "pattern": rule.VERSION},
                        "security_version": {"type": "integer", "minimum": 0},
                        "type": {"type": "string", "enum": list(UPDATE_TYPES)},
                        "hardware": {"type": "array", "items": {"type": "string"}},
                        "fixes": {
                            "type": "string",
                            "description": "IDs, comma-separated",
                            "pattern": rule.VULN_ID_LIST,
                        },
                        "notes": {"type": "string"},
                        "artifact": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "format": "binary"},
                        },
                        "sbom": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}


@router.post("/releases", status_code=201, openapi_extra=UPLOAD_SCHEMA)
async def create_release(request: Request, caller: ReleaseManager) -> dict[str, Any]:
    """Create a release from a ``multipart/form-data`` upload.

    Fields: ``product``, ``version``, ``security_version``, ``type``
    (security|feature|combined), ``hardware`` (repeatable), ``fixes`` (comma-separated),
    ``notes``; files: ``artifact`` (repeatable), ``sbom`` (CycloneDX JSON, optional).
    In lab trust mode the release is signed at once.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("upload a release as multipart/form-data")
    limit = caller.ctx.max_artifact_bytes + SLACK_BYTES
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the upload is over the limit of {limit} bytes")
    parser = MultiPartParser(request.headers, limited(request, limit), max_files=64, max_fields=256)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(f"the multipart body is not valid: {exc.message}") from exc
    try:
        check_form(form)
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
        artifacts = [
            commands.ArtifactUpload(f.filename or "", _chunks(f.file))
            for k, f in files
            if k == "artifact"
        ]
        sbom_files = [f for k, f in files if k == "sbom"]
        sbom = sbom_files[0].file.read(MAX_SBOM_BYTES + 1) if sbom_files else None
        try:
            security_version = int(fields.get("security_version", "0") or 0)
        except ValueError as exc:
            raise InvalidInput("security_version must be a whole number") from exc
        hardware = [v for k, v in form.multi_items() if k == "hardware" and isinstance(v, str)]
        fixes = [f for f in fields.get("fixes", "").split(",") if f.strip()]
        record = await run_in_threadpool(
            commands.create_release,
            caller.ctx,
            product=fields.get("product", ""),
            version=fields.get("version", ""),
            artifacts=artifacts,
            actor=caller.actor,
            security_version=security_version,
            update_type=fields.get("type", "security"),
            hardware=hardware,
            fixes=fixes,
            notes=fields.get("notes", ""),
            sbom=sbom,
        )
    finally:
        await form.close()
    return present.release_json(views.detail_of(caller.ctx, record))


# ``KEY=VALUE`` as domain/metadata.py checks it: a key of up to 128 letters, digits, _ . -
# starting with a letter or _, and a value of up to 4,000 characters with no control ones.
METADATA_CONDITION = r"^\s*[A-Za-z_][A-Za-z0-9_.\-]{0,127}\s*=[^\x00-\x1f\x7f]{0,4000}$"


@router.get("/releases")
def list_releases(
    caller: Viewer,
    product: str | None = None,
    metadata: Annotated[
        list[Annotated[str, Field(pattern=METADATA_CONDITION)]] | None,
        Query(description="KEY=VALUE: only releases whose metadata KEY is VALUE (* a wildcard)"),
    ] = None,
) -> dict[str, Any]:
    """Releases, newest first."""
    listing = views.release_list(caller.ctx, product=product, metadata=metadata or ())
    return present.release_list_json(listing)


@router.get("/releases/{release_id}")
def show_release(release_id: int, caller: Viewer) -> dict[str, Any]:
    """One release with its artifacts and state."""
    return present.release_json(views.release_detail(caller.ctx, release_id))


class WithdrawIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/releases/{release_id}/withdraw")
def withdraw_release(release_id: int, body: WithdrawIn, caller: ReleaseManager) -> dict[str, Any]:
    """Withdraw a release for good: never offered again, removed from the TUF targets."""
    result = commands.withdraw_release(
        caller.ctx, release_id, reason=body.reason, actor=caller.actor
    )
    return present.withdrawal_json(
        views.detail_of(caller.ctx, result.release),
        targets_resigned=result.targets_resigned,
        still_in_targets=result.still_in_targets,
    )


@router.get("/releases/{release_id}/sbom")
def release_sbom(release_id: int, caller: Viewer) -> FileResponse:
    """The release's CycloneDX SBOM as uploaded."""
    sha256, path = views.sbom_blob(caller.ctx, release_id)
    if path is None:
        raise NotFound(f"the SBOM of release {release_id} is not in the local store")
    return FileResponse(
        path,
        media_type="application/vnd.cyclonedx+json",
        headers={"etag": f'"{sha256}"'},
        filename=f"release-{release_id}.cdx.json",
    )


@router.get("/trust", tags=["trust"])
def trust_status(caller: Viewer) -> dict[str, Any]:
    """The TUF repository: trust mode, metadata versions, timestamp expiry."""
    view = views.trust_status(caller.ctx)
    if view is None:
        raise NotFound("no TUF repository; run `patchgate init`")
    return present.trust_json(view)
