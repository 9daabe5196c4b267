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
class ArtifactView:
    """One file of a release as stored: what the management API shows and what DDI tells
    a device about it (its ``id`` names it as a software module)."""

    id: int
    filename: str
    size: int
    sha256: str
    sha1: str
    md5: str
    tuf_target: str


@dataclass(frozen=True)
class NativeCheck:
    """What the check of an update format's own signature found in one artifact
    (docs/releases.md, "Native signatures").

    ``signature_verified`` is true only when the signature was verified against the
    configured certificate or keyring; without one, a RAUC bundle is still read for its
    format, ``compatible`` and version, and no claim about its signer is made.
    """

    kind: str  # "swupdate-cms" or "rauc"
    signature_verified: bool
    format: str | None = None
    signer: str | None = None
    compatible: str | None = None
    version: str | None = None
    payload_verified: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "signature_verified": self.signature_verified,
            "payload_verified": self.payload_verified,
            "format": self.format,
            "signer": self.signer,
            "compatible": self.compatible,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NativeCheck:
        return cls(
            kind=str(data.get("kind", "")),
            signature_verified=bool(data.get("signature_verified")),
            payload_verified=bool(data.get("payload_verified")),
            format=data.get("format"),
            signer=data.get("signer"),
            compatible=data.get("compatible"),
            version=data.get("version"),
        )


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
    artifacts: tuple[ArtifactView, ...] = ()
    fixes: tuple[str, ...] = ()
    native_checks: Mapping[str, NativeCheck] = field(default_factory=dict)
    """What the native-signature check found, by artifact file name."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Operator metadata (docs/device-filters.md "Metadata")."""


@dataclass(frozen=True)
class NewArtifact:
    """An artifact of a release being created: its name, its stored blob, its TUF target
    path, and what the native-signature check found (None when there is no check)."""

    filename: str
    blob: StoredBlob
    tuf_target: str
    native: NativeCheck | None = None


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
    artifacts: Sequence[NewArtifact] = ()


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
    def artifact_by_target(self, tuf_target: str) -> tuple[ArtifactView, str] | None:
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


class TargetsKey(abc.ABC):
    """A targets signing key, loaded and checked against root by
    ``TrustRepository.targets_key``; handed back to ``publish_targets`` to sign with."""

    @property
    @abc.abstractmethod
    def keyid(self) -> str:
        """The key's TUF key ID."""


class TrustRepository(abc.ABC):
    """The TUF repository: metadata files, online keys, and (in lab mode) offline keys."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True once the repository has a root."""

    @abc.abstractmethod
    def create(self, now: datetime) -> list[str]:
        """Create keys and the first metadata; returns what was created (idempotent)."""

    @abc.abstractmethod
    def metadata_bytes(self, name: str) -> bytes:
        """The bytes of the metadata named ``name`` (``timestamp.json``, ``N.root.json``,
        ``N.snapshot.json``, ``N.targets.json``, ``root.json``), to serve as it is;
        ``NotFound`` for any other name or a version that does not exist."""

    @abc.abstractmethod
    def status(self) -> TrustStatus:
        """Versions, expiry and keys."""

    @abc.abstractmethod
    def offline_keys_present(self) -> bool:
        """True while the targets key is still in the data folder (lab trust mode)."""

    @abc.abstractmethod
    def targets_key(self, key_file: Path | None) -> TargetsKey:
        """The targets key in ``key_file`` (the lab key in the data folder when None),
        loaded once and checked against root: raises ``InvalidInput`` for a key root does
        not trust for targets, ``Conflict`` when there is no lab key."""

    @abc.abstractmethod
    def publish_targets(
        self, targets: Sequence[TargetSpec], *, key: TargetsKey, now: datetime
    ) -> int:
        """Sign new targets metadata listing exactly ``targets`` with ``key``, then
        snapshot and timestamp; returns the new targets version."""

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
    def check(self, filename: str, path: Path) -> NativeCheck | None:
        """Verify the stored file ``path`` uploaded as ``filename``.

        Returns what was verified and read (None when the format has no check here or,
        for SWUpdate, no certificate is configured); raises ``InvalidInput`` naming the
        failure.
        """

    def reads(self, filename: str) -> bool:
        """True when ``check`` reads the file uploaded as ``filename``: a store without
        local paths then fetches a checked copy for it (``ArtifactStore.local_copy``)."""
        return True
