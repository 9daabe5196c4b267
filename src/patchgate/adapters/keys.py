"""Local key material: the audit checkpoint key and its journal file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from patchgate.domain.audit import Checkpoint, parse_checkpoints
from patchgate.services import ports


def fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the folder that holds the new name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` with permissions ``mode``, atomically and durably: to a
    temporary file of a unique name in the same folder (so concurrent writers never share
    one), fsynced, renamed over ``path``, then the folder fsynced. A folder it has to
    make for an owner-only file is owner-only too (docs/security.md "The data folder")."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if not mode & 0o077 else 0o755)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


class Ed25519Signer(ports.Signer):
    """Signs audit checkpoints with an Ed25519 key kept in the data folder."""

    def __init__(self, private: Ed25519PrivateKey, public: Ed25519PublicKey) -> None:
        self._private = private
        self._public = public

    @classmethod
    def load_or_create(cls, path: Path) -> Ed25519Signer:
        """Load the key at ``path``, creating it (mode 0600) on first use."""
        if not path.exists():
            from cryptography.hazmat.primitives import serialization

            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_atomic(path, pem, mode=0o600)
        loaded = _load_private_key(path.read_bytes())
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path.name} is not an Ed25519 private key")
        return cls(loaded, loaded.public_key())

    def sign(self, message: bytes) -> str:
        return self._private.sign(message).hex()

    def verify(self, message: bytes, signature: str) -> bool:
        try:
            self._public.verify(bytes.fromhex(signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True


# An unencrypted Ed25519 key in PKCS #8 (RFC 8410, section 7): these 16 bytes, then the
# 32-byte private key. The PEM that ``load_or_create`` writes, and OpenSSL's.
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"


def _load_private_key(pem: bytes) -> object:
    """The private key in ``pem``: an unencrypted Ed25519 key read here (the serialization
    module costs a few tens of milliseconds to import, at every CLI command), any other
    text by ``cryptography``'s PEM loader, with its errors."""
    text = pem.strip()
    if text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END):
        body = b"".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split())
        try:
            der = base64.b64decode(body, validate=True)
        except binascii.Error:
            der = b""
        if len(der) == 48 and der.startswith(_PKCS8_ED25519):
            return Ed25519PrivateKey.from_private_bytes(der[16:])
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


class FileCheckpointJournal(ports.CheckpointJournal):
    """Checkpoints appended, one JSON line each, to a file outside the database."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = json.dumps(checkpoint.__dict__, sort_keys=True) + "\n"
        # O_APPEND makes each small write land whole at the end, even with several writers.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> ports.JournalContents:
        if not self.path.exists():
            return ports.JournalContents(())
        text = self.path.read_bytes().decode("utf-8", errors="replace")
        found, damaged = parse_checkpoints(text)
        return ports.JournalContents(found, [f"{self.path.name} {d}" for d in damaged])


class WitnessedJournal(ports.CheckpointJournal):
    """A journal whose every new checkpoint is also sent to witnesses (HTTP endpoints,
    ``PATCHGATE_AUDIT_WITNESS``), so a copy lives where an attacker who can write the
    data folder cannot reach; ``audit verify --against`` checks the chain against it."""

    def __init__(self, inner: ports.CheckpointJournal, witnesses: ports.Witnesses) -> None:
        self.inner = inner
        self.witnesses = witnesses

    def append(self, checkpoint: Checkpoint) -> None:
        self.inner.append(checkpoint)
        self.witnesses.post({"event": "audit.checkpoint", "checkpoint": checkpoint.__dict__})

    def read(self) -> ports.JournalContents:
        return self.inner.read()
