"""The CSAF provider's OpenPGP key (CSAF 2.0 §7.1.19 signatures, §7.1.20 public key),
with PGPy: an Ed25519 signing key kept in the data folder, readable by its owner only."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from patchgate.adapters.keys import write_atomic
from patchgate.services.advisories.ports import OpenPgpKey

if TYPE_CHECKING:
    import pgpy


def _import_pgpy() -> None:
    """Import PGPy when a key is first made or read, not with this module: every command
    wires the key, few use it, and the import is slow (docs/cli.md, "Start-up")."""
    with warnings.catch_warnings():
        # PGPy imports cipher names that newer cryptography releases mark as deprecated.
        warnings.simplefilter("ignore")
        import pgpy  # noqa: F401


class FileOpenPgpKey(OpenPgpKey):
    """An ASCII-armoured secret key file (mode 0600) in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "csaf-openpgp.asc"
        self._lock = threading.Lock()
        self._key: pgpy.PGPKey | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def create(self, user_id: str) -> bool:
        with self._lock:
            if self.path.is_file():
                return False
            _import_pgpy()
            import pgpy
            from pgpy.constants import EllipticCurveOID, HashAlgorithm, KeyFlags, PubKeyAlgorithm

            key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
            uid = pgpy.PGPUID.new(user_id)
            key.add_uid(
                uid,
                usage={KeyFlags.Sign, KeyFlags.Certify},
                hashes=[HashAlgorithm.SHA512, HashAlgorithm.SHA256],
            )
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.path, str(key).encode(), mode=0o600)
            self._key = key
            return True

    def _loaded(self) -> pgpy.PGPKey:
        with self._lock:
            if self._key is None:
                if not self.path.is_file():
                    raise FileNotFoundError(f"no OpenPGP key at {self.path}; run `patchgate init`")
                _import_pgpy()
                import pgpy

                key, _ = pgpy.PGPKey.from_file(str(self.path))
                self._key = key
            return self._key

    def sign(self, data: bytes) -> str:
        key = self._loaded()
        from pgpy.constants import HashAlgorithm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signature = key.sign(data, hash=HashAlgorithm.SHA512)
        return str(signature)

    def public_key(self) -> str:
        return str(self._loaded().pubkey)

    def fingerprint(self) -> str:
        return str(self._loaded().fingerprint).replace(" ", "").upper()
