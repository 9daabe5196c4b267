"""Releases: create (streamed artifacts, SBOM, native signatures), sign, withdraw, and the
rules other capabilities ask about (``require_installable``, ``trust_mode``).

Trust (INTERFACES.md "Trust"): a release is installable once TUF targets metadata signed
with the targets key lists its artifacts. In lab trust mode the targets key still sits in
the data folder and ``create`` signs at once; otherwise the release waits, unsigned, for
``sign`` with the key file brought from offline storage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit, state
from patchgate.services import policy as policy_service
from patchgate.services.artifact_ports import StoredBlob
from patchgate.services.context import Context
from patchgate.services.release_ports import (
    NewRelease,
    ReleaseRecord,
    TargetSpec,
)
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


def trust_status_json(ctx: Context) -> dict[str, Any] | None:
    """The JSON shape of the trust status (``keys status --json``, ``GET /api/v1/trust``):
    trust mode, metadata versions, timestamp expiry. None when there is no TUF repository."""
    if not ctx.trust.exists():
        return None
    status = ctx.trust.status()
    return {
        "trust": "lab" if status.offline_keys_present else "production",
        "root_version": status.root_version,
        "targets_version": status.targets_version,
        "snapshot_version": status.snapshot_version,
        "timestamp_version": status.timestamp_version,
        "timestamp_expires": rfc3339(status.timestamp_expires),
        "targets_keyids": list(status.targets_keyids),
    }


# --- validation ----------------------------------------------------------------------------


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

    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
class ArtifactUpload:
    """An artifact to store: its file name and its bytes as a stream of chunks."""

    filename: str
    chunks: Iterable[bytes]


def _validate(
    ctx: Context,
    *,
    product: str,
    version: str,
    security_version: int,
    update_type: str,
    hardware: Sequence[str],
    fixes: Sequence[str],
    filenames: Sequence[str],
) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    policy = policy_service.in_force(ctx).policy
    known = policy.product(product)
    if known is None:
        names = ", ".join(p.name for p in policy.products) or "none"
        problems.append(f"product {product!r} is not in the policy in force (products: {names})")
    if not _VERSION.match(version):
        problems.append(
            f"version {version!r} must be 1–128 characters of letters, digits and ._+~- "
            "starting with a letter or digit"
        )
    if security_version < 0:
        problems.append("the security version must be 0 or more")
    if update_type not in UPDATE_TYPES:
        problems.append(f"update type {update_type!r} is not one of {', '.join(UPDATE_TYPES)}")
    models = list(dict.fromkeys(h.strip() for h in hardware if h.strip()))
    if not models and known is not None:
        models = list(known.hardware)
    if not models:
        problems.append("name at least one compatible hardware model (--hardware)")
    if known is not None and known.hardware:
        unknown = [m for m in models if m not in known.hardware]
        if unknown:
            problems.append(
                f"hardware {', '.join(unknown)} is not a model of {product} "
                f"(policy lists {', '.join(known.hardware)})"
            )
    clean_fixes = list(dict.fromkeys(f.strip() for f in fixes if f.strip()))
    problems.extend(
        f"{f!r} is not a vulnerability ID" for f in clean_fixes if not _VULN_ID.match(f)
    )
    if not filenames:
        problems.append("a release needs at least one artifact")
    for name in filenames:
        try:
            check_filename(name)
        except InvalidInput as exc:
            problems.append(exc.message)
    targets = [target_path(product, version, n) for n in filenames]
    if len(set(targets)) != len(targets):
        problems.append("two artifacts have the same file name")
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    return models, clean_fixes


# --- use cases -----------------------------------------------------------------------------


def create_release(
    ctx: Context,
    *,
    product: str,
    version: str,
    artifacts: Sequence[ArtifactUpload],
    actor: str,
    security_version: int = 0,
    update_type: str = "security",
    hardware: Sequence[str] = (),
    fixes: Sequence[str] = (),
    notes: str = "",
    sbom: bytes | None = None,
) -> ReleaseRecord:
    """Store the artifacts (streamed), validate, record the release and, in lab trust
    mode, sign it at once. On any failure no release row is left; a blob already stored
    for it stays, used by no release, until ``sweep_unused_blobs`` removes it (not at once:
    an upload of the same bytes in another process may be about to commit its release)."""
    models, clean_fixes = _validate(
        ctx,
        product=product,
        version=version,
        security_version=security_version,
        update_type=update_type,
        hardware=hardware,
        fixes=fixes,
        filenames=[a.filename for a in artifacts],
    )
    with ctx.read_uow() as uow:
        if uow.releases.by_product_version(product, version) is not None:
            raise Conflict(f"{product} {version} already exists")
        floor = uow.releases.security_floor(product)
    if security_version < floor:
        raise InvalidInput(
            f"security version {security_version} is below {product}'s anti-rollback floor "
            f"{floor}: devices would refuse it as a downgrade"
        )
    store = ctx.artifacts
    entries: list[tuple[str, StoredBlob, str]] = []
    native: dict[str, str] = {}
    for upload in artifacts:
        blob = store.put_stream(upload.chunks, max_bytes=ctx.max_artifact_bytes)
        path = store.local_path(blob.sha256)
        if path is not None:
            kind = ctx.native_signatures.check(upload.filename, path)
            if kind:
                native[upload.filename] = kind
        entries.append((upload.filename, blob, target_path(product, version, upload.filename)))
    sbom_blob: StoredBlob | None = None
    sbom_spec: str | None = None
    if sbom is not None:
        if len(sbom) > MAX_SBOM_BYTES:
            raise InvalidInput(f"the SBOM is over {MAX_SBOM_BYTES} bytes")
        sbom_spec = validate_sbom(sbom)
        sbom_blob = store.put_stream([sbom], max_bytes=MAX_SBOM_BYTES)
    flags: dict[str, Any] = {}
    if update_type == "combined":
        # CRA Annex I Part II (8): security updates separate from feature updates
        # where feasible; a combined one is allowed but shown.
        flags["combined_update"] = True
    if sbom_blob is None:
        flags["no_sbom"] = True
    else:
        flags["sbom_spec_version"] = sbom_spec
    if native:
        flags["native_signatures"] = native
    now = ctx.clock()
    with ctx.uow() as uow:
        if uow.releases.by_product_version(product, version) is not None:
            raise Conflict(f"{product} {version} already exists")
        if sbom_blob is not None:
            uow.releases.add_blob(sbom_blob, now)
        record = uow.releases.add(
            NewRelease(
                product=product,
                version=version,
                security_version=security_version,
                type=update_type,
                hardware=models,
                notes=notes,
                sbom_sha256=sbom_blob.sha256 if sbom_blob else None,
                state=STATE_AWAITING,
                created_by=actor,
                flags=flags,
                fixes=clean_fixes,
                artifacts=entries,
            ),
            now,
        )
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="release.create",
            subject=f"release:{record.id}",
            details={
                "product": product,
                "version": version,
                "security_version": security_version,
                "type": update_type,
                "artifacts": [
                    {"filename": f, "sha256": b.sha256, "size": b.size} for f, b, _ in entries
                ],
            },
        )
        uow.commit()
    if trust_mode(ctx) == "lab":
        record = sign_release(ctx, record.id, key_file=None, actor=actor)
    return record


UNUSED_BLOB_AGE_SECONDS = 86400


def sweep_unused_blobs(ctx: Context, *, older_than_seconds: float) -> int:
    """Remove the stored blobs no committed release uses (left by a refused or broken-off
    upload) that were last stored more than ``older_than_seconds`` ago; returns how many.

    The age keeps the sweep off a blob that an upload in another process has just stored
    (or found already stored, which touches it) and whose release is not committed yet:
    such a blob is removed only if that upload took longer than the age between storing it
    and committing. The server sweeps at start with ``UNUSED_BLOB_AGE_SECONDS``.
    """
    store = ctx.artifacts
    candidates = list(store.stale_blobs(older_than_seconds))
    if not candidates:
        return 0
    with ctx.read_uow() as uow:
        used = uow.releases.referenced_blobs()
    return sum(
        1
        for sha256 in candidates
        if sha256 not in used and store.delete_if_stale(sha256, older_than_seconds)
    )


def _target_specs(uow: UnitOfWork) -> list[TargetSpec]:
    """Every artifact of every signed, not withdrawn release, with its custom fields.

    ``security_floor`` carries the product's anti-rollback floor, capped at the target's
    own security version: a device raises its floor to it once it runs the target (the
    agent's rule), so it never ends up below the floor of the image it runs, and it learns
    of a raised floor through signed metadata only.
    """
    specs: list[TargetSpec] = []
    floors: dict[str, int] = {}
    for release in uow.releases.in_targets():
        if release.product not in floors:
            floors[release.product] = uow.releases.security_floor(release.product)
        for artifact in release.artifacts:
            specs.append(
                TargetSpec(
                    path=artifact.tuf_target,
                    length=artifact.size,
                    sha256=artifact.sha256,
                    custom={
                        "product": release.product,
                        "version": release.version,
                        "security_version": release.security_version,
                        "hardware": list(release.hardware),
                        "release_id": release.id,
                        "type": release.type,
                        "security_floor": min(floors[release.product], release.security_version),
                    },
                )
            )
    return specs


def sign_release(
    ctx: Context, release_id: int, *, key_file: Path | None, actor: str
) -> ReleaseRecord:
    """Sign the targets metadata listing this release (with ``key_file``, or the lab key
    when None), making it installable. Refuses a key root does not trust for targets."""
    trust = ctx.trust
    if key_file is not None:
        trust.check_targets_key(key_file)
    with ctx.uow() as uow:
        release = uow.releases.get(release_id, lock=True)
        if release is None:
            raise NotFound(f"no release {release_id}")
        if release.state == STATE_WITHDRAWN:
            raise Conflict(f"release {release_id} is withdrawn and can never be signed again")
        if release.state == STATE_SIGNED:
            raise Conflict(f"release {release_id} is already signed")
        # The audit head lock serialises every signer, so the targets list read next
        # includes every release signed before and none is dropped by a concurrent sign.
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="release.sign",
            subject=f"release:{release_id}",
            details={"mode": "lab" if key_file is None else "offline key"},
        )
        now = ctx.clock()
        uow.releases.set_state(release_id, STATE_SIGNED, now)
        state.changed(ctx, uow)
        trust.publish_targets(_target_specs(uow), key_file=key_file, now=now)
        uow.commit()
        signed = uow.releases.get(release_id)
    assert signed is not None
    return signed


@dataclass(frozen=True)
class WithdrawResult:
    """The withdrawn release; ``targets_resigned`` when it was signed and the targets
    metadata was re-signed without it; ``still_in_targets`` when it was signed and the
    targets metadata could not be re-signed yet (no targets key at hand). A release that
    was never signed was never in the targets: both are false."""

    release: ReleaseRecord
    targets_resigned: bool
    still_in_targets: bool


def withdraw_release(
    ctx: Context, release_id: int, *, reason: str, actor: str, key_file: Path | None = None
) -> WithdrawResult:
    """Withdraw a release for good: never offered again (at once, from the commit) and
    removed from the TUF targets (re-signed now in lab mode or with ``key_file``;
    otherwise by the next ``keys sign-targets``). The targets are re-signed only when the
    release was signed: an unsigned one was never listed."""
    if not reason.strip():
        raise InvalidInput("say why the release is withdrawn (--reason)")
    trust = ctx.trust
    if key_file is not None:
        trust.check_targets_key(key_file)
    can_sign = key_file is not None or trust.offline_keys_present()
    with ctx.uow() as uow:
        release = uow.releases.get(release_id, lock=True)
        if release is None:
            raise NotFound(f"no release {release_id}")
        if release.state == STATE_WITHDRAWN:
            raise Conflict(f"release {release_id} is already withdrawn")
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="release.withdraw",
            subject=f"release:{release_id}",
            details={"reason": reason, "was": release.state},
        )
        now = ctx.clock()
        was_signed = release.state == STATE_SIGNED
        uow.releases.withdraw(release_id, reason, now)
        state.changed(ctx, uow)  # from the commit, no process offers it
        resign = was_signed and can_sign
        if resign:
            trust.publish_targets(_target_specs(uow), key_file=key_file, now=now)
        uow.commit()
        done = uow.releases.get(release_id)
    assert done is not None
    return WithdrawResult(done, resign, was_signed and not can_sign)


def sign_targets(ctx: Context, *, key_file: Path | None, actor: str) -> int:
    """Re-sign the targets metadata from the releases in force (after withdrawals made
    without the key, or before the targets metadata expires). Returns its new version."""
    trust = ctx.trust
    if key_file is not None:
        trust.check_targets_key(key_file)
    with ctx.uow() as uow:
        audit.record(ctx, uow, actor=actor, action="tuf.sign_targets", subject="tuf:targets")
        version = trust.publish_targets(_target_specs(uow), key_file=key_file, now=ctx.clock())
        uow.commit()
    return version


def rotate_keys(
    ctx: Context,
    role: str,
    *,
    root_key_files: Sequence[Path],
    actor: str,
    keys_out: Path | None = None,
) -> int:
    """Replace a role's keys with a new root version signed by old and new root keys."""
    trust = ctx.trust
    with ctx.uow() as uow:
        audit.record(ctx, uow, actor=actor, action="tuf.rotate", subject=f"tuf:{role}")
        version = trust.rotate(
            role,
            now=ctx.clock(),
            root_key_files=root_key_files,
            targets=_target_specs(uow),
            keys_out=keys_out,
        )
        uow.commit()
    return version


def get_release(ctx: Context, release_id: int) -> ReleaseRecord:
    with ctx.read_uow() as uow:
        release = uow.releases.get(release_id)
    if release is None:
        raise NotFound(f"no release {release_id}")
    return release


def list_releases(ctx: Context, *, product: str | None = None) -> Sequence[ReleaseRecord]:
    with ctx.read_uow() as uow:
        return uow.releases.list(product=product)


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


def raise_floor(
    ctx: Context, uow: UnitOfWork, *, product: str, security_version: int, actor: str = "system"
) -> int:
    """Raise a product's anti-rollback floor in the caller's transaction (the campaign
    engine calls this when a campaign completes); returns the floor.

    Devices learn the floor from the targets metadata (custom field ``security_floor``):
    in lab trust mode it is re-signed as soon as the caller commits; otherwise by the next
    ``keys sign-targets --key FILE``.
    """
    before = uow.releases.security_floor(product)
    floor = uow.releases.raise_floor(product, security_version, ctx.clock())
    if floor > before:
        state.changed(ctx, uow)  # the floor is part of every process's campaign snapshot
    if floor > before and trust_mode(ctx) == "lab":

        def resign() -> None:
            sign_targets(ctx, key_file=None, actor=actor)

        uow.after_commit(resign)
    return floor


def security_floor(ctx: Context, product: str) -> int:
    with ctx.read_uow() as uow:
        return uow.releases.security_floor(product)


def downloadable(ctx: Context, tuf_target: str) -> tuple[str, Path] | None:
    """(sha256, local path) of a target that may be downloaded now: its release is signed
    and not withdrawn, and its blob is in the local store. None otherwise."""
    with ctx.read_uow() as uow:
        found = uow.releases.artifact_by_target(tuf_target)
    if found is None or found[1] != STATE_SIGNED:
        return None
    sha256 = found[0].sha256
    path = ctx.artifacts.local_path(sha256)
    return None if path is None else (sha256, path)


def sbom_blob(ctx: Context, release_id: int) -> tuple[str, Path | None]:
    """The SBOM's sha256 and local path; ``NotFound`` when the release has none."""
    release = get_release(ctx, release_id)
    if release.sbom_sha256 is None:
        raise NotFound(f"release {release_id} has no SBOM")
    return release.sbom_sha256, ctx.artifacts.local_path(release.sbom_sha256)


def as_json(release: ReleaseRecord, *, trust: TrustMode) -> dict[str, Any]:
    """The JSON shape of a release (INTERFACES.md: ``release create|show --json``)."""
    return {
        "id": release.id,
        "product": release.product,
        "version": release.version,
        "security_version": release.security_version,
        "type": release.type,
        "hardware": list(release.hardware),
        "state": release.state,
        "installable": release.state == STATE_SIGNED,
        "trust": trust,
        "notes": release.notes,
        "fixes": list(release.fixes),
        "sbom_sha256": release.sbom_sha256,
        "flags": dict(release.flags),
        "created_at": rfc3339(release.created_at),
        "created_by": release.created_by,
        "signed_at": rfc3339(release.signed_at),
        "withdrawn_at": rfc3339(release.withdrawn_at),
        "withdraw_reason": release.withdraw_reason,
        "artifacts": [
            {
                "filename": a.filename,
                "size": a.size,
                "sha256": a.sha256,
                "sha1": a.sha1,
                "md5": a.md5,
                "tuf_target": a.tuf_target,
                "download_path": f"/tuf/targets/{a.tuf_target}",
            }
            for a in release.artifacts
        ],
    }


__all__ = [
    "UPDATE_TYPES",
    "ArtifactUpload",
    "TargetSpec",
    "TrustMode",
    "WithdrawResult",
    "as_json",
    "check_filename",
    "create_release",
    "downloadable",
    "get_release",
    "list_releases",
    "raise_floor",
    "require_installable",
    "rotate_keys",
    "security_floor",
    "sign_release",
    "sign_targets",
    "target_path",
    "trust_mode",
    "trust_status_json",
    "validate_sbom",
    "withdraw_release",
]
