"""Ports of the releases capability: the release repository and the TUF repository."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from patchgate.services.artifact_ports import StoredBlob


@dataclass(frozen=True)
class ArtifactRecord:
    """One file of a release as stored."""

    filename: str
    sha256: str
    sha1: str
    md5: str
    size: int
    tuf_target: str
    id: int = 0  # the release_artifacts row (DDI names it as a software module)


@dataclass(frozen=True)
class ReleaseRecord:
    """A release as stored, with its artifacts and fixed vulnerabilities."""

    id: int
    product: str
    version: str
    security_version: int
    type: str
    hardware: tuple[str, ...]
    notes: str
    sbom_sha256: str | None
    state: str
    created_at: datetime
    created_by: str
    signed_at: datetime | None
    withdrawn_at: datetime | None
    withdraw_reason: str | None
    flags: Mapping[str, Any]
    artifacts: tuple[ArtifactRecord, ...] = ()
    fixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewRelease:
    """What ``ReleaseRepository.add`` stores."""

    product: str
    version: str
    security_version: int
    type: str
    hardware: Sequence[str]
    notes: str
    sbom_sha256: str | None
    state: str
    created_by: str
    flags: Mapping[str, Any]
    fixes: Sequence[str]
    artifacts: Sequence[tuple[str, StoredBlob, str]] = field(default_factory=list)
    """(filename, blob, tuf_target) for each artifact, in order."""


class ReleaseRepository(abc.ABC):
    """Releases, their artifacts and blobs, and each product's anti-rollback floor."""

    @abc.abstractmethod
    def add(self, release: NewRelease, now: datetime) -> ReleaseRecord:
        """Store a release, its artifacts and any blob rows not yet stored."""

    @abc.abstractmethod
    def add_blob(self, blob: StoredBlob, now: datetime) -> None:
        """Record a blob (no-op when already recorded)."""

    @abc.abstractmethod
    def referenced_blobs(self) -> set[str]:
        """The SHA-256 of every blob a committed row (artifact, SBOM) refers to."""

    @abc.abstractmethod
    def get(self, release_id: int, *, lock: bool = False) -> ReleaseRecord | None:
        """The release, optionally locked for this transaction."""

    @abc.abstractmethod
    def by_product_version(self, product: str, version: str) -> ReleaseRecord | None:
        """The release of ``product`` called ``version``."""

    @abc.abstractmethod
    def list(self, *, product: str | None = None) -> Sequence[ReleaseRecord]:
        """Releases, newest first."""

    @abc.abstractmethod
    def in_targets(self) -> Sequence[ReleaseRecord]:
        """Releases whose artifacts belong in the TUF targets: signed and not withdrawn."""

    @abc.abstractmethod
    def artifact_by_target(self, tuf_target: str) -> tuple[ArtifactRecord, str] | None:
        """The artifact with this TUF target path and its release's state."""

    @abc.abstractmethod
    def set_state(self, release_id: int, state: str, now: datetime) -> None:
        """Move a release to ``signed`` or ``awaiting_signature`` (sets ``signed_at``)."""

    @abc.abstractmethod
    def withdraw(self, release_id: int, reason: str, now: datetime) -> None:
        """Mark the release withdrawn, for good."""

    @abc.abstractmethod
    def security_floor(self, product: str) -> int:
        """The product's anti-rollback floor (0 when never raised)."""

    @abc.abstractmethod
    def raise_floor(self, product: str, security_version: int, now: datetime) -> int:
        """Raise the floor to ``security_version`` if higher; return the floor."""


@dataclass(frozen=True)
class TargetSpec:
    """A target file for the TUF targets metadata."""

    path: str
    length: int
    sha256: str
    custom: Mapping[str, Any]


@dataclass(frozen=True)
class TrustStatus:
    """What the TUF repository looks like now."""

    root_version: int
    targets_version: int
    snapshot_version: int
    timestamp_version: int
    timestamp_expires: datetime
    offline_keys_present: bool
    targets_keyids: tuple[str, ...]


class TrustRepository(abc.ABC):
    """The TUF repository: metadata files, online keys, and (in lab mode) offline keys."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True once the repository has a root."""

    @abc.abstractmethod
    def create(self, now: datetime) -> list[str]:
        """Create keys and the first metadata; returns what was created (idempotent)."""

    @abc.abstractmethod
    def status(self) -> TrustStatus:
        """Versions, expiry and keys."""

    @abc.abstractmethod
    def offline_keys_present(self) -> bool:
        """True while the targets key is still in the data folder (lab trust mode)."""

    @abc.abstractmethod
    def check_targets_key(self, key_file: Path) -> None:
        """Raise ``InvalidInput`` unless ``key_file`` holds a key root trusts for targets."""

    @abc.abstractmethod
    def publish_targets(
        self, targets: Sequence[TargetSpec], *, key_file: Path | None, now: datetime
    ) -> int:
        """Sign new targets metadata listing exactly ``targets`` with the targets key
        (``key_file``, or the lab key when None), then snapshot and timestamp; returns the
        new targets version."""

    @abc.abstractmethod
    def refresh_online(self, now: datetime, *, force: bool = False) -> bool:
        """Re-sign snapshot and timestamp when close to expiry (or when ``force``)."""

    @abc.abstractmethod
    def rotate(
        self,
        role: str,
        *,
        now: datetime,
        root_key_files: Sequence[Path],
        targets: Sequence[TargetSpec],
        keys_out: Path | None = None,
    ) -> int:
        """Replace the keys of ``role``; a new root version signed by old and new root
        keys. New offline keys (root, targets) go to ``keys_out`` (default: the data
        folder's offline-keys). Returns the new root version."""


class NativeSignatureChecker(abc.ABC):
    """Checks the signature an update format carries itself (SWUpdate, RAUC), for devices
    whose clients do not speak TUF."""

    @abc.abstractmethod
    def check(self, filename: str, path: Path) -> str | None:
        """Verify the stored file ``path`` uploaded as ``filename``.

        Returns a note of what was verified (None when the format has no check here or no
        certificate is configured); raises ``InvalidInput`` naming the failure.
        """
