"""The server and the CLI together, as an operator uses them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from sectxt import Parser
from sqlalchemy import text

from patchgate.services.setup import demo_policy_source
from tests.conftest import Env
from tests.support import LiveServer, free_port


def test_a_cli_change_is_reflected_by_the_running_servers_next_answer(
    env: Env, server: LiveServer, tmp_path: Path
) -> None:
    before = httpx.get(f"{server.url}/policy.json").json()
    assert before["products"] == []
    path = tmp_path / "p.toml"
    path.write_text(demo_policy_source())
    assert env.cli("policy", "apply", str(path)).code == 0
    after = httpx.get(f"{server.url}/policy.json").json()
    assert [p["name"] for p in after["products"]] == ["Demo Gateway"]
    page = httpx.get(f"{server.url}/policy").text
    assert "December 2031" in page


def test_the_public_policy_page_shows_the_cadence_and_end_of_support(
    demo_env: Env, tmp_path: Path
) -> None:
    srv = LiveServer(demo_env.vars, tmp_path / "log").start()
    try:
        page = httpx.get(f"{srv.url}/policy")
        assert page.status_code == 200
        for text_ in (
            "Critical",
            "9.0–10.0",
            "72 hours",
            "High",
            "28 days",
            "Medium",
            "90 days",
            "Low",
            "365 days",
            "Demo Gateway",
            "December 2031",
            "security@devices.example",
        ):
            assert text_ in page.text
        markdown = httpx.get(f"{srv.url}/policy.md")
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert "| Demo Gateway | January 2026 | December 2031 |" in markdown.text
    finally:
        srv.stop()


def test_security_txt_is_valid_rfc_9116(demo_env: Env, tmp_path: Path) -> None:
    srv = LiveServer(
        {**demo_env.vars, "PATCHGATE_PUBLIC_URL": "https://devices.example"}, tmp_path / "log"
    ).start()
    try:
        response = httpx.get(f"{srv.url}/.well-known/security.txt")
    finally:
        srv.stop()
    assert response.status_code == 200
    parser = Parser(response.content, urls="https://devices.example/.well-known/security.txt")
    assert parser.is_valid(), parser.errors
    assert parser.errors == []
    fields = parser.resolved_url, response.text
    assert "Policy: https://devices.example/policy" in fields[1]
    assert "CSAF: https://devices.example/.well-known/csaf/provider-metadata.json" in fields[1]


def test_openapi_healthz_and_metrics_answer(server: LiveServer, env: Env) -> None:
    spec = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/policy" in spec["paths"]
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok"
    metrics = httpx.get(f"{server.url}/metrics")
    assert "patchgate_http_requests_total" in metrics.text


def test_the_management_api_needs_a_valid_bearer_token(server: LiveServer, env: Env) -> None:
    assert httpx.get(f"{server.url}/api/v1/whoami").status_code == 401
    bad = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    with server.client(env.admin_token) as client:
        assert client.get("/api/v1/whoami").json() == {"name": "admin", "role": "admin"}
        created = client.post("/api/v1/tokens", json={"name": "ro", "role": "viewer"}).json()
    viewer = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {created['token']}"}
    )
    assert viewer.get("/api/v1/audit").status_code == 200
    refused = viewer.put(
        "/api/v1/policy", content=demo_policy_source(), headers={"Content-Type": "application/toml"}
    )
    assert refused.status_code == 403


def test_an_invalid_policy_over_the_api_is_a_422_listing_problems(
    server: LiveServer, env: Env
) -> None:
    with server.client(env.admin_token) as client:
        answer = client.put(
            "/api/v1/policy",
            content="organisation = 'x'\n",
            headers={"Content-Type": "application/toml"},
        )
    assert answer.status_code == 422
    assert any("cadence" in p for p in answer.json()["problems"])


def test_oversized_request_bodies_are_refused_with_413(server: LiveServer, env: Env) -> None:
    with server.client(env.admin_token) as client:
        answer = client.put(
            "/api/v1/policy",
            content=b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/toml"},
        )
    assert answer.status_code == 413


def _serve(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "patchgate.entrypoints.cli",
            "serve",
            "--port",
            str(free_port()),
            *extra,
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_an_invalid_policy_with_the_same_lines(env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(demo_policy_source().replace("[cadence.high]", "[cadence.urgent]"))
    check = env.cli("policy", "check", str(bad))
    proc = _serve(env.vars, "--policy", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for line in check.stderr.strip().splitlines():
        assert line.replace(f"{bad}: ", "") in proc.stderr


def test_serve_refuses_an_outdated_schema_naming_the_command(env: Env) -> None:
    with env.app.engines.write.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    proc = _serve(env.vars)
    assert proc.returncode == 2
    assert "patchgate db upgrade" in proc.stderr
