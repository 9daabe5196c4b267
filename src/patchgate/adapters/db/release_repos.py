"""SQLAlchemy implementation of the release repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Blob, ProductFloor, Release, ReleaseArtifact, ReleaseFix
from patchgate.domain.clock import as_utc
from patchgate.services.artifact_ports import StoredBlob
from patchgate.services.release_ports import (
    ArtifactRecord,
    NewRelease,
    ReleaseRecord,
    ReleaseRepository,
)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


class SqlReleaseRepository(ReleaseRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def _record(self, row: Release) -> ReleaseRecord:
        artifacts = self.session.execute(
            select(ReleaseArtifact, Blob)
            .join(Blob, Blob.sha256 == ReleaseArtifact.sha256)
            .where(ReleaseArtifact.release_id == row.id)
            .order_by(ReleaseArtifact.position)
        ).all()
        fixes = self.session.execute(
            select(ReleaseFix.vulnerability_id)
            .where(ReleaseFix.release_id == row.id)
            .order_by(ReleaseFix.vulnerability_id)
        ).scalars()
        return ReleaseRecord(
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
            flags=dict(row.flags or {}),
            artifacts=tuple(
                ArtifactRecord(a.filename, b.sha256, b.sha1, b.md5, b.size, a.tuf_target, a.id)
                for a, b in artifacts
            ),
            fixes=tuple(fixes),
        )

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
        for _, blob, _ in release.artifacts:
            self.add_blob(blob, now)
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
            flags=dict(release.flags),
        )
        self.session.add(row)
        self.session.flush()
        for position, (filename, blob, target) in enumerate(release.artifacts):
            self.session.add(
                ReleaseArtifact(
                    release_id=row.id,
                    filename=filename,
                    sha256=blob.sha256,
                    tuf_target=target,
                    position=position,
                )
            )
        for vuln in dict.fromkeys(release.fixes):
            self.session.add(ReleaseFix(release_id=row.id, vulnerability_id=vuln))
        self.session.flush()
        return self._record(row)

    def get(self, release_id: int, *, lock: bool = False) -> ReleaseRecord | None:
        query = select(Release).where(Release.id == release_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        return self._record(row) if row else None

    def by_product_version(self, product: str, version: str) -> ReleaseRecord | None:
        row = self.session.execute(
            select(Release).where(Release.product == product, Release.version == version)
        ).scalar_one_or_none()
        return self._record(row) if row else None

    def list(self, *, product: str | None = None) -> Sequence[ReleaseRecord]:
        query = select(Release).order_by(Release.id.desc())
        if product is not None:
            query = query.where(Release.product == product)
        return [self._record(r) for r in self.session.execute(query).scalars()]

    def in_targets(self) -> Sequence[ReleaseRecord]:
        rows = self.session.execute(
            select(Release).where(Release.state == "signed").order_by(Release.id)
        ).scalars()
        return [self._record(r) for r in rows]

    def artifact_by_target(self, tuf_target: str) -> tuple[ArtifactRecord, str] | None:
        found = self.session.execute(
            select(ReleaseArtifact, Blob, Release.state)
            .join(Blob, Blob.sha256 == ReleaseArtifact.sha256)
            .join(Release, Release.id == ReleaseArtifact.release_id)
            .where(ReleaseArtifact.tuf_target == tuf_target)
        ).first()
        if found is None:
            return None
        a, b, state = found
        return ArtifactRecord(
            a.filename, b.sha256, b.sha1, b.md5, b.size, a.tuf_target, a.id
        ), state

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
