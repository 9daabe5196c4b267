"""Releases and trust as JSON (the management API and the CLI's ``--json`` alike) and as
text for the CLI. The JSON fields of a release are part of the contract users' scripts
rely on (docs/releases.md): only ever add to them."""

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


def _native_text(check: NativeCheck) -> str:
    if check.kind == "rauc":
        what = f"RAUC bundle ({check.format or 'unknown format'})"
        facts = [f"compatible {check.compatible}", f"version {check.version}"]
        if check.signature_verified:
            facts.insert(0, f"signed by {check.signer}")
            verdict = "signature and payload verified against the keyring"
        else:
            verdict = "signature not checked (no keyring configured)"
        return f"{what}: {', '.join(facts)}; {verdict}"
    return "SWUpdate: sw-description signature verified against the certificate"


def release_text(detail: ReleaseDetail) -> str:
    """``release create|show`` without ``--json``."""
    r = detail.release
    lines = [
        f"release {r.id}: {r.product} {r.version}",
        f"  state: {r.state}",
        f"  trust: {detail.trust}",
        f"  type: {r.type}   security version: {r.security_version}",
        f"  hardware: {', '.join(r.hardware)}",
    ]
    if r.fixes:
        lines.append(f"  fixes: {', '.join(r.fixes)}")
    lines.append(f"  sbom: {r.sbom_sha256 or 'none (flagged)'}")
    if r.flags.get("combined_update"):
        lines.append("  flagged: combined security and feature update")
    if r.withdrawn_at:
        lines.append(f"  withdrawn: {rfc3339(r.withdrawn_at)} ({r.withdraw_reason})")
    for a in r.artifacts:
        lines.append(f"  artifact {a.filename}  {a.size} bytes")
        lines.append(f"    sha256 {a.sha256}")
        lines.append(f"    tuf_target {a.tuf_target}")
        check = r.native_checks.get(a.filename)
        if check is not None:
            lines.append(f"    {_native_text(check)}")
            if a.filename in detail.version_mismatches:
                lines.append(
                    f"    flagged: the bundle says version {check.version}, "
                    f"the release is {r.version}"
                )
    return "\n".join(lines)


def release_list_text(listing: ReleaseList) -> str:
    """``release list``: one aligned row per release, then the trust mode."""
    header = ("id", "product", "version", "sv", "type", "state", "created")
    rows = [header] + [
        (
            str(r.id),
            r.product,
            r.version,
            str(r.security_version),
            r.type,
            r.state,
            rfc3339(r.created_at) or "",
        )
        for r in listing.releases
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    out.append(f"trust: {listing.trust}")
    return "\n".join(out)


def trust_text(view: TrustView) -> str:
    """``keys status`` without ``--json``."""
    return "\n".join(
        f"{key}: {', '.join(value) if isinstance(value, list) else value}"
        for key, value in trust_json(view).items()
    )
