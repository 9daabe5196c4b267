"""Releases and the content-addressed artifacts they ship (docs/releases.md).

The release tables are shared by the releases capability (which writes them), the device
API (which offers their artifacts) and the campaign engine (which rolls them out).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk, str64, str255


class Blob(Base):
    """Bytes in the artifact store, named by their SHA-256 (identical content stored once)."""

    __tablename__ = "blobs"

    sha256: Mapped[str64] = mapped_column(primary_key=True)
    sha1: Mapped[str] = mapped_column(String(40))
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class Release(Base):
    """A release of a product: version, anti-rollback counter, type, compatibility.

    ``state`` is ``awaiting_signature`` until the targets metadata naming its artifacts is
    signed (at once in lab trust mode), then ``signed``; ``withdrawn`` is final.
    """

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("product", "version"),)

    id: Mapped[intpk]
    product: Mapped[str255] = mapped_column(index=True)
    version: Mapped[str] = mapped_column(String(128))
    security_version: Mapped[int] = mapped_column(BigInteger, default=0)
    type: Mapped[str] = mapped_column(String(16))
    hardware: Mapped[list[str]] = mapped_column(JSON)
    notes: Mapped[str] = mapped_column(Text, default="")
    sbom_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    state: Mapped[str] = mapped_column(String(32), default="awaiting_signature")
    created_at: Mapped[datetime]
    created_by: Mapped[str255]
    signed_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdraw_reason: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Operator metadata (docs/device-filters.md "Metadata"): key → text.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ReleaseArtifact(Base):
    """One file of a release, pointing at its blob, with the TUF target path naming it."""

    __tablename__ = "release_artifacts"
    __table_args__ = (UniqueConstraint("release_id", "filename"),)

    id: Mapped[intpk]
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    filename: Mapped[str255]
    sha256: Mapped[str64] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    tuf_target: Mapped[str] = mapped_column(String(512), unique=True)
    position: Mapped[int] = mapped_column(default=0)


class ReleaseFix(Base):
    """A vulnerability (by its register ID, e.g. a CVE) that a release fixes."""

    __tablename__ = "release_fixes"
    __table_args__ = (Index("ix_release_fixes_vulnerability", "vulnerability_id"),)

    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    vulnerability_id: Mapped[str] = mapped_column(String(128), primary_key=True)


class ProductFloor(Base):
    """A product's anti-rollback floor: no release below it may be created or offered.

    Raised by the campaign engine when a campaign completes (after its soak), so a revert
    to the previous release stays possible until then.
    """

    __tablename__ = "product_floors"

    product: Mapped[str255] = mapped_column(primary_key=True)
    security_floor: Mapped[int] = mapped_column(BigInteger, default=0)
    raised_at: Mapped[datetime]


class TufMetadataRow(Base):
    """A TUF metadata file as served at ``/tuf/metadata/{name}``, when the database is
    the one place of truth for it (PostgreSQL, several hosts: docs/storage.md)."""

    __tablename__ = "tuf_metadata"

    name: Mapped[str64] = mapped_column(primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    written_at: Mapped[datetime]
