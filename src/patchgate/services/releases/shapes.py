"""Releases and trust status in their JSON form: the management API and ``release … --json``
print it (through ``entrypoints.presenters.releases``), and the compliance evidence and
the console read it, so all of them show one shape."""

from __future__ import annotations

from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.services.release_ports import ArtifactView, NativeCheck, ReleaseRecord
from patchgate.services.releases.views import ReleaseDetail, ReleaseList, TrustView


def _native_json(check: NativeCheck | None, release_version: str) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        **check.as_dict(),
        "version_matches": None if check.version is None else check.version == release_version,
    }


def _artifact_json(artifact: ArtifactView, release: ReleaseRecord) -> dict[str, Any]:
    return {
        "filename": artifact.filename,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "sha1": artifact.sha1,
        "md5": artifact.md5,
        "tuf_target": artifact.tuf_target,
        "download_path": f"/tuf/targets/{artifact.tuf_target}",
        "native": _native_json(release.native_checks.get(artifact.filename), release.version),
    }


def release_json(detail: ReleaseDetail) -> dict[str, Any]:
    """``release create|show --json`` and ``GET /api/v1/releases/{id}``."""
    release = detail.release
    flags = dict(release.flags)
    if detail.version_mismatches:
        flags["bundle_version_mismatch"] = list(detail.version_mismatches)
    return {
        "id": release.id,
        "product": release.product,
        "version": release.version,
        "security_version": release.security_version,
        "type": release.type,
        "hardware": list(release.hardware),
        "state": release.state,
        "installable": detail.installable,
        "trust": detail.trust,
        "notes": release.notes,
        "fixes": list(release.fixes),
        "sbom_sha256": release.sbom_sha256,
        "flags": flags,
        "created_at": rfc3339(release.created_at),
        "created_by": release.created_by,
        "signed_at": rfc3339(release.signed_at),
        "withdrawn_at": rfc3339(release.withdrawn_at),
        "withdraw_reason": release.withdraw_reason,
        "artifacts": [_artifact_json(a, release) for a in release.artifacts],
        "metadata": dict(release.metadata),
    }


def withdrawal_json(
    detail: ReleaseDetail, *, targets_resigned: bool, still_in_targets: bool
) -> dict[str, Any]:
    """A withdrawn release and what became of the TUF targets."""
    return {
        **release_json(detail),
        "targets_resigned": targets_resigned,
        "still_in_targets": still_in_targets,
    }


def release_list_json(listing: ReleaseList) -> dict[str, Any]:
    """``release list --json`` and ``GET /api/v1/releases``."""
    return {
        "releases": [release_json(ReleaseDetail(r, listing.trust)) for r in listing.releases],
        "trust": listing.trust,
    }


def trust_json(view: TrustView) -> dict[str, Any]:
    """``keys status --json`` and ``GET /api/v1/trust``."""
    return {
        "trust": view.trust,
        "root_version": view.root_version,
        "targets_version": view.targets_version,
        "snapshot_version": view.snapshot_version,
        "timestamp_version": view.timestamp_version,
        "timestamp_expires": rfc3339(view.timestamp_expires),
        "targets_keyids": list(view.targets_keyids),
    }
