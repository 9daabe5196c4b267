"""The management API's release endpoints on a running server: streamed multipart uploads,
limits, roles, the SBOM and withdrawal."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from patchgate.services import access, releases
from tests.conftest import Env
from tests.support import LiveServer

SBOM = json.dumps(
    {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": []}
).encode()


@pytest.fixture
def api_server(sqlite_env: Env, tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(
        {**sqlite_env.vars, "PATCHGATE_MAX_ARTIFACT_BYTES": "200000"}, tmp_path / "server.log"
    ).start()
    yield srv
    srv.stop()


def _blob_files(env: Env) -> list[Path]:
    return sorted(p for p in (env.data_dir / "artifacts").rglob("*") if p.is_file())


def _form(version: str = "1.5.0", **extra: str) -> dict[str, str]:
    return {"product": "Demo Gateway", "version": version, "security_version": "2", **extra}


def test_a_multipart_upload_creates_a_signed_release_that_devices_can_download(
    sqlite_env: Env, api_server: LiveServer
) -> None:
    payload = b"\x7fELF firmware" * 1000
    with api_server.client(sqlite_env.admin_token) as http:
        created = http.post(
            "/api/v1/releases",
            data=_form(fixes="CVE-2026-1234", type="security"),
            files=[
                ("artifact", ("gw.img", payload, "application/octet-stream")),
                ("sbom", ("bom.json", SBOM, "application/json")),
            ],
        )
        assert created.status_code == 201, created.text
        body = created.json()
        for field in ("id", "product", "version", "security_version", "type", "hardware"):
            assert field in body
        artifact = body["artifacts"][0]
        assert set(artifact) >= {"filename", "size", "sha256", "sha1", "md5", "tuf_target"}
        assert artifact["sha256"] == hashlib.sha256(payload).hexdigest()
        assert body["state"] == "signed"
        assert body["trust"] == "lab"
        assert body["fixes"] == ["CVE-2026-1234"]
        download = http.get(f"/tuf/targets/{artifact['tuf_target']}")
        assert download.content == payload
        assert http.get(f"/api/v1/releases/{body['id']}/sbom").content == SBOM
        listed = http.get("/api/v1/releases").json()["releases"]
        assert [r["version"] for r in listed] == ["1.5.0", "1.0.1"]
        withdrawn = http.post(
            f"/api/v1/releases/{body['id']}/withdraw", json={"reason": "wrong signing cert"}
        )
        assert withdrawn.status_code == 200
        assert withdrawn.json()["state"] == "withdrawn"
        assert http.get(f"/tuf/targets/{artifact['tuf_target']}").status_code == 404


def test_an_upload_over_the_size_limit_gets_413_and_leaves_nothing(
    sqlite_env: Env, api_server: LiveServer
) -> None:
    before = _blob_files(sqlite_env)
    with api_server.client(sqlite_env.admin_token) as http:
        answer = http.post(
            "/api/v1/releases",
            data=_form(),
            files=[("artifact", ("big.img", b"x" * 250_000, "application/octet-stream"))],
        )
    assert answer.status_code == 413
    assert "over the limit" in answer.json()["message"]
    assert _blob_files(sqlite_env) == before
    assert len(releases.list_releases(sqlite_env.ctx)) == 1


@pytest.mark.parametrize("name", ["../x", "/etc/x", "fw\x1b.img"])
def test_an_upload_whose_file_name_has_a_path_or_control_characters_is_refused(
    sqlite_env: Env, api_server: LiveServer, name: str
) -> None:
    with api_server.client(sqlite_env.admin_token) as http:
        answer = http.post(
            "/api/v1/releases",
            data=_form(),
            files=[("artifact", (name, b"data", "application/octet-stream"))],
        )
    assert answer.status_code == 422
    assert "artifact file name" in answer.json()["message"]


def test_a_viewer_cannot_upload_a_release(sqlite_env: Env, api_server: LiveServer) -> None:
    _, token = access.create_token(sqlite_env.ctx, name="ro", role="viewer", actor="test")
    with api_server.client(token) as http:
        answer = http.post(
            "/api/v1/releases",
            data=_form(),
            files=[("artifact", ("fw.img", b"data", "application/octet-stream"))],
        )
        assert answer.status_code == 403
        assert http.get("/api/v1/releases/1").json()["version"] == "1.0.1"


def test_an_upload_cut_off_half_way_leaves_no_partial_artifact_and_no_release_row(
    sqlite_env: Env, api_server: LiveServer
) -> None:
    before = _blob_files(sqlite_env)
    boundary = "patchgateboundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="product"\r\n\r\nDemo Gateway\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="version"\r\n\r\n9.9.9\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="artifact"; filename="cut.img"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    declared = len(head) + 150_000
    request = (
        "POST /api/v1/releases HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{api_server.port}\r\n"
        f"Authorization: Bearer {sqlite_env.admin_token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", api_server.port)) as sock:
        sock.sendall(request + head + b"y" * 60_000)
        time.sleep(0.3)
    time.sleep(0.5)
    assert httpx.get(f"{api_server.url}/healthz").status_code == 200
    assert _blob_files(sqlite_env) == before
    assert [r.version for r in releases.list_releases(sqlite_env.ctx)] == ["1.0.1"]


def test_the_openapi_document_describes_the_multipart_upload(api_server: LiveServer) -> None:
    spec = httpx.get(f"{api_server.url}/api/v1/openapi.json").json()
    body = spec["paths"]["/api/v1/releases"]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["product", "version", "artifact"]


def test_trust_status_names_the_mode_and_metadata_versions(
    sqlite_env: Env, api_server: LiveServer
) -> None:
    with api_server.client(sqlite_env.admin_token) as http:
        status = http.get("/api/v1/trust").json()
    assert status["trust"] == "lab"
    assert status["root_version"] == 1
    assert status["targets_version"] >= 2
