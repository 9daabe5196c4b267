"""Native signatures of update formats: SWUpdate ``.swu`` and RAUC ``.raucb`` bundles.

SWUpdate signs ``sw-description`` with CMS (``openssl cms -sign … -outform DER -binary``)
and ships the detached signature as ``sw-description.sig``, the second member of the
``.swu`` cpio archive. The signature is verified with ``openssl cms -verify`` against the
configured certificate: pyca/cryptography can create PKCS#7/CMS signatures but does not
verify them, so the OpenSSL command line is the one well-kept verifier at hand.

RAUC bundles are checked whole with Debian's ``rauc`` (docs/releases.md, "RAUC bundles"):
``rauc info --keyring`` verifies the signature chain to the keyring and reads the manifest
(``compatible``, version, bundle format, signer), then ``rauc extract --keyring`` reads the
whole payload in a temporary folder that is always removed. Both are needed: for the
``verity`` and ``crypt`` formats the signature covers the manifest, which holds the root of
the payload's dm-verity hash tree, so only reading the payload through that tree notices a
changed byte. Without a keyring a bundle is still read (``rauc info --no-verify``) for its
format, ``compatible`` and version, with no claim about its signer. Either check refuses
the upload when its tool is missing while a certificate or keyring is configured.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from patchgate.domain.errors import InvalidInput
from patchgate.services.release_ports import NativeCheck, NativeSignatureChecker

_CPIO_MAGICS = (b"070701", b"070702")
_HEADER = 110
_MAX_MEMBER = 16 * 1024 * 1024  # sw-description and its signature are small


def _align4(n: int) -> int:
    return (n + 3) & ~3


def read_cpio_members(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """The named members of a cpio "newc" archive (stops at the trailer or when all found)."""
    found: dict[str, bytes] = {}
    with path.open("rb") as handle:
        offset = 0
        while len(found) < len(wanted):
            handle.seek(offset)
            header = handle.read(_HEADER)
            if len(header) < _HEADER or header[:6] not in _CPIO_MAGICS:
                raise InvalidInput(f"{path.name}: not a cpio (newc) archive as SWUpdate writes")
            try:
                filesize = int(header[54:62], 16)
                namesize = int(header[94:102], 16)
            except ValueError as exc:
                raise InvalidInput(f"{path.name}: damaged cpio header") from exc
            name = handle.read(namesize).rstrip(b"\0").decode("utf-8", "replace")
            data_at = _align4(offset + _HEADER + namesize)
            if name == "TRAILER!!!":
                break
            if name in wanted:
                if filesize > _MAX_MEMBER:
                    raise InvalidInput(f"{path.name}: {name} is implausibly large")
                handle.seek(data_at)
                found[name] = handle.read(filesize)
            offset = _align4(data_at + filesize)
    return found


class NativeSignatures(NativeSignatureChecker):
    """Verifies ``.swu`` against ``swu_certificate`` and RAUC bundles against
    ``rauc_keyring`` (each only when configured)."""

    def __init__(
        self,
        swu_certificate: Path | None,
        rauc_keyring: Path | None = None,
        *,
        work_dir: Path | None = None,
    ) -> None:
        self.swu_certificate = swu_certificate
        self.rauc_keyring = rauc_keyring
        self.work_dir = work_dir

    def reads(self, filename: str) -> bool:
        lower = filename.lower()
        return (lower.endswith(".swu") and self.swu_certificate is not None) or lower.endswith(
            ".raucb"
        )

    def check(self, filename: str, path: Path) -> NativeCheck | None:
        lower = filename.lower()
        if lower.endswith(".swu") and self.swu_certificate is not None:
            return self._check_swu(filename, path, self.swu_certificate)
        if lower.endswith(".raucb"):
            return self._check_rauc(filename, path)
        return None

    def _check_swu(self, filename: str, path: Path, certificate: Path) -> NativeCheck:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise InvalidInput(
                f"{filename}: cannot verify the SWUpdate signature: openssl is not installed"
            )
        members = read_cpio_members(path, {"sw-description", "sw-description.sig"})
        if "sw-description" not in members:
            raise InvalidInput(f"{filename}: no sw-description in the archive")
        if "sw-description.sig" not in members:
            raise InvalidInput(f"{filename}: sw-description is not signed (no .sig member)")
        with tempfile.TemporaryDirectory(prefix="patchgate-swu-") as tmp:
            content = Path(tmp) / "sw-description"
            signature = Path(tmp) / "sw-description.sig"
            content.write_bytes(members["sw-description"])
            signature.write_bytes(members["sw-description.sig"])
            proc = subprocess.run(
                [
                    openssl,
                    "cms",
                    "-verify",
                    "-binary",
                    "-inform",
                    "DER",
                    "-in",
                    str(signature),
                    "-content",
                    str(content),
                    "-CAfile",
                    str(certificate),
                    "-purpose",
                    "any",
                    "-out",
                    "/dev/null",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        if proc.returncode != 0:
            reason = _first_reason(proc.stderr)
            raise InvalidInput(
                f"{filename}: the CMS signature of sw-description does not verify against "
                f"the configured certificate: {reason}"
            )
        return NativeCheck(kind="swupdate-cms", signature_verified=True)

    def _check_rauc(self, filename: str, path: Path) -> NativeCheck | None:
        rauc = shutil.which("rauc")
        keyring = self.rauc_keyring
        if rauc is None:
            if keyring is None:
                return None  # nothing configured to check, no tool to read it: no claim
            raise InvalidInput(
                f"{filename}: cannot verify the RAUC bundle signature against the configured "
                "keyring: rauc is not installed"
            )
        info = _rauc_info(rauc, filename, path, keyring)
        if keyring is not None:
            self._extract(rauc, filename, path, keyring)
        return NativeCheck(
            kind="rauc",
            signature_verified=keyring is not None,
            payload_verified=keyring is not None,
            format=info.get("format"),
            signer=info.get("signer") if keyring is not None else None,
            compatible=info.get("compatible"),
            version=info.get("version"),
        )

    def _extract(self, rauc: str, filename: str, path: Path, keyring: Path) -> None:
        """Read the whole payload through the signed manifest (``rauc extract``)."""
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="patchgate-rauc-", dir=self.work_dir) as tmp:
            # The bundle is a blob of patchgate's own store, just hashed on the way in:
            # rauc's check of who may write the file is not needed for it.
            # TMPDIR: rauc writes a decrypted copy of a crypt bundle there; it goes too.
            content = Path(tmp) / "content"
            proc = _run(
                [rauc, "extract", "--trust-environment", "--keyring", str(keyring)],
                [path, content],
                timeout=3600,
                env={**os.environ, "TMPDIR": tmp},
            )
        if proc.returncode != 0:
            raise InvalidInput(_rauc_refusal(filename, proc.stderr))


_RAUC_FIELDS = {
    "compatible": re.compile(r"^Compatible:\s*'(.*)'\s*$", re.MULTILINE),
    "version": re.compile(r"^Version:\s*'(.*)'\s*$", re.MULTILINE),
    "format": re.compile(r"^Bundle Format:\s*([a-z]+)", re.MULTILINE),
    "signer": re.compile(r"^\s*0 Subject:\s*(.+?)\s*$", re.MULTILINE),
}

# What rauc (and OpenSSL under it) says, and the reason patchgate gives for it.
_RAUC_REASONS = (
    ("payload is corrupted", "its payload is corrupted"),
    ("no decryption key", "it is encrypted for devices and patchgate holds no key to check it"),
    ("certificate has expired", "the signer's certificate has expired"),
    ("not yet valid", "the signer's certificate is not valid yet"),
    ("self-signed certificate", "its signer is not trusted by the configured keyring"),
    ("unable to get local issuer", "its signer is not trusted by the configured keyring"),
    ("verification failure", "its signature does not match its content (changed or corrupted)"),
    ("invalid bundle format", "it is not a RAUC bundle, or a truncated or damaged one"),
    ("squashfs", "it is not a RAUC bundle, or a truncated or damaged one"),
)


def _rauc_refusal(filename: str, stderr: str) -> str:
    said = _first_reason(stderr)
    lower = stderr.lower()
    reason = next((why for key, why in _RAUC_REASONS if key in lower), "rauc refused it")
    return f"{filename}: RAUC bundle refused: {reason} (rauc: {said})"


def _rauc_info(rauc: str, filename: str, path: Path, keyring: Path | None) -> dict[str, str]:
    """The manifest's ``compatible`` and version, the bundle format and (with a keyring)
    the signer's subject, from ``rauc info``; ``InvalidInput`` when rauc refuses."""
    check = ["--keyring", str(keyring)] if keyring is not None else ["--no-verify"]
    proc = _run([rauc, "info", *check], [path], timeout=600)
    if proc.returncode != 0:
        raise InvalidInput(_rauc_refusal(filename, proc.stderr))
    found = {
        name: match.group(1)
        for name, pattern in _RAUC_FIELDS.items()
        if (match := pattern.search(proc.stdout)) is not None and match.group(1) != "(null)"
    }
    if "compatible" not in found:
        raise InvalidInput(f"{filename}: RAUC bundle refused: its manifest names no compatible")
    return found


def _run(
    argv: list[str],
    paths: list[Path],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a verifier with fixed arguments and file paths, its output captured as text; one
    that outlives ``timeout`` is killed and counts as failed."""
    args = [*argv, *(str(p) for p in paths)]
    try:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, -1, "", f"error: no answer within {timeout:g} s")


def _first_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "fail" in line.lower():
            return line
    return lines[0] if lines else "verification failed"
