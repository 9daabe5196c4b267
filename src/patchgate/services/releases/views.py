"""Read models of releases and trust: one query each, frozen dataclasses out.

Entry points render them with ``entrypoints/presenters/releases.py`` (JSON for the API
and ``--json`` alike, and text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from patchgate.domain.errors import NotFound
from patchgate.services.artifact_ports import BlobRef
from patchgate.services.context import Context
from patchgate.services.release_ports import ReleaseRecord
from patchgate.services.releases.rules import STATE_SIGNED, TrustMode, trust_mode


@dataclass(frozen=True)
class ReleaseDetail:
    """A release as ``release show`` and ``GET /api/v1/releases/{id}`` show it: the stored
    release and the installation's trust mode."""

    release: ReleaseRecord
    trust: TrustMode

    @property
    def installable(self) -> bool:
        return self.release.state == STATE_SIGNED

    @property
    def version_mismatches(self) -> tuple[str, ...]:
        """The artifacts whose own version (a RAUC bundle's manifest) differs from the
        release's version: flagged, since a device reports the version it runs."""
        return tuple(
            name
            for name, check in self.release.native_checks.items()
            if check.version is not None and check.version != self.release.version
        )


@dataclass(frozen=True)
class ReleaseList:
    """Releases, newest first, with the installation's trust mode."""

    releases: tuple[ReleaseRecord, ...]
    trust: TrustMode


@dataclass(frozen=True)
class TrustView:
    """The TUF repository now: trust mode, metadata versions, timestamp expiry."""

    trust: TrustMode
    root_version: int
    targets_version: int
    snapshot_version: int
    timestamp_version: int
    timestamp_expires: datetime
    targets_keyids: tuple[str, ...]


def get_release(ctx: Context, release_id: int) -> ReleaseRecord:
    """The release; ``NotFound`` when there is none."""
    with ctx.read_uow() as uow:
        release = uow.releases.get(release_id)
    if release is None:
        raise NotFound(f"no release {release_id}")
    return release


def release_detail(ctx: Context, release_id: int) -> ReleaseDetail:
    """The release with the trust mode it is shown under."""
    return ReleaseDetail(get_release(ctx, release_id), trust_mode(ctx))


def detail_of(ctx: Context, release: ReleaseRecord) -> ReleaseDetail:
    """A release a command returned, with the trust mode it is shown under."""
    return ReleaseDetail(release, trust_mode(ctx))


def list_releases(ctx: Context, *, product: str | None = None) -> Sequence[ReleaseRecord]:
    """Releases (of ``product``, when given), newest first."""
    with ctx.read_uow() as uow:
        return uow.releases.list(product=product)


def release_list(
    ctx: Context, *, product: str | None = None, metadata: Sequence[str] = ()
) -> ReleaseList:
    """Releases, newest first, with the trust mode; ``metadata``: only those whose
    metadata meets every ``KEY=VALUE`` (``*`` a wildcard; docs/device-filters.md)."""
    from patchgate.services.metadata import parse_pairs, release_matches

    pairs = parse_pairs(metadata)
    found = [r for r in list_releases(ctx, product=product) if release_matches(r.metadata, pairs)]
    return ReleaseList(tuple(found), trust_mode(ctx))


def trust_status(ctx: Context) -> TrustView | None:
    """The TUF repository's status; None when there is none yet."""
    if not ctx.trust.exists():
        return None
    status = ctx.trust.status()
    return TrustView(
        trust="lab" if status.offline_keys_present else "production",
        root_version=status.root_version,
        targets_version=status.targets_version,
        snapshot_version=status.snapshot_version,
        timestamp_version=status.timestamp_version,
        timestamp_expires=status.timestamp_expires,
        targets_keyids=status.targets_keyids,
    )


def security_floor(ctx: Context, product: str) -> int:
    """The product's anti-rollback floor (0 when never raised)."""
    with ctx.read_uow() as uow:
        return uow.releases.security_floor(product)


def downloadable(ctx: Context, tuf_target: str) -> BlobRef | None:
    """The blob of a target that may be downloaded now (its release is signed and not
    withdrawn), else None. Whether the store still holds its bytes is the serving's
    question (docs/storage.md)."""
    with ctx.read_uow() as uow:
        found = uow.releases.artifact_by_target(tuf_target)
    if found is None or found[1] != STATE_SIGNED:
        return None
    return BlobRef(found[0].sha256, found[0].size)


def sbom_blob(ctx: Context, release_id: int) -> tuple[str, Path | None]:
    """The SBOM's sha256 and local path; ``NotFound`` when the release has none."""
    release = get_release(ctx, release_id)
    if release.sbom_sha256 is None:
        raise NotFound(f"release {release_id} has no SBOM")
    # SBOMs are small: a remote store's copy is kept in the data folder (checked against
    # its SHA-256 on the way in) for the API, the console and the technical file.
    cached = ctx.artifacts.cached_file(release.sbom_sha256, ctx.data_dir / "cache" / "sbom")
    return release.sbom_sha256, cached
