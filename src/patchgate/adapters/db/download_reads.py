"""The download hot path's reads (``services.downloads``): prepared statements on raw
DBAPI connections, like the poll's device read they extend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, exists, select

from patchgate.adapters.db import access_mark
from patchgate.adapters.db.models import Action, Blob, Device, Release, ReleaseArtifact
from patchgate.adapters.db.poll_reads import Prepared, SqlDeviceAuthReader, by_token_query
from patchgate.services.device_ports import ArtifactView
from patchgate.services.downloads import DeviceArtifactRow, DownloadReader, TargetRow

# The poll's read by token (the same rule: a device of the tenant by its token's hash),
# only the two columns a download needs.
_DEVICE_BY_TOKEN = by_token_query(
    bindparam("tenant"), bindparam("token_hash"), Device.id, Device.controller_id
)

_TARGET = (
    select(Blob.sha256, Blob.size, Release.state)
    .select_from(ReleaseArtifact)
    .join(Blob, Blob.sha256 == ReleaseArtifact.sha256)
    .join(Release, Release.id == ReleaseArtifact.release_id)
    .where(ReleaseArtifact.tuf_target == bindparam("target"))
)

# The artifact, and whether the device has any action for its release (the
# ``ix_actions_device_created`` index finds the device's actions).
_OFFERED = (
    exists()
    .where(Action.device_id == bindparam("device_id"))
    .where(Action.release_id == ReleaseArtifact.release_id)
)
_DEVICE_ARTIFACT = (
    select(
        ReleaseArtifact.id,
        ReleaseArtifact.filename,
        Blob.size,
        Blob.sha256,
        Blob.sha1,
        Blob.md5,
        ReleaseArtifact.tuf_target,
        _OFFERED.label("offered"),
    )
    .select_from(ReleaseArtifact)
    .join(Blob, Blob.sha256 == ReleaseArtifact.sha256)
    .where(
        ReleaseArtifact.release_id == bindparam("module_id"),
        ReleaseArtifact.filename == bindparam("filename"),
    )
)


class SqlDownloadReader(SqlDeviceAuthReader, DownloadReader):
    """The device read of the poll plus the target and artifact reads of a download, each
    one statement on the same connection (``dedicated``: the event loop's own)."""

    def __init__(self, engine: Any, *, dedicated: bool = False, write: Any = None) -> None:
        super().__init__(engine, dedicated=dedicated)
        sqlite = engine.dialect.name == "sqlite"
        self._mark = access_mark.for_database(engine.url.database) if sqlite else None
        self._write = write
        self._target = Prepared(engine, _TARGET)
        self._device_by_token = Prepared(engine, _DEVICE_BY_TOKEN)
        self._device_artifact = Prepared(engine, _DEVICE_ARTIFACT)

    def access_stamp(self) -> int | None:
        # SQLite: the access mark beside the file. PostgreSQL: None, every request reads
        # (servers on several hosts share no memory; docs/downloads.md).
        return None if self._mark is None else self._mark.stamp()

    def settle(self) -> None:
        if self._mark is not None and self._write is not None:
            access_mark.settle(self._write)

    def device_by_token(self, tenant: str, token_hash: str) -> tuple[int, str] | None:
        row = self._fetch(self._device_by_token, {"tenant": tenant, "token_hash": token_hash})
        return None if row is None else (int(row[0]), row[1])

    def target(self, tuf_target: str) -> TargetRow | None:
        row = self._fetch(self._target, {"target": tuf_target})
        return None if row is None else TargetRow(sha256=row[0], size=int(row[1]), state=row[2])

    def device_artifact(
        self, device_id: int, module_id: int, filename: str
    ) -> DeviceArtifactRow | None:
        params = {"device_id": device_id, "module_id": module_id, "filename": filename}
        row = self._fetch(self._device_artifact, params)
        if row is None:
            return None
        artifact_id, filename, size, sha256, sha1, md5, tuf_target, offered = row
        artifact = ArtifactView(
            id=artifact_id,
            filename=filename,
            size=int(size),
            sha256=sha256,
            sha1=sha1,
            md5=md5,
            tuf_target=tuf_target,
        )
        return DeviceArtifactRow(artifact=artifact, offered=bool(offered))
