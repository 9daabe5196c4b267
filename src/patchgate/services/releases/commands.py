"""Release use cases that change state: create (streamed artifacts, SBOM, native
signatures), sign, withdraw, re-sign the targets, rotate keys, raise the anti-rollback
floor, sweep unused blobs.

Trust (docs/releases.md, "Trust"): a release is installable once TUF targets metadata
signed with the targets key lists its artifacts. In lab trust mode the targets key still
sits in the data folder and ``create_release`` signs at once; otherwise the release waits,
unsigned, for ``sign_release`` with the key file brought from offline storage. The key is
loaded and checked against root once per signature (``TrustRepository.targets_key``),
before the transaction opens, and that loaded key signs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit, state
from patchgate.services import policy as policy_service
from patchgate.services.artifact_ports import StoredBlob
from patchgate.services.context import Context
from patchgate.services.release_ports import (
    NativeCheck,
    NewArtifact,
    NewRelease,
    ReleaseRecord,
    TargetsKey,
    TargetSpec,
)
from patchgate.services.releases.rules import (
    MAX_SBOM_BYTES,
    STATE_AWAITING,
    STATE_SIGNED,
    STATE_WITHDRAWN,
    CheckedRequest,
    ReleaseRequest,
    check_fits_hardware,
    check_request,
    target_path,
    trust_mode,
    validate_sbom,
)
from patchgate.services.unit_of_work import UnitOfWork

UNUSED_BLOB_AGE_SECONDS = 86400


@dataclass(frozen=True)
class ArtifactUpload:
    """An artifact to store: its file name and its bytes as a stream of chunks."""

    filename: str
    chunks: Iterable[bytes]


def _registered(uow: UnitOfWork, fixes: Sequence[str]) -> tuple[str, ...]:
    """The register's ID of each fixed vulnerability (named by its ID or an alias);
    ``InvalidInput`` naming every one the register does not hold."""
    found: list[str] = []
    missing: list[str] = []
    for name in fixes:
        record = uow.vulnerabilities.find_by_alias([name])
        if record is None:
            missing.append(
                f"vulnerability {name!r} is not in the register; "
                "add or import it first (patchgate vuln add|import)"
            )
        else:
            found.append(record.id)
    if missing:
        raise InvalidInput(missing[0], problems=missing)
    return tuple(dict.fromkeys(found))


def _check_new(ctx: Context, req: ReleaseRequest) -> CheckedRequest:
    """Everything about a new release that can be checked before a byte is stored."""
    checked = check_request(policy_service.in_force(ctx).policy, req)
    with ctx.read_uow() as uow:
        if uow.releases.by_product_version(req.product, req.version) is not None:
            raise Conflict(f"{req.product} {req.version} already exists")
        floor = uow.releases.security_floor(req.product)
        fixes = _registered(uow, checked.fixes)
    if req.security_version < floor:
        raise InvalidInput(
            f"security version {req.security_version} is below {req.product}'s "
            f"anti-rollback floor {floor}: devices would refuse it as a downgrade"
        )
    return CheckedRequest(checked.hardware, fixes)


def _store_artifacts(
    ctx: Context,
    req: ReleaseRequest,
    artifacts: Sequence[ArtifactUpload],
    hardware: Sequence[str],
) -> list[NewArtifact]:
    """Stream each artifact into the store, run its native-signature check and check that
    it fits the release's hardware."""
    store = ctx.artifacts
    out: list[NewArtifact] = []
    for upload in artifacts:
        blob = store.put_stream(upload.chunks, max_bytes=ctx.max_artifact_bytes)
        native = _native_check(ctx, upload.filename, blob.sha256)
        check_fits_hardware(upload.filename, native, hardware)
        target = target_path(req.product, req.version, upload.filename)
        out.append(NewArtifact(upload.filename, blob, target, native))
    return out


def _native_check(ctx: Context, filename: str, sha256: str) -> NativeCheck | None:
    """The native-signature check of a stored blob, on its own file or, in a store without
    local paths, on a copy checked against its SHA-256 (docs/storage.md): never skipped."""
    checker = ctx.native_signatures
    if not checker.reads(filename):
        return None
    with ctx.artifacts.local_copy(sha256, ctx.data_dir / "tmp") as path:
        return checker.check(filename, path)


def _flags(update_type: str, sbom_spec: str | None) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if update_type == "combined":
        # CRA Annex I Part II (8): security updates separate from feature updates
        # where feasible; a combined one is allowed but shown.
        flags["combined_update"] = True
    if sbom_spec is None:
        flags["no_sbom"] = True
    else:
        flags["sbom_spec_version"] = sbom_spec
    return flags


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
    """Validate (the request, the fixed vulnerabilities against the register, the SBOM),
    store the artifacts (streamed) and check their native signatures, record the release
    and, in lab trust mode, sign it at once.

    On any failure no release row is left; a blob already stored for it stays, used by no
    release, until ``sweep_unused_blobs`` removes it (not at once: an upload of the same
    bytes in another process may be about to commit its release)."""
    req = ReleaseRequest(
        product=product,
        version=version,
        security_version=security_version,
        update_type=update_type,
        hardware=hardware,
        fixes=fixes,
        filenames=[a.filename for a in artifacts],
    )
    checked = _check_new(ctx, req)
    # The SBOM is small and checked first, so a bad one is refused before any artifact
    # byte is read.
    sbom_spec = validate_sbom(sbom) if sbom is not None else None
    entries = _store_artifacts(ctx, req, artifacts, checked.hardware)
    sbom_blob: StoredBlob | None = None
    if sbom is not None:
        sbom_blob = ctx.artifacts.put_stream([sbom], max_bytes=MAX_SBOM_BYTES)
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
                hardware=checked.hardware,
                notes=notes,
                sbom_sha256=sbom_blob.sha256 if sbom_blob else None,
                state=STATE_AWAITING,
                created_by=actor,
                flags=_flags(update_type, sbom_spec),
                fixes=checked.fixes,
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
                    {"filename": a.filename, "sha256": a.blob.sha256, "size": a.blob.size}
                    for a in entries
                ],
            },
        )
        uow.commit()
    if trust_mode(ctx) == "lab":
        record = sign_release(ctx, record.id, key_file=None, actor=actor)
    return record


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
        custom = {
            "product": release.product,
            "version": release.version,
            "security_version": release.security_version,
            "hardware": list(release.hardware),
            "release_id": release.id,
            "type": release.type,
            "security_floor": min(floors[release.product], release.security_version),
        }
        specs.extend(
            TargetSpec(path=a.tuf_target, length=a.size, sha256=a.sha256, custom=custom)
            for a in release.artifacts
        )
    return specs


def _publish(ctx: Context, uow: UnitOfWork, key: TargetsKey) -> int:
    return ctx.trust.publish_targets(_target_specs(uow), key=key, now=ctx.clock())


def _locked(uow: UnitOfWork, release_id: int) -> ReleaseRecord:
    release = uow.releases.get(release_id, lock=True)
    if release is None:
        raise NotFound(f"no release {release_id}")
    return release


def sign_release(
    ctx: Context, release_id: int, *, key_file: Path | None, actor: str
) -> ReleaseRecord:
    """Sign the targets metadata listing this release (with ``key_file``, or the lab key
    when None), making it installable. Refuses a key root does not trust for targets."""
    key = ctx.trust.targets_key(key_file)
    with ctx.uow() as uow:
        release = _locked(uow, release_id)
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
        uow.releases.set_state(release_id, STATE_SIGNED, ctx.clock())
        state.changed(ctx, uow)
        _publish(ctx, uow, key)
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
    can_sign = key_file is not None or ctx.trust.offline_keys_present()
    key = ctx.trust.targets_key(key_file) if can_sign else None
    with ctx.uow() as uow:
        release = _locked(uow, release_id)
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
        was_signed = release.state == STATE_SIGNED
        uow.releases.withdraw(release_id, reason, ctx.clock())
        state.changed(ctx, uow)  # from the commit, no process offers it
        if was_signed and key is not None:
            _publish(ctx, uow, key)
        uow.commit()
        done = uow.releases.get(release_id)
    assert done is not None
    return WithdrawResult(done, was_signed and key is not None, was_signed and key is None)


def sign_targets(ctx: Context, *, key_file: Path | None, actor: str) -> int:
    """Re-sign the targets metadata from the releases in force (after withdrawals made
    without the key, or before the targets metadata expires). Returns its new version."""
    key = ctx.trust.targets_key(key_file)
    with ctx.uow() as uow:
        audit.record(ctx, uow, actor=actor, action="tuf.sign_targets", subject="tuf:targets")
        version = _publish(ctx, uow, key)
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
    with ctx.uow() as uow:
        audit.record(ctx, uow, actor=actor, action="tuf.rotate", subject=f"tuf:{role}")
        version = ctx.trust.rotate(
            role,
            now=ctx.clock(),
            root_key_files=root_key_files,
            targets=_target_specs(uow),
            keys_out=keys_out,
        )
        uow.commit()
    return version


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
