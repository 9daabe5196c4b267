"""Releases on a real database (SQLite and PostgreSQL) and a real artifact store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchgate.adapters.tuf_repo import FileTrustRepository
from patchgate.domain.errors import Conflict, InvalidInput, NotFound, TooLarge
from patchgate.services import releases
from tests import vuln_views as vulns
from tests.conftest import Env

HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N"

VALID_SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "components": [{"type": "library", "name": "openssl", "version": "3.0.13"}],
}


def _create(env: Env, version: str = "1.0.2", **kwargs: object) -> releases.ReleaseRecord:
    args: dict[str, object] = {
        "product": "Demo Gateway",
        "version": version,
        "artifacts": [releases.ArtifactUpload("fw.img", [b"firmware " + version.encode()])],
        "actor": "test",
        "security_version": 1,
    }
    args.update(kwargs)
    return releases.create_release(env.ctx, **args)  # type: ignore[arg-type]


def _blobs(env: Env) -> list[Path]:
    root = env.data_dir / "artifacts"
    return sorted(p for p in root.rglob("*") if p.is_file())


def _left_unused_then_swept(env: Env, before: list[Path]) -> None:
    """What a refused upload leaves: blobs it stored, which no release uses (they are not
    deleted at once, see ``releases.create_release``), and which a sweep with no minimum
    age removes, leaving the store as it was."""
    left = [p for p in _blobs(env) if p not in before]
    assert left
    with env.ctx.read_uow() as uow:
        used = uow.releases.referenced_blobs()
    assert not {p.name for p in left} & used
    assert releases.sweep_unused_blobs(env.ctx, older_than_seconds=0) == len(left)
    assert _blobs(env) == before


def _targets(env: Env) -> set[str]:
    assert isinstance(env.ctx.trust, FileTrustRepository)
    return set(env.ctx.trust.targets().signed.targets)


def _register(env: Env, *vuln_ids: str) -> None:
    for vuln_id in vuln_ids:
        vulns.add(env.ctx, vuln_id=vuln_id, title="a flaw", cvss=HIGH, actor="test")


def test_a_release_in_lab_mode_is_signed_at_once_and_listed_in_the_targets(
    demo_env: Env,
) -> None:
    _register(demo_env, "CVE-2026-0001", "CVE-2026-0002")
    release = _create(demo_env, fixes=["CVE-2026-0001", "CVE-2026-0002"])
    assert release.state == "signed"
    assert release.fixes == ("CVE-2026-0001", "CVE-2026-0002")
    assert release.hardware == ("demo-gw-1",)
    artifact = release.artifacts[0]
    assert artifact.sha256 == hashlib.sha256(b"firmware 1.0.2").hexdigest()
    assert artifact.sha1 == hashlib.sha1(b"firmware 1.0.2").hexdigest()  # noqa: S324
    assert artifact.md5 == hashlib.md5(b"firmware 1.0.2").hexdigest()  # noqa: S324
    assert artifact.tuf_target == "demo-gateway/1.0.2/fw.img"
    assert artifact.tuf_target in _targets(demo_env)
    assert releases.require_installable(demo_env.ctx, release.id).id == release.id


def test_identical_content_is_stored_once(demo_env: Env) -> None:
    before = len(_blobs(demo_env))
    payload = [releases.ArtifactUpload("same.img", [b"identical bytes"])]
    _create(demo_env, "1.0.2", artifacts=payload)
    _create(demo_env, "1.0.3", artifacts=payload)
    assert len(_blobs(demo_env)) == before + 1


def test_offline_signing_leaves_a_release_unsigned_until_release_sign_with_the_targets_key(
    demo_env: Env,
) -> None:
    vault = demo_env.data_dir.parent / "vault"
    shutil.move(demo_env.data_dir / "offline-keys", vault)
    assert releases.trust_mode(demo_env.ctx) == "production"
    artifact = demo_env.data_dir.parent / "fw.img"
    artifact.write_bytes(b"offline signed firmware")
    created = demo_env.cli(
        "release", "create", "Demo Gateway", "1.1.0", "--artifact", str(artifact), "--json"
    )
    assert created.code == 0, created.stderr
    assert "upload fw.img" in created.stderr  # the progress bar
    body = created.json()
    assert body["state"] == "awaiting_signature"
    assert body["trust"] == "production"
    release_id = body["id"]
    assert body["artifacts"][0]["tuf_target"] not in _targets(demo_env)
    with pytest.raises(Conflict, match="no campaign can start for an unsigned release"):
        releases.require_installable(demo_env.ctx, release_id)

    assert isinstance(demo_env.ctx.trust, FileTrustRepository)
    targets_before = demo_env.ctx.trust.status().targets_version
    wrong = demo_env.cli("release", "sign", str(release_id), "--key", str(vault / "root-1.key"))
    assert wrong.code == 2
    assert "is not the targets key" in wrong.stderr
    # Refused before anything is written: no new metadata, the release still unsigned.
    assert demo_env.ctx.trust.status().targets_version == targets_before
    assert releases.get_release(demo_env.ctx, release_id).state == "awaiting_signature"

    signed = demo_env.cli(
        "release", "sign", str(release_id), "--key", str(vault / "targets.key"), "--json"
    )
    assert signed.code == 0, signed.stderr
    assert signed.json()["state"] == "signed"
    assert releases.require_installable(demo_env.ctx, release_id).state == "signed"
    assert body["artifacts"][0]["tuf_target"] in _targets(demo_env)


def test_a_withdrawn_release_is_refused_for_campaigns_and_leaves_the_targets(
    demo_env: Env,
) -> None:
    release = _create(demo_env)
    result = releases.withdraw_release(
        demo_env.ctx, release.id, reason="boot loop on rev B", actor="test"
    )
    assert result.targets_resigned
    assert release.artifacts[0].tuf_target not in _targets(demo_env)
    with pytest.raises(Conflict, match="withdrawn"):
        releases.require_installable(demo_env.ctx, release.id)
    with pytest.raises(Conflict, match="never be signed again"):
        releases.sign_release(demo_env.ctx, release.id, key_file=None, actor="test")
    with pytest.raises(NotFound):
        releases.require_installable(demo_env.ctx, 9999)


def test_a_security_version_below_the_products_floor_is_refused_with_the_reason(
    demo_env: Env,
) -> None:
    with demo_env.ctx.uow() as uow:
        releases.raise_floor(demo_env.ctx, uow, product="Demo Gateway", security_version=5)
        uow.commit()
    with pytest.raises(InvalidInput, match="below Demo Gateway's anti-rollback floor 5"):
        _create(demo_env, security_version=3)
    assert releases.security_floor(demo_env.ctx, "Demo Gateway") == 5
    _create(demo_env, "2.0.0", security_version=6)
    assert isinstance(demo_env.ctx.trust, FileTrustRepository)
    # In lab mode the raised floor reaches devices through re-signed targets metadata,
    # capped at each target's own security version.
    signed = demo_env.ctx.trust.targets().signed.targets
    assert signed["demo-gateway/2.0.0/fw.img"].custom["security_floor"] == 5
    assert signed["demo-gateway/1.0.1/demo-gw-1-1.0.1.img"].custom["security_floor"] == 1


@pytest.mark.parametrize(
    "name", ["../x", "/etc/x", "a/b.img", "a\\b.img", "fw\x07.img", "fw\n.img", "..", ""]
)
def test_an_artifact_name_with_a_path_or_control_characters_is_refused(
    sqlite_env: Env, name: str
) -> None:
    before = _blobs(sqlite_env)
    with pytest.raises(InvalidInput):
        _create(sqlite_env, artifacts=[releases.ArtifactUpload(name, [b"x"])])
    assert _blobs(sqlite_env) == before


def test_an_sbom_that_is_not_valid_cyclonedx_is_refused_with_the_validators_message(
    sqlite_env: Env,
) -> None:
    before = _blobs(sqlite_env)
    bad = {**VALID_SBOM, "version": "one"}
    with pytest.raises(InvalidInput, match=r"not valid CycloneDX 1\.5: .one. is not of type"):
        _create(sqlite_env, sbom=json.dumps(bad).encode())
    with pytest.raises(InvalidInput, match="not CycloneDX"):
        _create(sqlite_env, sbom=b'{"spdxVersion": "SPDX-2.3"}')
    assert releases.list_releases(sqlite_env.ctx, product="Demo Gateway")[0].version == "1.0.1"
    # Checked before any artifact byte is read: nothing was stored.
    assert _blobs(sqlite_env) == before


def test_the_sbom_is_validated_before_any_artifact_byte_is_read(demo_env: Env) -> None:
    read: list[int] = []

    def artifact() -> Iterator[bytes]:
        for _ in range(64):
            read.append(1)
            yield b"f" * 65536

    before = _blobs(demo_env)
    bad = json.dumps({**VALID_SBOM, "components": "none"}).encode()
    with pytest.raises(InvalidInput, match=r"the SBOM is not valid CycloneDX 1\.5"):
        _create(demo_env, artifacts=[releases.ArtifactUpload("fw.img", artifact())], sbom=bad)
    assert read == []
    assert _blobs(demo_env) == before


def test_fixes_naming_a_vulnerability_not_in_the_register_are_refused_and_nothing_is_stored(
    demo_env: Env, tmp_path: Path
) -> None:
    _register(demo_env, "CVE-2026-0001")
    artifact = tmp_path / "fw.img"
    artifact.write_bytes(b"firmware")
    before = _blobs(demo_env)
    create = ("release", "create", "Demo Gateway", "1.2.0", "--artifact", str(artifact))
    refused = demo_env.cli(*create, "--fixes", "CVE-2026-0001,CVE-2099-9999,GHSA-xxxx-yyyy-zzzz")
    assert refused.code == 2, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: vulnerability 'CVE-2099-9999' is not in the register; "
        "add or import it first (patchgate vuln add|import)",
        "error: vulnerability 'GHSA-xxxx-yyyy-zzzz' is not in the register; "
        "add or import it first (patchgate vuln add|import)",
    ]
    assert [r.version for r in releases.list_releases(demo_env.ctx)] == ["1.0.1"]
    assert _blobs(demo_env) == before
    created = demo_env.cli(*create, "--fixes", "cve-2026-0001", "--json")
    assert created.code == 0, created.stderr
    assert created.json()["fixes"] == ["CVE-2026-0001"]  # the register's spelling


@pytest.mark.parametrize("version", ["not.a.version", "banana", "x", "1.x", "v"])
def test_a_version_patchgate_cannot_order_is_refused_and_nothing_is_stored(
    demo_env: Env, tmp_path: Path, version: str
) -> None:
    artifact = tmp_path / "fw.img"
    artifact.write_bytes(b"firmware")
    before = _blobs(demo_env)
    refused = demo_env.cli(
        "release", "create", "Demo Gateway", version, "--artifact", str(artifact)
    )
    assert refused.code == 2, refused.stderr
    assert f"version {version!r} is not a version patchgate can order" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert [r.version for r in releases.list_releases(demo_env.ctx)] == ["1.0.1"]
    assert _blobs(demo_env) == before


def test_a_valid_sbom_is_stored_and_a_release_without_one_is_flagged(sqlite_env: Env) -> None:
    data = json.dumps(VALID_SBOM).encode()
    with_sbom = _create(sqlite_env, "1.0.2", sbom=data)
    assert with_sbom.sbom_sha256 == hashlib.sha256(data).hexdigest()
    _sha, path = releases.sbom_blob(sqlite_env.ctx, with_sbom.id)
    assert path is not None and path.read_bytes() == data
    assert "no_sbom" not in with_sbom.flags
    without = _create(sqlite_env, "1.0.3", update_type="combined")
    assert without.flags["no_sbom"] is True
    assert without.flags["combined_update"] is True


def _interrupted(chunks: int) -> Iterator[bytes]:
    for _ in range(chunks):
        yield b"z" * 65536
    raise ConnectionResetError("the client went away")


def test_an_interrupted_upload_leaves_no_partial_artifact_and_no_release_row(
    demo_env: Env,
) -> None:
    before = _blobs(demo_env)
    with pytest.raises(ConnectionResetError):
        _create(
            demo_env,
            artifacts=[
                releases.ArtifactUpload("ok.img", [b"a complete first artifact"]),
                releases.ArtifactUpload("cut.img", _interrupted(3)),
            ],
        )
    assert [r.version for r in releases.list_releases(demo_env.ctx)] == ["1.0.1"]
    # The complete first artifact stays, unused, until swept; nothing of the cut one.
    assert [p.name for p in _blobs(demo_env) if p not in before] == [
        hashlib.sha256(b"a complete first artifact").hexdigest()
    ]
    _left_unused_then_swept(demo_env, before)


def test_the_sweep_removes_only_blobs_no_release_uses_that_are_older_than_the_age(
    demo_env: Env,
) -> None:
    store = demo_env.ctx.artifacts
    used = _create(demo_env, "1.0.2").artifacts[0].sha256
    old_unused = store.put_stream([b"refused a while ago"], max_bytes=100).sha256
    new_unused = store.put_stream([b"refused just now"], max_bytes=100).sha256
    again = store.put_stream([b"refused, then uploaded again"], max_bytes=100).sha256
    an_hour_ago = time.time() - 3600
    for sha256 in (used, old_unused, again):
        path = store.local_path(sha256)
        assert path is not None
        os.utime(path, (an_hour_ago, an_hour_ago))
    # Another upload of the same bytes, its release not committed yet: the blob is fresh.
    store.put_stream([b"refused, then uploaded again"], max_bytes=100)
    assert releases.sweep_unused_blobs(demo_env.ctx, older_than_seconds=1800) == 1
    assert not store.exists(old_unused)
    assert store.exists(used) and store.exists(new_unused) and store.exists(again)
    assert releases.sweep_unused_blobs(demo_env.ctx, older_than_seconds=1800) == 0


def test_an_artifact_over_the_size_limit_is_refused_and_nothing_is_left(
    sqlite_env: Env,
) -> None:
    sqlite_env.ctx.max_artifact_bytes = 100_000
    before = _blobs(sqlite_env)
    with pytest.raises(TooLarge):
        _create(sqlite_env, artifacts=[releases.ArtifactUpload("big.img", [b"x" * 60_000] * 2)])
    assert _blobs(sqlite_env) == before


def test_the_cli_refuses_an_artifact_over_the_limit_with_exit_2(
    sqlite_env: Env, tmp_path: Path
) -> None:
    big = tmp_path / "big.img"
    big.write_bytes(b"x" * 5000)
    before = _blobs(sqlite_env)
    result = run_with_limit(sqlite_env, big, 4096)
    assert result.code == 2
    assert "over the limit of 4096 bytes" in result.stderr
    assert _blobs(sqlite_env) == before


def run_with_limit(env: Env, artifact: Path, limit: int):  # type: ignore[no-untyped-def]
    from tests.support import run_cli

    return run_cli(
        ["release", "create", "Demo Gateway", "3.0.0", "--artifact", str(artifact)],
        {**env.vars, "PATCHGATE_MAX_ARTIFACT_BYTES": str(limit)},
    )


def test_unknown_products_types_versions_and_hardware_are_refused_with_every_problem(
    sqlite_env: Env,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        releases.create_release(
            sqlite_env.ctx,
            product="Demo Gateway",
            version="1.0/../2",
            artifacts=[releases.ArtifactUpload("fw.img", [b"x"])],
            actor="test",
            update_type="bugfix",
            hardware=["other-board"],
        )
    problems = "\n".join(caught.value.problems)
    assert "version '1.0/../2'" in problems
    assert "update type 'bugfix'" in problems
    assert "hardware other-board is not a model of Demo Gateway" in problems
    with pytest.raises(InvalidInput, match="not in the policy"):
        _create(sqlite_env, product="Toaster")
    _create(sqlite_env, "1.0.2")
    with pytest.raises(Conflict, match="already exists"):
        _create(sqlite_env, "1.0.2")


def test_keys_init_is_idempotent_and_init_warns_about_the_offline_keys(sqlite_env: Env) -> None:
    first = sqlite_env.cli("keys", "init")
    assert first.code == 0
    assert "nothing: the TUF repository exists" in first.stdout
    assert "MOVE THEM TO OFFLINE STORAGE" in first.stderr
    again = sqlite_env.cli("init", "--demo")
    assert again.code == 0
    assert "MOVE THEM TO OFFLINE STORAGE" in again.stderr
    assert len(releases.list_releases(sqlite_env.ctx)) == 1


def test_a_withdrawal_without_the_targets_key_stops_downloads_at_once_and_sign_targets_drops_it(
    demo_env: Env,
) -> None:
    release = _create(demo_env)
    target = release.artifacts[0].tuf_target
    vault = demo_env.data_dir.parent / "vault"
    shutil.move(demo_env.data_dir / "offline-keys", vault)
    result = demo_env.cli("release", "withdraw", str(release.id), "--reason", "bad", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["still_in_targets"] is True
    assert target in _targets(demo_env)
    assert releases.downloadable(demo_env.ctx, target) is None
    resigned = demo_env.cli("keys", "sign-targets", "--key", str(vault / "targets.key"))
    assert resigned.code == 0, resigned.stderr
    assert target not in _targets(demo_env)
    assert "demo-gateway/1.0.1/demo-gw-1-1.0.1.img" in _targets(demo_env)


def test_withdrawing_an_unsigned_release_leaves_the_targets_metadata_alone(
    demo_env: Env,
) -> None:
    vault = demo_env.data_dir.parent / "vault"
    shutil.move(demo_env.data_dir / "offline-keys", vault)
    release = _create(demo_env)
    assert release.state == "awaiting_signature"
    assert isinstance(demo_env.ctx.trust, FileTrustRepository)
    before = demo_env.ctx.trust.status().targets_version
    result = releases.withdraw_release(
        demo_env.ctx,
        release.id,
        reason="never shipped",
        actor="test",
        key_file=vault / "targets.key",
    )
    assert result.release.state == "withdrawn"
    assert not result.targets_resigned
    assert not result.still_in_targets
    assert demo_env.ctx.trust.status().targets_version == before


def test_a_withdrawal_with_a_key_root_does_not_trust_withdraws_nothing(demo_env: Env) -> None:
    release = _create(demo_env)
    vault = demo_env.data_dir.parent / "vault"
    shutil.move(demo_env.data_dir / "offline-keys", vault)
    assert isinstance(demo_env.ctx.trust, FileTrustRepository)
    before = demo_env.ctx.trust.status().targets_version
    wrong = demo_env.cli(
        "release",
        "withdraw",
        str(release.id),
        "--reason",
        "bad",
        "--key",
        str(vault / "root-1.key"),
    )
    assert wrong.code == 2
    assert "is not the targets key" in wrong.stderr
    assert releases.get_release(demo_env.ctx, release.id).state == "signed"
    assert demo_env.ctx.trust.status().targets_version == before


def test_rotating_keys_needs_a_threshold_of_the_current_root_keys(sqlite_env: Env) -> None:
    offline = sqlite_env.data_dir / "offline-keys"
    one = sqlite_env.cli("keys", "rotate", "snapshot", "--root-key", str(offline / "root-1.key"))
    assert one.code == 2
    assert "needs 2 of the current root keys; 1 given" in one.stderr
    two = sqlite_env.cli(
        "keys",
        "rotate",
        "snapshot",
        "--root-key",
        str(offline / "root-1.key"),
        "--root-key",
        str(offline / "root-3.key"),
        "--json",
    )
    assert two.code == 0, two.stderr
    assert two.json()["root_version"] == 2
    unknown = sqlite_env.cli("keys", "rotate", "mirror")
    assert unknown.code == 2
    assert "unknown TUF role 'mirror'" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["release", "show", "99"], "no release 99"),
        (["release", "withdraw", "1"], "Missing option '--reason'"),
        (
            ["release", "create", "Demo Gateway", "1.0.9", "--artifact", "/nonexistent.img"],
            "cannot read artifact",
        ),
        (["release", "sign", "1", "--key", "/nonexistent.key"], "cannot read key file"),
        (["release", "sign", "1", "--key", "/etc/hostname"], "not an unencrypted PEM"),
    ],
)
def test_bad_release_commands_exit_2_with_one_readable_line(
    sqlite_env: Env, args: list[str], message: str
) -> None:
    result = sqlite_env.cli(*args)
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_rotating_the_targets_key_in_production_writes_the_new_key_where_asked(
    sqlite_env: Env,
) -> None:
    vault = sqlite_env.data_dir.parent / "vault"
    shutil.move(sqlite_env.data_dir / "offline-keys", vault)
    rotated = sqlite_env.cli(
        "keys",
        "rotate",
        "targets",
        "--root-key",
        str(vault / "root-1.key"),
        "--root-key",
        str(vault / "root-2.key"),
        "--out",
        str(vault),
    )
    assert rotated.code == 0, rotated.stderr
    assert releases.trust_mode(sqlite_env.ctx) == "production"
    assert isinstance(sqlite_env.ctx.trust, FileTrustRepository)
    targets = sqlite_env.ctx.trust.targets()
    assert "demo-gateway/1.0.1/demo-gw-1-1.0.1.img" in targets.signed.targets
    old = sqlite_env.cli("keys", "sign-targets", "--key", str(vault / "root-1.key"))
    assert old.code == 2
    new = sqlite_env.cli("keys", "sign-targets", "--key", str(vault / "targets.key"))
    assert new.code == 0, new.stderr
