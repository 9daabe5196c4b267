"""SQLAlchemy implementation of the release repository.

``artifacts_by_release`` is the one query that reads release artifacts (with their blobs'
hashes and sizes) for any number of releases at once; the device API's release catalogue
uses it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Blob, ProductFloor, Release, ReleaseArtifact, ReleaseFix
from patchgate.domain.clock import as_utc
from patchgate.services.artifact_ports import StoredBlob
from patchgate.services.release_ports import (
    ArtifactView,
    NativeCheck,
    NewRelease,
    ReleaseRecord,
    ReleaseRepository,
)

NATIVE_FLAG = "native_signatures"
"""The key of ``releases.flags`` that keeps what the native-signature checks found."""


def _maybe_utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def artifact_view(art: ReleaseArtifact, blob: Blob) -> ArtifactView:
    """An artifact row and its blob as the one artifact type."""
    return ArtifactView(
        id=art.id,
        filename=art.filename,
        size=blob.size,
        sha256=blob.sha256,
        sha1=blob.sha1,
        md5=blob.md5,
        tuf_target=art.tuf_target,
    )


def artifacts_by_release(
    session: Session, release_ids: Sequence[int]
) -> dict[int, list[ArtifactView]]:
    """The artifacts of each release in ``release_ids``, in upload order (one query)."""
    if not release_ids:
        return {}
    query = (
        select(ReleaseArtifact, Blob)
        .join(Blob, Blob.sha256 == ReleaseArtifact.sha256)
        .where(ReleaseArtifact.release_id.in_(release_ids))
        .order_by(ReleaseArtifact.position, ReleaseArtifact.id)
    )
    out: dict[int, list[ArtifactView]] = {}
    for art, blob in session.execute(query).all():
        out.setdefault(art.release_id, []).append(artifact_view(art, blob))
    return out


def _fixes_by_release(session: Session, release_ids: Sequence[int]) -> dict[int, list[str]]:
    if not release_ids:
        return {}
    query = (
        select(ReleaseFix.release_id, ReleaseFix.vulnerability_id)
        .where(ReleaseFix.release_id.in_(release_ids))
        .order_by(ReleaseFix.vulnerability_id)
    )
    out: dict[int, list[str]] = {}
    for release_id, vuln in session.execute(query).all():
        out.setdefault(release_id, []).append(vuln)
    return out


def _native_checks(flags: Mapping[str, Any]) -> dict[str, NativeCheck]:
    stored = flags.get(NATIVE_FLAG) or {}
    return {
        name: NativeCheck(kind=value, signature_verified=True)
        if isinstance(value, str)
        else NativeCheck.from_dict(value)
        for name, value in stored.items()
    }


class SqlReleaseRepository(ReleaseRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def _records(self, rows: Sequence[Release]) -> list[ReleaseRecord]:
        ids = [row.id for row in rows]
        artifacts = artifacts_by_release(self.session, ids)
        fixes = _fixes_by_release(self.session, ids)
        return [
            ReleaseRecord(
                id=row.id,
                product=row.product,
                version=row.version,
                security_version=row.security_version,
                type=row.type,
                hardware=tuple(row.hardware),
                notes=row.notes,
                sbom_sha256=row.sbom_sha256,
                state=row.state,
                created_at=as_utc(row.created_at),
                created_by=row.created_by,
                signed_at=_maybe_utc(row.signed_at),
                withdrawn_at=_maybe_utc(row.withdrawn_at),
                withdraw_reason=row.withdraw_reason,
                flags={k: v for k, v in (row.flags or {}).items() if k != NATIVE_FLAG},
                artifacts=tuple(artifacts.get(row.id, ())),
                fixes=tuple(fixes.get(row.id, ())),
                native_checks=_native_checks(row.flags or {}),
                metadata=dict(row.meta or {}),
            )
            for row in rows
        ]

    def _one(self, row: Release | None) -> ReleaseRecord | None:
        return self._records([row])[0] if row is not None else None

    def add_blob(self, blob: StoredBlob, now: datetime) -> None:
        if self.session.get(Blob, blob.sha256) is None:
            self.session.add(
                Blob(
                    sha256=blob.sha256, sha1=blob.sha1, md5=blob.md5, size=blob.size, created_at=now
                )
            )
            self.session.flush()

    def referenced_blobs(self) -> set[str]:
        artifacts = select(ReleaseArtifact.sha256)
        sboms = select(Release.sbom_sha256).where(Release.sbom_sha256.is_not(None))
        return {sha for sha in self.session.execute(artifacts.union(sboms)).scalars() if sha}

    def add(self, release: NewRelease, now: datetime) -> ReleaseRecord:
        for artifact in release.artifacts:
            self.add_blob(artifact.blob, now)
        flags = dict(release.flags)
        native = {a.filename: a.native.as_dict() for a in release.artifacts if a.native}
        if native:
            flags[NATIVE_FLAG] = native
        row = Release(
            product=release.product,
            version=release.version,
            security_version=release.security_version,
            type=release.type,
            hardware=list(release.hardware),
            notes=release.notes,
            sbom_sha256=release.sbom_sha256,
            state=release.state,
            created_at=now,
            created_by=release.created_by,
            flags=flags,
        )
        self.session.add(row)
        self.session.flush()
        for position, artifact in enumerate(release.artifacts):
            self.session.add(
                ReleaseArtifact(
                    release_id=row.id,
                    filename=artifact.filename,
                    sha256=artifact.blob.sha256,
                    tuf_target=artifact.tuf_target,
                    position=position,
                )
            )
        for vuln in dict.fromkeys(release.fixes):
            self.session.add(ReleaseFix(release_id=row.id, vulnerability_id=vuln))
        self.session.flush()
        record = self._one(row)
        assert record is not None
        return record

    def get(self, release_id: int, *, lock: bool = False) -> ReleaseRecord | None:
        query = select(Release).where(Release.id == release_id)
        if lock:
            query = query.with_for_update()
        return self._one(self.session.execute(query).scalar_one_or_none())

    def by_product_version(self, product: str, version: str) -> ReleaseRecord | None:
        row = self.session.execute(
            select(Release).where(Release.product == product, Release.version == version)
        ).scalar_one_or_none()
        return self._one(row)

    def list(self, *, product: str | None = None) -> Sequence[ReleaseRecord]:
        query = select(Release).order_by(Release.id.desc())
        if product is not None:
            query = query.where(Release.product == product)
        return self._records(list(self.session.execute(query).scalars()))

    def in_targets(self) -> Sequence[ReleaseRecord]:
        rows = self.session.execute(
            select(Release).where(Release.state == "signed").order_by(Release.id)
        ).scalars()
        return self._records(list(rows))

    def artifact_by_target(self, tuf_target: str) -> tuple[ArtifactView, str] | None:
        found = self.session.execute(
            select(ReleaseArtifact, Blob, Release.state)
            .join(Blob, Blob.sha256 == ReleaseArtifact.sha256)
            .join(Release, Release.id == ReleaseArtifact.release_id)
            .where(ReleaseArtifact.tuf_target == tuf_target)
        ).first()
        if found is None:
            return None
        art, blob, state = found
        return artifact_view(art, blob), state

    def _row(self, release_id: int) -> Release:
        row = self.session.get(Release, release_id)
        assert row is not None, "checked by the caller"
        return row

    def set_state(self, release_id: int, state: str, now: datetime) -> None:
        row = self._row(release_id)
        row.state = state
        if state == "signed":
            row.signed_at = now
        self.session.flush()

    def withdraw(self, release_id: int, reason: str, now: datetime) -> None:
        row = self._row(release_id)
        row.state = "withdrawn"
        row.withdrawn_at = now
        row.withdraw_reason = reason
        self.session.flush()

    def security_floor(self, product: str) -> int:
        row = self.session.get(ProductFloor, product)
        return row.security_floor if row else 0

    def raise_floor(self, product: str, security_version: int, now: datetime) -> int:
        row = self.session.execute(
            select(ProductFloor).where(ProductFloor.product == product).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            row = ProductFloor(product=product, security_floor=security_version, raised_at=now)
            self.session.add(row)
        elif security_version > row.security_floor:
            row.security_floor = security_version
            row.raised_at = now
        self.session.flush()
        return row.security_floor
