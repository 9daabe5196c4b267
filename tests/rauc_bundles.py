"""Real RAUC bundles for tests: a throwaway CA made with ``cryptography``, signer
certificates it issues (or not), and bundles built by Debian's ``rauc`` (which needs
``mksquashfs`` from squashfs-tools)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from patchgate.domain.clock import utcnow

HAVE_RAUC = shutil.which("rauc") is not None and shutil.which("mksquashfs") is not None


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "patchgate tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Signer:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path
    subject: str


class TestCA:
    """A self-signed CA (the keyring) that issues signer certificates."""

    __test__ = False

    def __init__(self, folder: Path, name: str = "Release CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = utcnow()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=3650))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.keyring = folder / f"{name.replace(' ', '-').lower()}.pem"
        self.keyring.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, expired: bool = False) -> Signer:
        """A signer certificate issued by this CA (valid now, or expired a year ago)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = utcnow()
        start, end = (
            (now - timedelta(days=800), now - timedelta(days=365))
            if expired
            else (now - timedelta(days=1), now + timedelta(days=365))
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.folder / common_name.replace(" ", "-")
        cert_path, key_path = stem.with_suffix(".cert.pem"), stem.with_suffix(".key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Signer(cert_path, key_path, f"O = patchgate tests, CN = {common_name}")


def build_bundle(
    folder: Path,
    signer: Signer,
    *,
    bundle_format: str,
    compatible: str = "demo-gw-1",
    version: str = "1.2.0",
    payload: bytes = b"",
) -> bytes:
    """A RAUC bundle (``plain`` or ``verity``) with one rootfs image, built by ``rauc``."""
    content = folder / f"content-{bundle_format}-{compatible}-{version}"
    shutil.rmtree(content, ignore_errors=True)
    content.mkdir(parents=True)
    # verity bundles need a squashfs over 4 KiB: random-looking bytes do not compress.
    image = payload or hashlib.shake_256(f"{compatible} {version}".encode()).digest(64 * 1024)
    (content / "rootfs.img").write_bytes(image)
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={compatible}\nversion={version}\n\n"
        f"[bundle]\nformat={bundle_format}\n\n[image.rootfs]\nfilename=rootfs.img\n"
    )
    out = folder / f"{content.name}.raucb"
    return _rauc("bundle", "--cert", signer.cert, "--key", signer.key, content, out=out)


def _rauc(*args: str | Path, out: Path) -> bytes:
    """Run ``rauc ARGS OUT`` (OUT replaced) and return what it wrote to OUT."""
    out.unlink(missing_ok=True)
    subprocess.run(
        ["rauc", *map(str, args), str(out)], check=True, capture_output=True, timeout=120
    )
    return out.read_bytes()


def encrypt_bundle(folder: Path, bundle: bytes, keyring: Path, recipient: Signer) -> bytes:
    """A ``crypt`` bundle encrypted for ``recipient`` (a device's certificate) by
    ``rauc encrypt``, as a maker does before publishing it."""
    plain = folder / "to-encrypt.raucb"
    plain.write_bytes(bundle)
    return _rauc(
        "encrypt",
        "--keyring",
        keyring,
        "--to",
        recipient.cert,
        plain,
        out=folder / "encrypted.raucb",
    )


def flip_payload_byte(bundle: bytes) -> bytes:
    """The bundle with one byte of its squashfs payload flipped (the payload comes first;
    the signature and its size sit at the end)."""
    data = bytearray(bundle)
    data[len(data) // 4] ^= 0xFF
    return bytes(data)
