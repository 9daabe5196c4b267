"""The TUF repository on disk, built with the ``tuf`` Metadata API and ``securesystemslib``.

Layout in the data folder::

    tuf/metadata/N.root.json   every root version (clients walk them, spec 5.3)
    tuf/metadata/root.json     the newest root (a copy, for humans and bootstrap)
    tuf/metadata/N.targets.json, N.snapshot.json   consistent snapshots (spec 7)
    tuf/metadata/timestamp.json
    keys/tuf-snapshot.key, keys/tuf-timestamp.key  the online keys the server holds
    offline-keys/root-K.key, offline-keys/targets.key   written by init; move them away

The metadata files live where a ``tuf_metadata.MetadataStore`` keeps them: the folder
above (``FileMetadata``, one host) or the database (``db.tuf_metadata.DbMetadata``, the one
place of truth when several hosts serve it; docs/storage.md). Every write happens under
the store's lock (a file lock; with the database also an advisory lock), so several
server processes and the CLI never interleave versions; a file is written to a temporary
name, fsynced and renamed, or in one transaction. The timestamp is written last: a client
that starts from it finds everything it names already in place.

``tuf``, ``securesystemslib`` and ``cryptography``'s key loading are imported by the
methods that read or sign metadata, not with this module: ``securesystemslib.signer``
imports every cloud signer it knows (boto3 with it, about half a second), and every
command wires this repository while few use it (docs/cli.md, "Start-up").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from patchgate.adapters.keys import write_atomic
from patchgate.adapters.tuf_metadata import FileMetadata, MetadataStore
from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services.release_ports import (
    TargetsKey,
    TargetSpec,
    TrustRepository,
    TrustStatus,
)

ONLINE_ROLES = ("snapshot", "timestamp")
ROLES = ("root", "targets", "snapshot", "timestamp")

OFFLINE_README = """\
These are the OFFLINE keys of this patchgate installation's TUF repository.

  root-*.key   sign new root metadata (a threshold of them is needed)
  targets.key  signs the targets metadata, which makes a release installable

While this folder sits in the data folder, patchgate runs in LAB TRUST MODE: releases are
signed as soon as they are created. For production, move this folder to offline storage
(a hardware token, an air-gapped machine, a safe) and sign each release with
`patchgate release sign ID --key targets.key`.
"""

_META_NAME = re.compile(r"^(?:(\d+)\.)?(root|targets|snapshot|timestamp)\.json$")

if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp


def load_signer(path: Path) -> CryptoSigner:
    """A signer for the Ed25519 (or other) PEM private key in ``path``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read key file {path}: {exc.strerror}") from exc
    from cryptography.hazmat.primitives import serialization

    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path} is not an unencrypted PEM private key") from exc
    from securesystemslib.signer import CryptoSigner

    try:
        return CryptoSigner(private)
    except ValueError as exc:
        raise InvalidInput(f"{path}: unsupported key type ({exc})") from exc


def _generate() -> CryptoSigner:
    from securesystemslib.signer import CryptoSigner

    return CryptoSigner(Ed25519PrivateKey.generate())


class LoadedTargetsKey(TargetsKey):
    """A targets key loaded from its PEM file and found trusted by root."""

    def __init__(self, signer: CryptoSigner) -> None:
        self.signer = signer

    @property
    def keyid(self) -> str:
        return str(self.signer.public_key.keyid)


class FileTrustRepository(TrustRepository):
    """A TUF repository kept as files in the data folder."""

    def __init__(
        self,
        data_dir: Path,
        *,
        root_keys: int = 3,
        root_threshold: int = 2,
        root_expiry: timedelta = timedelta(days=365),
        targets_expiry: timedelta = timedelta(days=365),
        snapshot_expiry: timedelta = timedelta(days=7),
        timestamp_expiry: timedelta = timedelta(days=1),
        metadata: MetadataStore | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.metadata_dir = data_dir / "tuf" / "metadata"
        self.online_dir = data_dir / "keys"
        self.offline_dir = data_dir / "offline-keys"
        self.root_keys = root_keys
        self.root_threshold = root_threshold
        self.expiry = {
            "root": root_expiry,
            "targets": targets_expiry,
            "snapshot": snapshot_expiry,
            "timestamp": timestamp_expiry,
        }
        self.lock_path = data_dir / "tuf" / ".lock"
        self.files = metadata or FileMetadata(self.metadata_dir, self.lock_path)

    # --- reading ---------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.files.read("1.root.json") is not None

    def metadata_bytes(self, name: str) -> bytes:
        """The file serving ``/tuf/metadata/{name}``; ``NotFound`` for anything else."""
        data = self.files.read(name) if _META_NAME.match(name) else None
        if data is None:
            raise NotFound(f"no TUF metadata called {name!r}")
        return data

    def _read(self, name: str) -> bytes:
        data = self.files.read(name)
        if data is None:
            raise Conflict(f"the TUF repository has no {name}; run `patchgate init`")
        return data

    def _root_version(self) -> int:
        versions = [
            int(m.group(1))
            for name in self.files.names()
            if (m := _META_NAME.match(name)) and m.group(1) and m.group(2) == "root"
        ]
        if not versions:
            raise Conflict("the TUF repository does not exist; run `patchgate init`")
        return max(versions)

    def root(self) -> Metadata[Root]:
        """The newest root metadata."""
        from tuf.api.metadata import Metadata, Root

        return Metadata[Root].from_bytes(self.root_bytes())

    def root_bytes(self) -> bytes:
        """The newest root metadata as served (what a device is provisioned with)."""
        return self._read(f"{self._root_version()}.root.json")

    def timestamp(self) -> Metadata[Timestamp]:
        from tuf.api.metadata import Metadata, Timestamp

        return Metadata[Timestamp].from_bytes(self._read("timestamp.json"))

    def snapshot(self) -> Metadata[Snapshot]:
        from tuf.api.metadata import Metadata, Snapshot

        version = self.timestamp().signed.snapshot_meta.version
        return Metadata[Snapshot].from_bytes(self._read(f"{version}.snapshot.json"))

    def targets(self) -> Metadata[Targets]:
        from tuf.api.metadata import Metadata, Targets

        version = self.snapshot().signed.meta["targets.json"].version
        return Metadata[Targets].from_bytes(self._read(f"{version}.targets.json"))

    def status(self) -> TrustStatus:
        root = self.root()
        timestamp = self.timestamp()
        snapshot = self.snapshot()
        return TrustStatus(
            root_version=root.signed.version,
            targets_version=snapshot.signed.meta["targets.json"].version,
            snapshot_version=snapshot.signed.version,
            timestamp_version=timestamp.signed.version,
            timestamp_expires=timestamp.signed.expires,
            offline_keys_present=self.offline_keys_present(),
            targets_keyids=tuple(root.signed.roles["targets"].keyids),
        )

    def offline_keys_present(self) -> bool:
        return (self.offline_dir / "targets.key").is_file()

    # --- keys ------------------------------------------------------------------------------

    def _online_signer(self, role: str) -> CryptoSigner:
        path = self.online_dir / f"tuf-{role}.key"
        if not path.is_file():
            raise Conflict(f"the online {role} key is missing ({path.name})")
        return load_signer(path)

    def _lab_targets_signer(self) -> CryptoSigner:
        path = self.offline_dir / "targets.key"
        if not path.is_file():
            raise Conflict(
                "the targets key is not in the data folder (production trust mode); "
                "sign with `patchgate release sign ID --key FILE`"
            )
        return load_signer(path)

    def _root_signers(self, files: Sequence[Path]) -> list[CryptoSigner]:
        paths = list(files) or sorted(self.offline_dir.glob("root-*.key"))
        return [load_signer(p) for p in paths]

    def targets_key(self, key_file: Path | None) -> LoadedTargetsKey:
        signer = self._lab_targets_signer() if key_file is None else load_signer(key_file)
        self._require_trusted(signer, "targets")
        return LoadedTargetsKey(signer)

    def _require_trusted(self, signer: CryptoSigner, role: str) -> None:
        trusted = self.root().signed.roles[role].keyids
        if signer.public_key.keyid not in trusted:
            raise InvalidInput(
                f"the key {signer.public_key.keyid[:16]}… is not the {role} key this "
                f"repository's root trusts"
            )

    # --- writing ---------------------------------------------------------------------------

    def _write(self, md: Metadata, name: str) -> None:  # type: ignore[type-arg]
        from tuf.api.serialization.json import JSONSerializer

        self.files.write(name, md.to_bytes(JSONSerializer(compact=False)))

    def _sign_root(self, root: Metadata[Root], signers: Sequence[CryptoSigner]) -> None:
        root.signatures.clear()
        for signer in signers:
            root.sign(signer, append=True)

    def create(self, now: datetime) -> list[str]:
        from tuf.api.metadata import Metadata, Root, Targets

        with self.files.locked():
            if self.exists():
                return []
            created: list[str] = []
            roots = [_generate() for _ in range(self.root_keys)]
            targets_key = _generate()
            online = {role: _generate() for role in ONLINE_ROLES}
            for index, signer in enumerate(roots, start=1):
                write_atomic(
                    self.offline_dir / f"root-{index}.key", signer.private_bytes, mode=0o600
                )
            write_atomic(self.offline_dir / "targets.key", targets_key.private_bytes, mode=0o600)
            (self.offline_dir / "README.txt").write_text(OFFLINE_README)
            for role, signer in online.items():
                write_atomic(self.online_dir / f"tuf-{role}.key", signer.private_bytes, mode=0o600)
            created.append(
                f"offline keys ({self.root_keys} root keys, threshold {self.root_threshold}; "
                f"targets key) in {self.offline_dir}"
            )
            root = Metadata(Root(expires=now + self.expiry["root"], consistent_snapshot=True))
            for signer in roots:
                root.signed.add_key(signer.public_key, "root")
            root.signed.roles["root"].threshold = self.root_threshold
            root.signed.add_key(targets_key.public_key, "targets")
            for role, signer in online.items():
                root.signed.add_key(signer.public_key, role)
            self._sign_root(root, roots)
            self._write(root, "1.root.json")
            self._write(root, "root.json")
            targets = Metadata(Targets(expires=now + self.expiry["targets"]))
            targets.sign(targets_key)
            self._write(targets, "1.targets.json")
            self._publish_online(now, targets_version=1, snapshot_version=1)
            created.append("TUF repository (root, targets, snapshot, timestamp)")
            return created

    def _publish_online(
        self, now: datetime, *, targets_version: int, snapshot_version: int | None = None
    ) -> None:
        """Write a new snapshot naming ``targets_version`` and a timestamp naming it."""
        from tuf.api.metadata import Metadata, MetaFile, Snapshot

        if snapshot_version is None:
            snapshot_version = self.snapshot().signed.version + 1
        snapshot = Metadata(
            Snapshot(
                version=snapshot_version,
                expires=now + self.expiry["snapshot"],
                meta={"targets.json": MetaFile(version=targets_version)},
            )
        )
        snapshot.sign(self._online_signer("snapshot"))
        self._write(snapshot, f"{snapshot_version}.snapshot.json")
        self._write_timestamp(now, snapshot_version)

    def _write_timestamp(self, now: datetime, snapshot_version: int) -> None:
        from tuf.api.metadata import Metadata, MetaFile, Timestamp

        current = self.files.read("timestamp.json")
        version = (
            1 if current is None else Metadata[Timestamp].from_bytes(current).signed.version + 1
        )
        timestamp = Metadata(
            Timestamp(
                version=version,
                expires=now + self.expiry["timestamp"],
                snapshot_meta=MetaFile(version=snapshot_version),
            )
        )
        timestamp.sign(self._online_signer("timestamp"))
        self._write(timestamp, "timestamp.json")

    def publish_targets(
        self, targets: Sequence[TargetSpec], *, key: TargetsKey, now: datetime
    ) -> int:
        if not isinstance(key, LoadedTargetsKey):
            raise TypeError("publish_targets signs with a key from targets_key()")
        return self.publish_targets_with(targets, key.signer, now)

    def publish_targets_with(
        self, targets: Sequence[TargetSpec], signer: CryptoSigner, now: datetime
    ) -> int:
        """Sign targets metadata with ``signer`` whether or not root trusts it (tests use
        this to play an attacker holding some other key)."""
        from tuf.api.metadata import Metadata, TargetFile, Targets

        with self.files.locked():
            version = self.snapshot().signed.meta["targets.json"].version + 1
            md = Metadata(
                Targets(
                    version=version,
                    expires=now + self.expiry["targets"],
                    targets={
                        t.path: TargetFile(
                            length=t.length,
                            hashes={"sha256": t.sha256},
                            path=t.path,
                            unrecognized_fields={"custom": dict(t.custom)},
                        )
                        for t in targets
                    },
                )
            )
            md.sign(signer)
            self._write(md, f"{version}.targets.json")
            self._publish_online(now, targets_version=version)
            return version

    def refresh_online(self, now: datetime, *, force: bool = False) -> bool:
        # Re-sign once less than half of a role's lifetime remains, so a server that checks
        # every few minutes never lets a client see expired metadata (spec 5.4.4, 5.5.6).
        def due(md: Metadata, role: str) -> bool:  # type: ignore[type-arg]
            return bool(md.signed.expires - now < self.expiry[role] / 2)

        if not self.exists():
            return False
        if (
            not force
            and not due(self.timestamp(), "timestamp")
            and not due(self.snapshot(), "snapshot")
        ):
            return False
        with self.files.locked():
            snapshot = self.snapshot()
            if force or due(snapshot, "snapshot"):
                self._publish_online(
                    now, targets_version=snapshot.signed.meta["targets.json"].version
                )
                return True
            if due(self.timestamp(), "timestamp"):
                self._write_timestamp(now, snapshot.signed.version)
                return True
            return False

    def rotate(
        self,
        role: str,
        *,
        now: datetime,
        root_key_files: Sequence[Path],
        targets: Sequence[TargetSpec],
        keys_out: Path | None = None,
    ) -> int:
        if role not in ROLES:
            raise InvalidInput(f"unknown TUF role {role!r} (known: {', '.join(ROLES)})")
        from tuf.api.metadata import Metadata, Root

        old_signers = self._root_signers(root_key_files)
        with self.files.locked():
            current = self.root()
            trusted = set(current.signed.roles["root"].keyids)
            usable = [s for s in old_signers if s.public_key.keyid in trusted]
            if len(usable) < current.signed.roles["root"].threshold:
                raise InvalidInput(
                    f"rotating keys needs {current.signed.roles['root'].threshold} of the "
                    f"current root keys; {len(usable)} given"
                )
            new_root = Metadata[Root].from_bytes(current.to_bytes())
            new_root.signed.version += 1
            new_root.signed.expires = now + self.expiry["root"]
            for keyid in list(new_root.signed.roles[role].keyids):
                new_root.signed.revoke_key(keyid, role)
            count = len(current.signed.roles[role].keyids) if role == "root" else 1
            fresh = [_generate() for _ in range(count)]
            for signer in fresh:
                new_root.signed.add_key(signer.public_key, role)
            # TUF client workflow 5.3.4/5.3.5: a new root must be signed by a threshold of
            # the old root's keys and of its own.
            self._sign_root(new_root, [*usable, *fresh] if role == "root" else usable)
            # Keep the new key material before publishing metadata that depends on it.
            out = keys_out or self.offline_dir
            if role == "root":
                for old in out.glob("root-*.key"):
                    old.unlink()
                for index, signer in enumerate(fresh, start=1):
                    write_atomic(out / f"root-{index}.key", signer.private_bytes, mode=0o600)
            elif role == "targets":
                write_atomic(out / "targets.key", fresh[0].private_bytes, mode=0o600)
            else:
                write_atomic(
                    self.online_dir / f"tuf-{role}.key", fresh[0].private_bytes, mode=0o600
                )
            version = new_root.signed.version
            self._write(new_root, f"{version}.root.json")
            self._write(new_root, "root.json")
        if role == "targets":
            self.publish_targets_with(targets, fresh[0], now)
        elif role in ONLINE_ROLES:
            self.refresh_online(now, force=True)
        return version


__all__ = ["FileTrustRepository", "LoadedTargetsKey", "load_signer"]
