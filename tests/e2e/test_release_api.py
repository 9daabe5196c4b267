"""The management API's release endpoints on a running server: streamed multipart uploads,
limits, roles, the SBOM and withdrawal."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from patchgate.services import access, releases
from tests.conftest import Env
from tests.support import LiveServer

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"

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
        registered = http.post(
            "/api/v1/vulnerabilities",
            json={"id": "CVE-2026-1234", "title": "heap overflow", "cvss": CRITICAL},
        )
        assert registered.status_code == 201, registered.text
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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"fixes": "CVE-2099-0404"}, "vulnerability 'CVE-2099-0404' is not in the register"),
        ({"version": "not.a.version"}, "'not.a.version' is not a version patchgate can order"),
    ],
)
def test_an_upload_naming_an_unknown_fix_or_an_unorderable_version_gets_422_and_stores_nothing(
    sqlite_env: Env, api_server: LiveServer, extra: dict[str, str], message: str
) -> None:
    before = _blob_files(sqlite_env)
    with api_server.client(sqlite_env.admin_token) as http:
        refused = http.post(
            "/api/v1/releases",
            data={**_form(), **extra},
            files=[("artifact", ("gw.img", b"firmware" * 100, "application/octet-stream"))],
        )
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["message"]
        assert [r["version"] for r in http.get("/api/v1/releases").json()["releases"]] == ["1.0.1"]
    assert _blob_files(sqlite_env) == before


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


def test_the_server_survives_an_upload_cut_off_half_way_and_takes_the_next_one(
    sqlite_env: Env, api_server: LiveServer
) -> None:
    """A client that goes away in the middle of a multipart body: the parser fails before
    the release service runs (the service's own handling of a broken-off stream is tested
    in tests/integration/test_releases.py); the server answers the next request and takes
    a complete upload of the same version."""
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
    assert httpx.get(f"{api_server.url}/healthz").status_code == 200
    with api_server.client(sqlite_env.admin_token) as http:
        again = http.post(
            "/api/v1/releases",
            data=_form("9.9.9"),
            files=[("artifact", ("cut.img", b"y" * 150_000, "application/octet-stream"))],
        )
    assert again.status_code == 201, again.text
    assert [r.version for r in releases.list_releases(sqlite_env.ctx)] == ["9.9.9", "1.0.1"]


def _upload_schema(api_server: LiveServer) -> dict[str, Any]:
    spec = httpx.get(f"{api_server.url}/api/v1/openapi.json").json()
    body = spec["paths"]["/api/v1/releases"]["post"]["requestBody"]
    return body["content"]["multipart/form-data"]["schema"]  # type: ignore[no-any-return]


def test_an_upload_built_from_the_served_openapi_schema_is_taken_field_by_field(
    sqlite_env: Env, api_server: LiveServer
) -> None:
    """The served upload schema is a contract: every field it documents is one the
    endpoint reads, and a request without any field it calls required is refused."""
    schema = _upload_schema(api_server)
    properties = schema["properties"]
    assert "combined" in properties["type"]["enum"]
    values = {
        "product": "Demo Gateway",
        "version": "1.6.0",
        "security_version": "3",
        "type": "combined",
        "hardware": "demo-gw-1",
        "fixes": "CVE-2026-4321,CVE-2026-4322",
        "notes": "built from the served schema",
    }
    uploads = {"artifact": [b"first image", b"second image"], "sbom": [SBOM]}
    assert set(properties) == set(values) | set(uploads)
    binary = {
        name
        for name, prop in properties.items()
        if "binary" in (prop.get("format"), prop.get("items", {}).get("format"))
    }
    assert binary == set(uploads)
    files = [
        (name, (f"{name}-{i}.bin", data, "application/octet-stream"))
        for name in properties
        if name in binary
        for i, data in enumerate(uploads[name])
    ]
    with api_server.client(sqlite_env.admin_token) as http:
        for vuln_id in values["fixes"].split(","):  # a release fixes registered ones only
            registered = http.post(
                "/api/v1/vulnerabilities",
                json={"id": vuln_id, "title": "a flaw", "cvss": CRITICAL},
            )
            assert registered.status_code == 201, registered.text
        created = http.post(
            "/api/v1/releases",
            data={n: values[n] for n in properties if n not in binary},
            files=files,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["product"], body["version"]) == ("Demo Gateway", "1.6.0")
        assert body["security_version"] == 3
        assert body["type"] == "combined"
        assert body["hardware"] == ["demo-gw-1"]
        assert body["fixes"] == ["CVE-2026-4321", "CVE-2026-4322"]
        assert body["notes"] == "built from the served schema"
        assert [a["filename"] for a in body["artifacts"]] == ["artifact-0.bin", "artifact-1.bin"]
        assert http.get(f"/api/v1/releases/{body['id']}/sbom").content == SBOM
        # The policy's only model is also the default: show the field is read at all.
        other_model = http.post(
            "/api/v1/releases",
            data={n: values[n] for n in properties if n not in binary}
            | {"version": "1.6.2", "hardware": "rev-z"},
            files=files,
        )
        assert other_model.status_code == 422
        assert "hardware rev-z is not a model" in other_model.json()["message"]

        assert schema["required"] == ["product", "version", "artifact"]
        for missing in schema["required"]:
            # A new version, so only the missing field can make the upload fail.
            data = {n: values[n] for n in properties if n not in binary} | {"version": "1.6.1"}
            data.pop(missing, None)
            answer = http.post(
                "/api/v1/releases", data=data, files=[f for f in files if f[0] != missing]
            )
            assert answer.status_code == 422, (missing, answer.text)
        assert [r.version for r in releases.list_releases(sqlite_env.ctx)] == ["1.6.0", "1.0.1"]


def test_trust_status_names_the_mode_and_metadata_versions(
    sqlite_env: Env, api_server: LiveServer
) -> None:
    with api_server.client(sqlite_env.admin_token) as http:
        status = http.get("/api/v1/trust").json()
    assert status["trust"] == "lab"
    assert status["root_version"] == 1
    assert status["targets_version"] >= 2
