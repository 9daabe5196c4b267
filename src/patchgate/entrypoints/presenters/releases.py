"""Releases and trust as JSON (the management API and the CLI's ``--json`` alike) and as
text for the CLI. The JSON fields of a release are part of the contract users' scripts
rely on (docs/releases.md): only ever add to them."""

from __future__ import annotations

from patchgate.domain.clock import rfc3339
from patchgate.services.release_ports import NativeCheck
from patchgate.services.releases.shapes import (
    release_json,
    release_list_json,
    trust_json,
    withdrawal_json,
)
from patchgate.services.releases.views import ReleaseDetail, ReleaseList, TrustView

# The JSON shapes live beside the views (services/releases/shapes) and are re-exported here.
__all__ = [
    "release_json",
    "release_list_json",
    "release_list_text",
    "release_text",
    "trust_json",
    "trust_text",
    "withdrawal_json",
]


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
    for key, value in sorted(r.metadata.items()):
        lines.append(f"  metadata {key}: {value}")
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
