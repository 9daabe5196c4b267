"""The rules of releases that commands and views share: names, trust mode, what a new
release must satisfy, and when a release may be offered (docs/releases.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.domain.policy import Policy
from patchgate.domain.versions import is_version
from patchgate.services.context import Context
from patchgate.services.release_ports import NativeCheck, ReleaseRecord
from patchgate.services.unit_of_work import UnitOfWork

UPDATE_TYPES = ("security", "feature", "combined")
STATE_AWAITING = "awaiting_signature"
STATE_SIGNED = "signed"
STATE_WITHDRAWN = "withdrawn"

TrustMode = Literal["lab", "production"]

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$")
_VULN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_UNSAFE_TARGET_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
MAX_SBOM_BYTES = 64 * 1024 * 1024


def trust_mode(ctx: Context) -> TrustMode:
    """``lab`` while the offline targets key is still in the data folder, else
    ``production``; checked on each call, so moving the key away takes effect at once."""
    return "lab" if ctx.trust.offline_keys_present() else "production"


def check_filename(name: str) -> str:
    """A bare file name: no folder part, no control characters, not ``.``/``..``."""
    if not name or len(name) > 255:
        raise InvalidInput("an artifact file name must be 1–255 characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidInput(f"artifact file name {name!r} contains a path; give a bare name")
    # Control, format, unassigned and separator characters other than the space hide what
    # a name says on a terminal or a web page (str.isprintable's definition).
    if not name.isprintable():
        raise InvalidInput(f"artifact file name {name!r} contains control characters")
    return name


def _slug(text: str) -> str:
    slug = _UNSAFE_TARGET_CHARS.sub("-", text.strip().lower()).strip("-.")
    return re.sub(r"-{2,}", "-", slug) or "product"


def target_path(product: str, version: str, filename: str) -> str:
    """The TUF target path of an artifact: ``product-slug/version/file`` in URL-safe
    characters, so it is also the download path under ``/tuf/targets/``."""
    safe_name = _UNSAFE_TARGET_CHARS.sub("_", filename)
    return f"{_slug(product)}/{version}/{safe_name}"


def validate_sbom(data: bytes) -> str:
    """Validate a CycloneDX JSON document against its spec version's schema with
    cyclonedx-python-lib; returns the spec version, raises ``InvalidInput`` with the
    validator's message."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    if len(data) > MAX_SBOM_BYTES:
        raise InvalidInput(f"the SBOM is over {MAX_SBOM_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(f"the SBOM is not CycloneDX JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise InvalidInput('the SBOM is not CycloneDX: "bomFormat" must be "CycloneDX"')
    spec = str(doc.get("specVersion", ""))
    try:
        version = SchemaVersion.from_version(spec)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"the SBOM has an unknown CycloneDX specVersion {spec!r}") from exc
    error = JsonStrictValidator(version).validate_str(data.decode("utf-8"))
    if error is not None:
        detail = getattr(error.data, "message", None) or str(error)
        where = "/".join(str(p) for p in getattr(error.data, "absolute_path", ()))
        raise InvalidInput(
            f"the SBOM is not valid CycloneDX {spec}: {detail}"
            + (f" (at /{where})" if where else "")
        )
    return spec


@dataclass(frozen=True)
class ReleaseRequest:
    """What ``create_release`` is asked to make, before any byte is stored."""

    product: str
    version: str
    security_version: int = 0
    update_type: str = "security"
    hardware: Sequence[str] = ()
    fixes: Sequence[str] = ()
    filenames: Sequence[str] = ()


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed ``check_request``: the hardware models (the product's when
    none was named) and the fixed vulnerability IDs, each once."""

    hardware: tuple[str, ...]
    fixes: tuple[str, ...]


def _product_problems(policy: Policy, req: ReleaseRequest) -> tuple[list[str], list[str]]:
    """Problems with the product and hardware; the hardware models to record."""
    problems: list[str] = []
    known = policy.product(req.product)
    if known is None:
        names = ", ".join(p.name for p in policy.products) or "none"
        problems.append(
            f"product {req.product!r} is not in the policy in force (products: {names})"
        )
    models = list(dict.fromkeys(h.strip() for h in req.hardware if h.strip()))
    if not models and known is not None:
        models = list(known.hardware)
    if not models:
        problems.append("name at least one compatible hardware model (--hardware)")
    if known is not None and known.hardware:
        unknown = [m for m in models if m not in known.hardware]
        if unknown:
            problems.append(
                f"hardware {', '.join(unknown)} is not a model of {req.product} "
                f"(policy lists {', '.join(known.hardware)})"
            )
    return problems, models


def _version_problems(req: ReleaseRequest) -> list[str]:
    problems: list[str] = []
    if not _VERSION.match(req.version):
        problems.append(
            f"version {req.version!r} must be 1–128 characters of letters, digits and ._+~- "
            "starting with a letter or digit"
        )
    elif not is_version(req.version):
        # Devices report it and campaigns, exposure and reverts compare it: a version that
        # cannot be ordered would silently match no range (domain/versions.py).
        problems.append(
            f"version {req.version!r} is not a version patchgate can order: "
            "start with a digit, like 1.2.0, 2.0-rc.1 or v3.1"
        )
    if req.security_version < 0:
        problems.append("the security version must be 0 or more")
    if req.update_type not in UPDATE_TYPES:
        problems.append(f"update type {req.update_type!r} is not one of {', '.join(UPDATE_TYPES)}")
    return problems


def _artifact_problems(req: ReleaseRequest) -> list[str]:
    problems: list[str] = []
    if not req.filenames:
        problems.append("a release needs at least one artifact")
    for name in req.filenames:
        try:
            check_filename(name)
        except InvalidInput as exc:
            problems.append(exc.message)
    targets = [target_path(req.product, req.version, n) for n in req.filenames]
    if len(set(targets)) != len(targets):
        problems.append("two artifacts have the same file name")
    return problems


def check_request(policy: Policy, req: ReleaseRequest) -> CheckedRequest:
    """Every problem of a release request at once (``InvalidInput`` with ``problems``)."""
    problems, models = _product_problems(policy, req)
    problems.extend(_version_problems(req))
    fixes = list(dict.fromkeys(f.strip() for f in req.fixes if f.strip()))
    problems.extend(f"{f!r} is not a vulnerability ID" for f in fixes if not _VULN_ID.match(f))
    problems.extend(_artifact_problems(req))
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    return CheckedRequest(tuple(models), tuple(fixes))


def check_fits_hardware(filename: str, check: NativeCheck | None, hardware: Sequence[str]) -> None:
    """Refuse an artifact whose own metadata names a device type (a RAUC bundle's
    ``compatible``) that is none of the release's hardware models: devices of those models
    would refuse it, and devices of the other type must not be offered it."""
    if check is None or check.compatible is None or check.compatible in hardware:
        return
    raise InvalidInput(
        f"{filename}: RAUC bundle refused: it is for compatible {check.compatible!r}, "
        f"not for this release's hardware ({', '.join(hardware)})"
    )


def require_installable(ctx_or_uow: Context | UnitOfWork, release_id: int) -> ReleaseRecord:
    """The release, if it may be offered to devices: signed and not withdrawn.

    Raises ``NotFound``, or ``Conflict`` naming the rule (for the campaign engine and the
    device API). Pass the caller's unit of work to check inside its transaction.
    """
    if isinstance(ctx_or_uow, UnitOfWork):
        release = ctx_or_uow.releases.get(release_id)
    else:
        with ctx_or_uow.read_uow() as uow:
            release = uow.releases.get(release_id)
    if release is None:
        raise NotFound(f"no release {release_id}")
    if release.state == STATE_WITHDRAWN:
        raise Conflict(
            f"release {release_id} ({release.product} {release.version}) is withdrawn: "
            f"a withdrawn release is never offered again ({release.withdraw_reason})"
        )
    if release.state != STATE_SIGNED:
        raise Conflict(
            f"release {release_id} ({release.product} {release.version}) awaits its "
            "signature: no campaign can start for an unsigned release "
            "(sign it with `patchgate release sign ID --key FILE`)"
        )
    return release
