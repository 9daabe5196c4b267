"""SWUpdate ``.swu`` uploads: the CMS signature of sw-description is checked with
``openssl cms -verify`` against the configured certificate."""

from __future__ import annotations

import hashlib
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from patchgate.adapters.native_signatures import NativeSignatures, read_cpio_members
from patchgate.domain.clock import utcnow
from patchgate.domain.errors import InvalidInput
from patchgate.services import releases
from tests.conftest import Env

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

SW_DESCRIPTION = b"""software = {
    version = "1.2.0";
    hardware-compatibility = ["demo-gw-1"];
    images: ({ filename = "rootfs.ext4"; device = "/dev/mmcblk0p2"; sha256 = "00"; });
}
"""


def _signer(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _cms(content: bytes, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bytes:
    # What `openssl cms -sign -binary -outform DER -nosmimecap` produces for SWUpdate.
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(cert, key, hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            [
                pkcs7.PKCS7Options.DetachedSignature,
                pkcs7.PKCS7Options.Binary,
                pkcs7.PKCS7Options.NoCapabilities,
            ],
        )
    )


def _cpio(members: list[tuple[str, bytes]]) -> bytes:
    """A cpio "newc" archive, the container format of .swu files."""
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, data) in enumerate([*members, ("TRAILER!!!", b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = [ino, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out.extend(b"070701" + b"".join(f"{f:08X}".encode() for f in fields))
        out.extend(encoded)
        pad()
        out.extend(data)
        pad()
    return bytes(out)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key, cert = _signer("release signing")
    path = tmp_path / "swupdate.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _swu(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, description: bytes) -> bytes:
    return _cpio(
        [
            ("sw-description", description),
            ("sw-description.sig", _cms(SW_DESCRIPTION, key, cert)),
            ("rootfs.ext4", b"\x00" * 4096),
        ]
    )


def test_the_cpio_reader_finds_sw_description_and_its_signature(tmp_path: Path) -> None:
    path = tmp_path / "a.swu"
    path.write_bytes(_cpio([("sw-description", b"abc"), ("sw-description.sig", b"sig12")]))
    assert read_cpio_members(path, {"sw-description", "sw-description.sig"}) == {
        "sw-description": b"abc",
        "sw-description.sig": b"sig12",
    }


def test_a_correctly_signed_swu_is_accepted_and_recorded(
    sqlite_env: Env, certificate: tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]
) -> None:
    key, cert, path = certificate
    sqlite_env.ctx.native_signatures = NativeSignatures(path)
    release = releases.create_release(
        sqlite_env.ctx,
        product="Demo Gateway",
        version="1.2.0",
        artifacts=[releases.ArtifactUpload("update.swu", [_swu(key, cert, SW_DESCRIPTION)])],
        actor="test",
        security_version=1,
    )
    assert release.native_checks["update.swu"].kind == "swupdate-cms"
    assert release.native_checks["update.swu"].signature_verified


@pytest.mark.parametrize("tamper", ["other signer", "changed description", "no signature"])
def test_a_swu_whose_signature_fails_is_refused_and_its_blob_is_left_to_the_sweep(
    sqlite_env: Env,
    certificate: tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path],
    tamper: str,
) -> None:
    key, cert, path = certificate
    sqlite_env.ctx.native_signatures = NativeSignatures(path)
    if tamper == "other signer":
        other_key, other_cert = _signer("someone else")
        data = _swu(other_key, other_cert, SW_DESCRIPTION)
    elif tamper == "changed description":
        data = _swu(key, cert, SW_DESCRIPTION.replace(b"1.2.0", b"6.6.6"))
    else:
        data = _cpio([("sw-description", SW_DESCRIPTION), ("rootfs.ext4", b"\0" * 10)])
    store = sqlite_env.data_dir / "artifacts" / "sha256"
    before = sorted(p for p in store.rglob("*") if p.is_file())
    with pytest.raises(InvalidInput, match=r"update\.swu: ") as caught:
        releases.create_release(
            sqlite_env.ctx,
            product="Demo Gateway",
            version="1.2.0",
            artifacts=[releases.ArtifactUpload("update.swu", [data])],
            actor="test",
            security_version=1,
        )
    if tamper == "no signature":
        assert "not signed" in caught.value.message
    else:
        assert "does not verify against the configured certificate" in caught.value.message
    assert len(releases.list_releases(sqlite_env.ctx)) == 1
    # The refused archive's blob is used by no release and the sweep removes it.
    with sqlite_env.ctx.read_uow() as uow:
        assert hashlib.sha256(data).hexdigest() not in uow.releases.referenced_blobs()
    assert releases.sweep_unused_blobs(sqlite_env.ctx, older_than_seconds=0) == 1
    assert sorted(p for p in store.rglob("*") if p.is_file()) == before


@pytest.mark.parametrize(
    ("filename", "tool"), [("bundle.raucb", "rauc"), ("update.swu", "openssl")]
)
def test_an_upload_is_refused_when_the_tool_to_verify_its_configured_signature_is_missing(
    sqlite_env: Env, tmp_path: Path, filename: str, tool: str
) -> None:
    keyring = tmp_path / "keyring.pem"
    keyring.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    sqlite_env.ctx.native_signatures = NativeSignatures(keyring, rauc_keyring=keyring)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", str(empty_bin))  # neither rauc nor openssl can be found
        with pytest.raises(InvalidInput) as caught:
            releases.create_release(
                sqlite_env.ctx,
                product="Demo Gateway",
                version="1.2.0",
                artifacts=[releases.ArtifactUpload(filename, [b"a bundle"])],
                actor="test",
                security_version=1,
            )
    assert caught.value.message.startswith(f"{filename}: cannot verify")
    assert f"{tool} is not installed" in caught.value.message
    assert len(releases.list_releases(sqlite_env.ctx)) == 1
