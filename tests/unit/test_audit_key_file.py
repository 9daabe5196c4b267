"""The audit checkpoint key file: made on first use, read back as the same key, by the
short reader for an unencrypted Ed25519 PKCS #8 PEM and by ``cryptography`` otherwise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from patchgate.adapters.keys import Ed25519Signer, _load_private_key


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _pem(key: object, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def test_a_made_key_is_read_back_and_signs_as_itself(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-checkpoint.key"
    made = Ed25519Signer.load_or_create(path)
    again = Ed25519Signer.load_or_create(path)
    signature = made.sign(b"checkpoint")
    assert again.verify(b"checkpoint", signature)
    assert not again.verify(b"other", signature)
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("layout", ["as written", "crlf", "no final newline", "spaced"])
def test_the_short_reader_reads_what_cryptography_reads(layout: str) -> None:
    key = Ed25519PrivateKey.generate()
    pem = _pem(key)
    if layout == "crlf":
        pem = pem.replace(b"\n", b"\r\n")
    elif layout == "no final newline":
        pem = pem.rstrip()
    elif layout == "spaced":
        pem = b"\n  " + pem + b"  \n\n"
    loaded = _load_private_key(pem)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert _raw(loaded) == _raw(key)
    reference = serialization.load_pem_private_key(pem, password=None)
    assert _raw(reference) == _raw(key)  # type: ignore[arg-type]


def test_an_openssl_key_is_read() -> None:
    made = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True, check=False
    )
    if made.returncode != 0:
        pytest.skip("openssl cannot make an Ed25519 key here")
    loaded = _load_private_key(made.stdout)
    reference = serialization.load_pem_private_key(made.stdout, password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert _raw(loaded) == _raw(reference)  # type: ignore[arg-type]


def test_another_kind_of_key_is_refused_as_before(tmp_path: Path) -> None:
    path = tmp_path / "audit-checkpoint.key"
    path.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ValueError, match="is not an Ed25519 private key"):
        Ed25519Signer.load_or_create(path)


@pytest.mark.parametrize(
    "text",
    [
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
    ],
)
def test_a_damaged_file_gets_cryptographys_error(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"\w") as reference:
        serialization.load_pem_private_key(text, password=None)
    with pytest.raises(ValueError, match=re.escape(str(reference.value))):
        _load_private_key(text)


def test_an_encrypted_key_gets_cryptographys_error() -> None:
    pem = _pem(Ed25519PrivateKey.generate(), password=b"secret")
    with pytest.raises(TypeError, match="encrypted"):
        _load_private_key(pem)


def test_reading_the_key_leaves_the_serialization_module_unimported(tmp_path: Path) -> None:
    path = tmp_path / "audit-checkpoint.key"
    Ed25519Signer.load_or_create(path)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from patchgate.adapters.keys import Ed25519Signer\n"
        f"Ed25519Signer.load_or_create(Path({str(path)!r})).sign(b'x')\n"
        "print('cryptography.hazmat.primitives.serialization' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False", done.stdout
