"""Artifacts in an S3-compatible store (docs/storage.md), against moto's real S3 server on
a loopback port: content-addressed multipart uploads, downloads by redirect (followed by a
real HTTP client) and by stream with ``Range``, a lost object and an unreachable store
answered clearly and logged as an alert, and the retention rule of docs/compliance.md."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from patchgate.adapters.s3_store import PART_BYTES, S3ArtifactStore
from patchgate.domain.errors import TooLarge, Unavailable
from patchgate.services import actions, devices, releases
from tests.s3_support import S3, S3Env, make_s3_env, s3_server
from tests.support import DatabaseFactory, LiveServer, free_port, run_cli

__all__ = ["s3_server"]

# Over one multipart part, so the upload test takes the multipart path.
LARGE = hashlib.sha256(b"s3 large").digest() * ((PART_BYTES + 1536 * 1024) // 32)
LARGE_SHA256 = hashlib.sha256(LARGE).hexdigest()
# What the download tests serve (a plain PutObject).
PAYLOAD = hashlib.sha256(b"s3 seed").digest() * (1536 * 1024 // 32)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Served:
    env: S3Env
    server: LiveServer
    tuf_url: str
    ddi_url: str
    token: str
    release_id: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"TargetToken {self.token}"}


def _release(env: S3Env, version: str, payload: bytes, name: str = "big.img") -> int:
    release = releases.create_release(
        env.ctx,
        product="Demo Gateway",
        version=version,
        artifacts=[
            releases.ArtifactUpload(
                name, [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
            )
        ],
        actor="test",
        security_version=1,
        hardware=["demo-gw-1"],
    )
    return release.id


def _serve(env: S3Env, tmp_path: Path) -> Served:
    release_id = _release(env, "3.0.0", PAYLOAD)
    release = releases.get_release(env.ctx, release_id)
    device = devices.add_device(
        env.ctx, "s3-1", hardware="demo-gw-1", version="1.0.0", actor="test"
    )
    actions.assign(env.ctx, "s3-1", release_id, actor="test")
    module = release.artifacts[0].id
    server = LiveServer(env.vars, tmp_path / "server.log").start(timeout=90)
    return Served(
        env,
        server,
        f"{server.url}/tuf/targets/{release.artifacts[0].tuf_target}",
        f"{server.url}/DEFAULT/controller/v1/s3-1/softwaremodules/{module}/artifacts/big.img",
        device.token,
        release_id,
    )


@pytest.fixture(params=["redirect", "stream"])
def served(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    databases: DatabaseFactory,
    s3_server: S3,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    env = make_s3_env(tmp_path, databases, "sqlite", s3_server, monkeypatch, delivery=request.param)
    made = _serve(env, tmp_path)
    yield made
    made.server.stop()
    env.app.close()


@pytest.fixture
def s3_env(
    tmp_path: Path,
    databases: DatabaseFactory,
    backend: str,
    s3_server: S3,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[S3Env]:
    env = make_s3_env(tmp_path, databases, backend, s3_server, monkeypatch)
    yield env
    env.app.close()
    databases.drop(env.database_url)


def _alerts(server: LiveServer) -> list[str]:
    return [line for line in server.log_path.read_text().splitlines() if "ALERT" in line]


def test_an_upload_is_stored_once_under_its_sha256_and_leaves_nothing_else(
    s3_env: S3Env,
) -> None:
    first = _release(s3_env, "3.0.0", LARGE)
    second = _release(s3_env, "3.0.1", LARGE, name="same-bytes.img")
    prefix = "fleet/sha256/"
    stored = [k for k in s3_env.s3.keys(s3_env.bucket) if k.startswith(prefix)]
    assert f"{prefix}{LARGE_SHA256[:2]}/{LARGE_SHA256}" in stored
    # Both releases name one object; no temporary upload or multipart upload is left.
    assert len([k for k in stored if k.endswith(LARGE_SHA256)]) == 1
    assert not [k for k in s3_env.s3.keys(s3_env.bucket) if "/incoming/" in k]
    uploads = s3_env.s3.client.list_multipart_uploads(Bucket=s3_env.bucket)
    assert not uploads.get("Uploads")
    body = s3_env.s3.client.get_object(
        Bucket=s3_env.bucket, Key=f"{prefix}{LARGE_SHA256[:2]}/{LARGE_SHA256}"
    )
    assert hashlib.sha256(body["Body"].read()).hexdigest() == LARGE_SHA256
    for release_id in (first, second):
        artifact = releases.get_release(s3_env.ctx, release_id).artifacts[0]
        assert (artifact.sha256, artifact.size) == (LARGE_SHA256, len(LARGE))


def test_a_release_too_large_for_the_limit_leaves_no_object(s3_env: S3Env) -> None:
    store = s3_env.ctx.artifacts
    assert isinstance(store, S3ArtifactStore)
    before = s3_env.s3.keys(s3_env.bucket)
    # In 1 MiB chunks: a multipart upload is under way when the limit is passed.
    chunks = (LARGE[i : i + 2**20] for i in range(0, len(LARGE), 2**20))
    with pytest.raises(TooLarge, match="over the limit"):
        store.put_stream(chunks, max_bytes=len(LARGE) - 1)
    assert s3_env.s3.keys(s3_env.bucket) == before
    assert not s3_env.s3.client.list_multipart_uploads(Bucket=s3_env.bucket).get("Uploads")


def test_downloads_answer_ranges_through_the_store(served: Served) -> None:
    delivery = served.env.vars["PATCHGATE_ARTIFACT_DELIVERY"]
    with httpx.Client(timeout=30) as client:
        for url, headers in ((served.tuf_url, {}), (served.ddi_url, served.auth)):
            first = client.get(url, headers={**headers, "Range": "bytes=100-4195"})
            if delivery == "redirect":
                assert first.status_code == 307
                location = first.headers["location"]
                assert location.startswith(served.env.s3.endpoint)
                assert "X-Amz-Expires=120" in location
            else:
                assert first.status_code == 206
            ranged = client.get(
                url, headers={**headers, "Range": "bytes=100-4195"}, follow_redirects=True
            )
            assert ranged.status_code == 206
            assert ranged.content == PAYLOAD[100:4196]
            assert ranged.headers["content-range"] == f"bytes 100-4195/{len(PAYLOAD)}"
            tail = client.get(url, headers={**headers, "Range": "bytes=-10"}, follow_redirects=True)
            assert tail.content == PAYLOAD[-10:]
            whole = client.get(url, headers=headers, follow_redirects=True)
            assert whole.status_code == 200
            assert hashlib.sha256(whole.content).hexdigest() == SHA256
            same = client.get(url, headers={**headers, "If-None-Match": f'"{SHA256}"'})
            assert same.status_code == 304
            head = client.head(url, headers=headers)
            assert head.status_code == 200
            assert head.headers["content-length"] == str(len(PAYLOAD))
            assert head.headers["etag"] == f'"{SHA256}"'
        # The token is checked before any link to the store is given out.
        refused = client.get(served.ddi_url, headers={"Authorization": "TargetToken wrong"})
        assert refused.status_code == 401
        assert "location" not in refused.headers
    assert _alerts(served.server) == []


def test_a_withdrawn_release_is_not_redirected_to(served: Served) -> None:
    releases.withdraw_release(served.env.ctx, served.release_id, reason="bad", actor="test")
    answer = httpx.get(served.tuf_url, timeout=10)
    assert answer.status_code == 404
    assert "location" not in answer.headers


def test_an_object_lost_from_the_bucket_is_a_404_and_an_alert(served: Served) -> None:
    bucket = served.env.bucket
    served.env.s3.client.delete_object(Bucket=bucket, Key=f"fleet/sha256/{SHA256[:2]}/{SHA256}")
    with httpx.Client(timeout=30) as client:
        # Past the server's short memory of objects it has seen (none yet: fresh server).
        for url, headers in ((served.tuf_url, {}), (served.ddi_url, served.auth)):
            lost = client.get(url, headers=headers)
            assert lost.status_code == 404
            assert "missing from the store" in lost.text
            assert "location" not in lost.headers
    alerts = _alerts(served.server)
    assert alerts
    assert SHA256 in alerts[0]


def test_an_unreachable_store_refuses_uploads_in_one_line_and_downloads_with_502(
    tmp_path: Path,
    databases: DatabaseFactory,
    s3_server: S3,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = make_s3_env(tmp_path, databases, "sqlite", s3_server, monkeypatch, delivery="stream")
    made = _serve(env, tmp_path)
    made.server.stop()
    closed = f"http://127.0.0.1:{free_port()}"
    down = {**env.vars, "AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1"}
    artifact = tmp_path / "next.img"
    artifact.write_bytes(b"next" * 1000)
    result = run_cli(
        ["release", "create", "Demo Gateway", "4.0.0", "--artifact", str(artifact)], down
    )
    assert result.code == 1
    # One line says why (the upload's progress bar shares the terminal).
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1
    assert lines[0].startswith("error: the artifact store s3://")
    assert "unreachable" in lines[0]
    assert "Traceback" not in result.stderr
    server = LiveServer(down, tmp_path / "down.log").start(timeout=90)
    try:
        for url, headers in ((made.tuf_url, {}), (made.ddi_url, made.auth)):
            url = url.replace(made.server.url, server.url)
            answer = httpx.get(url, headers=headers, timeout=60)
            assert answer.status_code == 502
            assert "unreachable" in answer.text
        assert _alerts(server)
    finally:
        server.stop()
        env.app.close()


def test_wrong_credentials_are_a_clear_refusal(s3_env: S3Env) -> None:
    store = s3_env.ctx.artifacts
    assert isinstance(store, S3ArtifactStore)
    missing_bucket = S3ArtifactStore("no-such-bucket-here", "x/", client=store.client)
    with pytest.raises(Unavailable, match="refused the upload"):
        missing_bucket.put_stream([b"bytes"], max_bytes=100)


def test_withdrawn_and_superseded_artifacts_stay_in_the_bucket(s3_env: S3Env) -> None:
    old = _release(s3_env, "3.0.0", PAYLOAD)
    newer_payload = b"newer" * 4096
    _release(s3_env, "3.0.1", newer_payload)
    releases.withdraw_release(s3_env.ctx, old, reason="superseded and withdrawn", actor="test")
    # A refused upload leaves an unused blob: the sweep removes that one only.
    store = s3_env.ctx.artifacts
    stray = store.put_stream([b"refused upload"], max_bytes=1000)
    removed = releases.sweep_unused_blobs(s3_env.ctx, older_than_seconds=0)
    assert removed == 1
    assert not store.exists(stray.sha256)
    assert store.exists(SHA256)
    assert store.exists(hashlib.sha256(newer_payload).hexdigest())


def test_a_native_signature_is_checked_on_a_copy_from_the_bucket(
    s3_env: S3Env, tmp_path: Path
) -> None:
    certificate = tmp_path / "swu-ca.pem"
    certificate.write_text("not a certificate")
    bundle = tmp_path / "update.swu"
    bundle.write_bytes(b"this is no cpio archive" * 10)
    result = run_cli(
        ["release", "create", "Demo Gateway", "5.0.0", "--artifact", str(bundle)],
        {**s3_env.vars, "PATCHGATE_SWU_CERT": str(certificate)},
    )
    # Refused by the SWUpdate check, which read the bytes back from the bucket.
    assert result.code == 2
    assert "not a cpio (newc) archive" in result.stderr
