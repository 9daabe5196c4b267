"""What a download may serve, decided from one prepared read (the download hot path).

The rules are those of :func:`patchgate.services.releases.downloadable` (a TUF target of a
signed, not withdrawn release) and :func:`patchgate.services.ddi.artifact_for` (an
artifact of a release the device was offered); only the reads differ: one statement
each, outside any unit of work, so a small ``Range`` request costs about what a poll costs
(docs/downloads.md). Where the bytes come from (a local file, a redirect to the object
store, a stream from it) is the entrypoint's choice by the store (docs/storage.md).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from patchgate.domain.errors import PatchgateError
from patchgate.services import ddi_auth
from patchgate.services.artifact_ports import BlobRef
from patchgate.services.context import Context
from patchgate.services.device_ports import ArtifactView, DeviceAuthReader
from patchgate.services.releases import STATE_SIGNED


@dataclass(frozen=True)
class TargetRow:
    """A TUF target's blob (with its recorded size) and its release's state."""

    sha256: str
    size: int
    state: str


@dataclass(frozen=True)
class DeviceArtifactRow:
    """An artifact by its software module (patchgate's one module per release: the module
    id is the release id) and file name, and whether the asking device was offered that
    release (by any of its actions)."""

    artifact: ArtifactView
    offered: bool


class DownloadReader(DeviceAuthReader):
    """The device's authentication read plus the reads a download needs."""

    def access_stamp(self) -> int | None:
        """A value that stays the same only while nothing that could take away a
        download's permission has changed (a token, a device's removal, a release's
        state, an artifact, an offer) in any process, so the answers of the reads below
        may be reused while it holds; None when it cannot say (nothing may be reused).
        Cheap: read on every request (docs/downloads.md)."""
        return None

    def settle(self) -> None:
        """At a server's start: clear what a process that died inside a revoking write
        left of it on the stamp (while it is left, the stamp is None)."""

    @abc.abstractmethod
    def device_by_token(self, tenant: str, token_hash: str) -> tuple[int, str] | None:
        """(device id, controllerId) of the tenant's device with that target token hash:
        the poll's read by token (``by_token``), without the poll's other columns."""

    @abc.abstractmethod
    def target(self, tuf_target: str) -> TargetRow | None:
        """The target's blob and release state; None when no artifact has that path."""

    @abc.abstractmethod
    def device_artifact(
        self, device_id: int, module_id: int, filename: str
    ) -> DeviceArtifactRow | None:
        """The artifact ``filename`` of module ``module_id`` and whether ``device_id`` was
        offered that release."""


def device_id(
    ctx: Context, reader: DownloadReader, tenant: str, controller_id: str, authorization: str | None
) -> int | None:
    """The device a DDI download link may serve, by the request's credentials; None when
    they are refused. A ``TargetToken`` is checked as :func:`ddi_auth.auth_check` checks
    it (the token's device, and it must be the link's controllerId) on a read of two
    columns; any other credential goes through :func:`ddi_auth.authenticate`."""
    lookup = ddi_auth.auth_lookup(authorization)
    if lookup.token_hash is not None:
        row = reader.device_by_token(ddi_auth.tenant_key(tenant), lookup.token_hash)
        return row[0] if row is not None and row[1] == controller_id else None
    try:
        return ddi_auth.authenticate(ctx, tenant, controller_id, authorization, reader).device_id
    except PatchgateError:
        return None


def target_blob(reader: DownloadReader, tuf_target: str) -> BlobRef | None:
    """The blob of a target that may be downloaded now, else None."""
    row = reader.target(tuf_target)
    if row is None or row.state != STATE_SIGNED:
        return None
    return BlobRef(row.sha256, row.size)


def device_artifact(
    reader: DownloadReader, device_id: int, module_id: int, filename: str
) -> ArtifactView | None:
    """The artifact a device may download by its DDI link, else None."""
    row = reader.device_artifact(device_id, module_id, filename)
    if row is None or not row.offered:
        return None
    return row.artifact
