"""The `tuf` library's own client against a running patchgate server.

Each client starts from the root metadata only (as a device provisioned with
``--trusted-root``) and must either download a verified artifact or fail with the library's
specific error when the repository or a mirror misbehaves.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import (
    BadVersionNumberError,
    ExpiredMetadataError,
    LengthOrHashMismatchError,
    UnsignedMetadataError,
)
from tuf.ngclient import Updater

from patchgate.adapters.tuf_repo import FileTrustRepository
from patchgate.domain.clock import utcnow
from patchgate.services import releases
from patchgate.services.setup import demo_artifact
from tests.conftest import Env
from tests.support import LiveServer

DEMO_TARGET = "demo-gateway/1.0.1/demo-gw-1-1.0.1.img"


@pytest.fixture
def tuf_server(sqlite_env: Env, tmp_path: Path) -> Iterator[LiveServer]:
    """A server over the demo installation, with automatic re-signing off so a test can
    put stale metadata in place (as a frozen mirror would)."""
    srv = LiveServer(
        {**sqlite_env.vars, "PATCHGATE_TUF_REFRESH": "0"}, tmp_path / "server.log"
    ).start()
    yield srv
    srv.stop()


def _updater(env: Env, server: LiveServer, client_dir: Path) -> Updater:
    """A TUF client that trusts nothing but the root the device was provisioned with."""
    metadata_dir = client_dir / "metadata"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    (client_dir / "targets").mkdir(exist_ok=True)
    root = (env.data_dir / "tuf" / "metadata" / "1.root.json").read_bytes()
    return Updater(
        metadata_dir=str(metadata_dir),
        metadata_base_url=f"{server.url}/tuf/metadata/",
        target_dir=str(client_dir / "targets"),
        target_base_url=f"{server.url}/tuf/targets/",
        bootstrap=root,
    )


def _repo(env: Env) -> FileTrustRepository:
    assert isinstance(env.ctx.trust, FileTrustRepository)
    return env.ctx.trust


def test_the_tuf_client_bootstrapped_with_root_downloads_the_demo_release(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    updater = _updater(sqlite_env, tuf_server, tmp_path / "client")
    updater.refresh()
    info = updater.get_targetinfo(DEMO_TARGET)
    assert info is not None
    assert info.custom == {
        "product": "Demo Gateway",
        "version": "1.0.1",
        "security_version": 1,
        "hardware": ["demo-gw-1"],
        "release_id": 1,
        "type": "security",
        "security_floor": 0,
    }
    path = updater.download_target(info)
    assert Path(path).read_bytes() == demo_artifact()


def test_the_tuf_client_refuses_artifact_bytes_changed_in_the_store(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    sha256 = hashlib.sha256(demo_artifact()).hexdigest()
    blob = sqlite_env.data_dir / "artifacts" / "sha256" / sha256[:2] / sha256
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF  # same length, different bytes
    blob.write_bytes(bytes(data))
    updater = _updater(sqlite_env, tuf_server, tmp_path / "client")
    updater.refresh()
    info = updater.get_targetinfo(DEMO_TARGET)
    assert info is not None
    with pytest.raises(LengthOrHashMismatchError):
        updater.download_target(info)


def _new_release(env: Env, version: str) -> None:
    releases.create_release(
        env.ctx,
        product="Demo Gateway",
        version=version,
        artifacts=[releases.ArtifactUpload(f"fw-{version}.img", [version.encode() * 100])],
        actor="test",
        security_version=1,
    )


def test_the_tuf_client_refuses_an_older_timestamp_than_it_has_seen(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    metadata = sqlite_env.data_dir / "tuf" / "metadata"
    old_timestamp = (metadata / "timestamp.json").read_bytes()
    _new_release(sqlite_env, "1.0.2")
    _updater(sqlite_env, tuf_server, tmp_path / "client").refresh()
    (metadata / "timestamp.json").write_bytes(old_timestamp)
    with pytest.raises(BadVersionNumberError):
        _updater(sqlite_env, tuf_server, tmp_path / "client").refresh()


def test_the_tuf_client_refuses_an_older_snapshot_than_the_timestamp_names(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    metadata = sqlite_env.data_dir / "tuf" / "metadata"
    old_version = _repo(sqlite_env).snapshot().signed.version
    _updater(sqlite_env, tuf_server, tmp_path / "client").refresh()
    _new_release(sqlite_env, "1.0.2")
    new_version = _repo(sqlite_env).snapshot().signed.version
    assert new_version > old_version
    # A mirror answers the new snapshot's URL with the old snapshot.
    shutil.copyfile(
        metadata / f"{old_version}.snapshot.json", metadata / f"{new_version}.snapshot.json"
    )
    with pytest.raises(BadVersionNumberError):
        _updater(sqlite_env, tuf_server, tmp_path / "client").refresh()


def test_the_tuf_client_refuses_an_expired_timestamp(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    # Signed properly, but two days ago with a one-day expiry: a frozen repository.
    _repo(sqlite_env).refresh_online(utcnow() - timedelta(days=2), force=True)
    with pytest.raises(ExpiredMetadataError):
        _updater(sqlite_env, tuf_server, tmp_path / "client").refresh()


def test_the_tuf_client_refuses_targets_signed_by_a_key_root_does_not_trust(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    repo = _repo(sqlite_env)
    current = repo.targets().signed
    rogue = CryptoSigner.generate_ed25519()
    specs = [
        releases.TargetSpec(t.path, t.length, t.hashes["sha256"], t.custom)
        for t in current.targets.values()
    ]
    repo.publish_targets_with(specs, rogue, utcnow())
    with pytest.raises(UnsignedMetadataError):
        _updater(sqlite_env, tuf_server, tmp_path / "client").refresh()


def test_a_server_started_over_a_timestamp_close_to_expiry_re_signs_it_before_serving(
    sqlite_env: Env, tmp_path: Path
) -> None:
    repo = _repo(sqlite_env)
    repo.refresh_online(utcnow() - timedelta(hours=20), force=True)  # 4 hours left
    before = repo.timestamp().signed
    # The refresher's start-up pass re-signs it; its next pass is hours away.
    srv = LiveServer(
        {**sqlite_env.vars, "PATCHGATE_TUF_REFRESH": "86400"}, tmp_path / "server.log"
    ).start()
    try:
        updater = _updater(sqlite_env, srv, tmp_path / "client")
        updater.refresh()
    finally:
        srv.stop()
    after = repo.timestamp().signed
    assert after.version > before.version
    assert after.expires - utcnow() > timedelta(hours=23)
    served = updater._trusted_set.timestamp
    assert (served.version, served.expires) == (after.version, after.expires)


def test_the_background_refresher_re_signs_the_timestamp_before_it_expires(
    sqlite_env: Env, tmp_path: Path
) -> None:
    import time

    repo = _repo(sqlite_env)
    repo.refresh_online(utcnow() - timedelta(hours=20), force=True)
    before = repo.timestamp().signed.version
    srv = LiveServer(
        {**sqlite_env.vars, "PATCHGATE_TUF_REFRESH": "0.2"}, tmp_path / "server.log"
    ).start()
    try:
        deadline = time.monotonic() + 10
        while repo.timestamp().signed.version == before and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        srv.stop()
    assert repo.timestamp().signed.version > before
    assert repo.timestamp().signed.expires - utcnow() > timedelta(hours=23)


def test_the_refresher_checks_at_least_four_times_per_timestamp_lifetime(
    sqlite_env: Env, tmp_path: Path
) -> None:
    """A refresh interval longer than the timestamp lifetime is cut to a quarter of it
    (30 s here: a pass every 7.5 s), so a short-lived timestamp is re-signed in time by
    the thread, not only by the start-up pass."""
    import time

    repo = _repo(sqlite_env)
    lifetime = repo.expiry["timestamp"]
    repo.refresh_online(utcnow() - lifetime + timedelta(seconds=20), force=True)  # 20 s left
    srv = LiveServer(
        {
            **sqlite_env.vars,
            "PATCHGATE_TUF_TIMESTAMP_EXPIRY": "30",
            "PATCHGATE_TUF_REFRESH": "3600",
        },
        tmp_path / "server.log",
    ).start()
    try:
        after_start = repo.timestamp().signed.version
        deadline = time.monotonic() + 30
        while repo.timestamp().signed.version == after_start and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        srv.stop()
    assert repo.timestamp().signed.version > after_start


def test_a_root_rotation_signed_by_old_and_new_keys_is_followed_by_the_client(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    client = tmp_path / "client"
    _updater(sqlite_env, tuf_server, client).refresh()
    assert sqlite_env.cli("keys", "rotate", "root").code == 0
    assert sqlite_env.cli("keys", "rotate", "timestamp").code == 0
    assert sqlite_env.cli("keys", "rotate", "targets").code == 0
    updater = _updater(sqlite_env, tuf_server, client)
    updater.refresh()
    assert updater._trusted_set.root.version == 4
    info = updater.get_targetinfo(DEMO_TARGET)
    assert info is not None
    assert Path(updater.download_target(info)).read_bytes() == demo_artifact()


def test_downloads_answer_head_ranges_etag_if_range_and_416(
    sqlite_env: Env, tuf_server: LiveServer
) -> None:
    data = demo_artifact()
    url = f"{tuf_server.url}/tuf/targets/{DEMO_TARGET}"
    with httpx.Client() as http:
        head = http.head(url)
        assert head.status_code == 200
        assert int(head.headers["content-length"]) == len(data)
        assert head.headers["accept-ranges"] == "bytes"
        etag = head.headers["etag"]
        assert etag == f'"{hashlib.sha256(data).hexdigest()}"'
        assert head.content == b""

        single = http.get(url, headers={"Range": "bytes=10-19"})
        assert single.status_code == 206
        assert single.content == data[10:20]
        assert single.headers["content-range"] == f"bytes 10-19/{len(data)}"

        multi = http.get(url, headers={"Range": "bytes=0-4,100-109"})
        assert multi.status_code == 206
        assert multi.headers["content-type"].startswith("multipart/byteranges")
        assert data[0:5] in multi.content
        assert data[100:110] in multi.content

        stale = http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200
        assert stale.content == data

        unsatisfiable = http.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"

        cached = http.get(url, headers={"If-None-Match": etag})
        assert cached.status_code == 304

        missing = http.get(f"{tuf_server.url}/tuf/targets/demo-gateway/9.9/none.img")
        assert missing.status_code == 404


def test_a_download_interrupted_half_way_and_resumed_gives_the_same_sha256(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    releases.create_release(
        sqlite_env.ctx,
        product="Demo Gateway",
        version="2.0.0",
        artifacts=[releases.ArtifactUpload("big.img", [payload])],
        actor="test",
        security_version=1,
    )
    url = f"{tuf_server.url}/tuf/targets/demo-gateway/2.0.0/big.img"
    part = tmp_path / "big.img.part"
    with httpx.Client() as http:
        with http.stream("GET", url) as response:
            etag = response.headers["etag"]
            with part.open("wb") as out:
                for chunk in response.iter_bytes(64 * 1024):
                    out.write(chunk)
                    if out.tell() >= len(payload) // 2:
                        break  # the connection drops here
        have = part.stat().st_size
        assert 0 < have < len(payload)
        rest = http.get(url, headers={"Range": f"bytes={have}-", "If-Range": etag})
        assert rest.status_code == 206
        with part.open("ab") as out:
            out.write(rest.content)
    assert hashlib.sha256(part.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_a_withdrawn_release_leaves_the_targets_and_is_not_served(
    sqlite_env: Env, tuf_server: LiveServer, tmp_path: Path
) -> None:
    result = sqlite_env.cli("release", "withdraw", "1", "--reason", "bricks on rev B boards")
    assert result.code == 0, result.stderr
    updater = _updater(sqlite_env, tuf_server, tmp_path / "client")
    updater.refresh()
    assert updater.get_targetinfo(DEMO_TARGET) is None
    assert httpx.get(f"{tuf_server.url}/tuf/targets/{DEMO_TARGET}").status_code == 404


def test_healthz_and_release_show_say_trust_lab_while_the_offline_keys_are_present(
    sqlite_env: Env, tuf_server: LiveServer
) -> None:
    assert httpx.get(f"{tuf_server.url}/healthz").json()["trust"] == "lab"
    shown = sqlite_env.cli("release", "show", "1")
    assert "trust: lab" in shown.stdout
    shutil.move(sqlite_env.data_dir / "offline-keys", sqlite_env.data_dir.parent / "vault")
    assert httpx.get(f"{tuf_server.url}/healthz").json()["trust"] == "production"
    assert sqlite_env.cli("release", "show", "1", "--json").json()["trust"] == "production"
