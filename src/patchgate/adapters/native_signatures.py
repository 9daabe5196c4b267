"""Native signatures of update formats: SWUpdate ``.swu`` and RAUC ``.raucb`` bundles.

SWUpdate signs ``sw-description`` with CMS (``openssl cms -sign … -outform DER -binary``)
and ships the detached signature as ``sw-description.sig``, the second member of the
``.swu`` cpio archive. The signature is verified with ``openssl cms -verify`` against the
configured certificate: pyca/cryptography can create PKCS#7/CMS signatures but does not
verify them, so the OpenSSL command line is the one well-kept verifier at hand. RAUC
bundles are checked with ``rauc info --keyring``. Either check refuses the upload when its
tool is missing while a certificate or keyring is configured.
"""

from __future__ import annotations

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

    def __init__(self, swu_certificate: Path | None, rauc_keyring: Path | None = None) -> None:
        self.swu_certificate = swu_certificate
        self.rauc_keyring = rauc_keyring

    def check(self, filename: str, path: Path) -> NativeCheck | None:
        lower = filename.lower()
        if lower.endswith(".swu") and self.swu_certificate is not None:
            return self._check_swu(filename, path, self.swu_certificate)
        if lower.endswith(".raucb") and self.rauc_keyring is not None:
            return self._check_rauc(filename, path, self.rauc_keyring)
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

    def _check_rauc(self, filename: str, path: Path, keyring: Path) -> NativeCheck:
        rauc = shutil.which("rauc")
        if rauc is None:
            raise InvalidInput(
                f"{filename}: cannot verify the RAUC bundle signature against the configured "
                "keyring: rauc is not installed"
            )
        proc = subprocess.run(
            [rauc, "info", "--keyring", str(keyring), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise InvalidInput(
                f"{filename}: the RAUC bundle signature does not verify: "
                f"{_first_reason(proc.stderr)}"
            )
        return NativeCheck(kind="rauc", signature_verified=True)


def _first_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "fail" in line.lower():
            return line
    return lines[0] if lines else "verification failed"
