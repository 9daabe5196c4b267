"""RAUC bundles checked whole at upload, with real bundles built by Debian's ``rauc`` and
signed under a throwaway CA: the signature chain to the keyring, the payload (a flipped
byte in a ``verity`` bundle passes ``rauc info`` but not the check), the manifest's
``compatible`` against the release's hardware; on both database backends, through the CLI
and the management API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from patchgate.adapters.tuf_repo import FileTrustRepository
from tests.conftest import Env
from tests.rauc_bundles import HAVE_RAUC, TestCA, build_bundle, encrypt_bundle, flip_payload_byte
from tests.support import PG_ADMIN_URL, CliResult, LiveServer, run_cli

# Required, like PostgreSQL, when the suite runs as `make test` does (which installs them).
pytestmark = pytest.mark.skipif(
    not HAVE_RAUC and not PG_ADMIN_URL, reason="needs rauc and squashfs-tools"
)

FORMATS = ["plain", "verity"]


@dataclass(frozen=True)
class Bundles:
    """Bundles of one format: a good one and one per refused case."""

    keyring: Path
    good: bytes
    newer_manifest: bytes  # good, but its manifest says another version
    refused: dict[str, tuple[bytes, str]]  # case: (bytes, what the refusal must say)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundles]:
    folder = tmp_path_factory.mktemp("rauc")
    ca = TestCA(folder / "ca")
    signer = ca.issue("release signer")
    expired = ca.issue("retired signer", expired=True)
    foreign = TestCA(folder / "foreign", "Someone Else").issue("intruder")
    made: dict[str, Bundles] = {}
    for fmt in FORMATS:
        good = build_bundle(folder, signer, bundle_format=fmt)
        made[fmt] = Bundles(
            keyring=ca.keyring,
            good=good,
            newer_manifest=build_bundle(folder, signer, bundle_format=fmt, version="1.2.1"),
            refused={
                "foreign signer": (
                    build_bundle(folder, foreign, bundle_format=fmt),
                    "its signer is not trusted by the configured keyring",
                ),
                "expired signer": (
                    build_bundle(folder, expired, bundle_format=fmt),
                    "the signer's certificate has expired",
                ),
                "corrupted payload": (
                    flip_payload_byte(good),
                    "changed or corrupted" if fmt == "plain" else "its payload is corrupted",
                ),
                "truncated": (good[: len(good) // 2], "truncated or damaged"),
                "other compatible": (
                    build_bundle(folder, signer, bundle_format=fmt, compatible="other-board"),
                    "it is for compatible 'other-board', not for this release's hardware "
                    "(demo-gw-1)",
                ),
                "not a bundle": (b"#!/bin/sh\necho not a bundle\n" * 200, "not a RAUC bundle"),
            },
        )
    return made


def _targets(env: Env) -> dict[str, object]:
    assert isinstance(env.ctx.trust, FileTrustRepository)
    return dict(env.ctx.trust.targets().signed.targets)


def _create(
    env: Env,
    tmp_path: Path,
    data: bytes,
    keyring: Path | None,
    *args: str,
    version: str = "1.2.0",
) -> CliResult:
    bundle = tmp_path / "update.raucb"
    bundle.write_bytes(data)
    extra = {"PATCHGATE_RAUC_KEYRING": str(keyring)} if keyring else {}
    return run_cli(
        ["release", "create", "Demo Gateway", version, "--artifact", str(bundle), *args],
        {**env.vars, **extra},
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bundle_signed_under_the_keyring_is_verified_whole_and_recorded(
    demo_env: Env, tmp_path: Path, bundles: dict[str, Bundles], fmt: str
) -> None:
    made = bundles[fmt]
    created = _create(demo_env, tmp_path, made.good, made.keyring, "--json")
    assert created.code == 0, created.stderr
    body = created.json()
    native = body["artifacts"][0]["native"]
    assert native == {
        "kind": "rauc",
        "signature_verified": True,
        "payload_verified": True,
        "format": fmt,
        "signer": "O = patchgate tests, CN = release signer",
        "compatible": "demo-gw-1",
        "version": "1.2.0",
        "version_matches": True,
    }
    assert "bundle_version_mismatch" not in body["flags"]
    assert not list((demo_env.data_dir / "tmp").glob("patchgate-rauc-*"))
    assert body["artifacts"][0]["tuf_target"] in _targets(demo_env)
    shown = demo_env.cli("release", "show", str(body["id"]))
    assert shown.code == 0, shown.stderr
    assert (
        f"RAUC bundle ({fmt}): signed by O = patchgate tests, CN = release signer, "
        "compatible demo-gw-1, version 1.2.0; signature and payload verified" in shown.stdout
    )
    assert "flagged" not in shown.stdout.replace("none (flagged)", "")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "case",
    [
        "foreign signer",
        "expired signer",
        "corrupted payload",
        "truncated",
        "other compatible",
        "not a bundle",
    ],
)
def test_a_bad_bundle_is_refused_naming_the_reason_and_nothing_is_stored(
    demo_env: Env, tmp_path: Path, bundles: dict[str, Bundles], fmt: str, case: str
) -> None:
    made = bundles[fmt]
    data, reason = made.refused[case]
    targets = _targets(demo_env)
    before = demo_env.cli("release", "list", "--json").json()["releases"]
    refused = _create(demo_env, tmp_path, data, made.keyring)
    assert refused.code == 2, refused.stderr
    # One error line (beside the upload's progress bar) naming the file and the reason.
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, refused.stderr
    assert errors[0].startswith("error: update.raucb: RAUC bundle refused: "), errors
    assert reason in errors[0], errors
    assert "Traceback" not in refused.stderr
    assert demo_env.cli("release", "list", "--json").json()["releases"] == before
    assert _targets(demo_env) == targets
    with demo_env.ctx.read_uow() as uow:
        assert all(r.version != "1.2.0" for r in uow.releases.list())
    # The temporary folder of the check is gone.
    assert not list((demo_env.data_dir / "tmp").glob("patchgate-rauc-*"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bundle_whose_manifest_names_another_version_is_flagged(
    demo_env: Env, tmp_path: Path, bundles: dict[str, Bundles], fmt: str
) -> None:
    made = bundles[fmt]
    created = _create(demo_env, tmp_path, made.newer_manifest, made.keyring, "--json")
    assert created.code == 0, created.stderr
    body = created.json()
    assert body["flags"]["bundle_version_mismatch"] == ["update.raucb"]
    assert body["artifacts"][0]["native"]["version_matches"] is False
    shown = demo_env.cli("release", "show", str(body["id"]))
    assert "flagged: the bundle says version 1.2.1, the release is 1.2.0" in shown.stdout


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_a_keyring_a_bundle_is_read_for_compatible_and_version_only(
    sqlite_env: Env, tmp_path: Path, bundles: dict[str, Bundles], fmt: str
) -> None:
    made = bundles[fmt]
    other, _ = made.refused["other compatible"]
    refused = _create(sqlite_env, tmp_path, other, None)
    assert refused.code == 2
    assert "it is for compatible 'other-board'" in refused.stderr
    # Signed by a stranger: without a keyring no claim is made about the signer.
    foreign, _ = made.refused["foreign signer"]
    created = _create(sqlite_env, tmp_path, foreign, None, "--json")
    assert created.code == 0, created.stderr
    native = created.json()["artifacts"][0]["native"]
    assert native["signature_verified"] is False
    assert native["payload_verified"] is False
    assert native["signer"] is None
    assert (native["format"], native["compatible"], native["version"]) == (
        fmt,
        "demo-gw-1",
        "1.2.0",
    )
    shown = sqlite_env.cli("release", "show", str(created.json()["id"]))
    assert "signature not checked (no keyring configured)" in shown.stdout


def test_a_crypt_bundle_is_verified_whole_until_encrypted_then_refused_naming_why(
    sqlite_env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    ca = TestCA(tmp_path / "ca")
    signer = ca.issue("release signer")
    crypt = build_bundle(tmp_path, signer, bundle_format="crypt")
    created = _create(sqlite_env, tmp_path, crypt, ca.keyring, "--json")
    assert created.code == 0, created.stderr
    native = created.json()["artifacts"][0]["native"]
    assert (native["format"], native["payload_verified"]) == ("crypt", True)
    # rauc decrypts a crypt bundle into a temporary file: it goes with the check's folder.
    assert not list((sqlite_env.data_dir / "tmp").glob("patchgate-rauc-*"))
    assert not list(system_tmp.iterdir())
    sealed = encrypt_bundle(tmp_path, crypt, ca.keyring, ca.issue("device 0001"))
    refused = _create(sqlite_env, tmp_path, sealed, ca.keyring, version="1.2.1")
    assert refused.code == 2, refused.stderr
    assert "update.raucb: RAUC bundle refused: it is encrypted for devices" in refused.stderr


@pytest.fixture
def keyring_server(
    demo_env: Env, tmp_path: Path, bundles: dict[str, Bundles]
) -> Iterator[LiveServer]:
    srv = LiveServer(
        {**demo_env.vars, "PATCHGATE_RAUC_KEYRING": str(bundles["verity"].keyring)},
        tmp_path / "server.log",
    ).start()
    yield srv
    srv.stop()


def test_the_api_answers_422_naming_the_reason_and_201_for_a_good_bundle(
    demo_env: Env, keyring_server: LiveServer, bundles: dict[str, Bundles]
) -> None:
    made = bundles["verity"]
    form = {"product": "Demo Gateway", "version": "1.2.0", "hardware": "demo-gw-1"}
    with keyring_server.client(demo_env.admin_token) as http:
        corrupted, _ = made.refused["corrupted payload"]
        refused = http.post(
            "/api/v1/releases",
            data=form,
            files=[("artifact", ("update.raucb", corrupted, "application/octet-stream"))],
        )
        assert refused.status_code == 422, refused.text
        assert (
            "update.raucb: RAUC bundle refused: its payload is corrupted"
            in (refused.json()["message"])
        )
        created = http.post(
            "/api/v1/releases",
            data=form,
            files=[("artifact", ("update.raucb", made.good, "application/octet-stream"))],
        )
        assert created.status_code == 201, created.text
        native = created.json()["artifacts"][0]["native"]
        assert native["payload_verified"] is True
        assert native["format"] == "verity"
        shown = http.get(f"/api/v1/releases/{created.json()['id']}").json()
        assert shown["artifacts"][0]["native"] == native
