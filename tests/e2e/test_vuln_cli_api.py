"""The register through its CLI (in-process) and its REST API (a real server)."""

from __future__ import annotations

import json
from pathlib import Path

from patchgate.services import access
from patchgate.services.vulnerabilities import imports as vuln_imports
from tests.conftest import Env
from tests.support import LiveServer

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"


def test_vuln_add_json_gives_the_fields_of_the_contract(env: Env) -> None:
    result = env.cli(
        "vuln",
        "add",
        "CVE-2026-4000",
        "--title",
        "Heap overflow in the parser",
        "--cvss",
        CRITICAL,
        "--aware-at",
        "2026-03-04T12:00:00Z",
        "--json",
    )
    assert result.code == 0, result.stderr
    body = result.json()
    assert body["cvss_vector"] == CRITICAL and body["cvss_version"] == "3.1"
    assert (body["score"], body["severity"], body["score_source"]) == (
        9.8,
        "critical",
        "manufacturer",
    )
    assert body["aware_at"] == "2026-03-04T12:00:00Z"
    assert body["due_at"] == "2026-03-07T12:00:00Z"
    assert body["sla_state"] == "overdue"  # the real clock is past the deadline
    assert (body["status"], body["exploited"], body["exposed_devices"]) == ("new", False, 0)


def test_bad_input_exits_2_with_one_readable_line_and_no_traceback(env: Env) -> None:
    bad = env.cli("vuln", "add", "CVE-2026-4001", "--title", "t", "--cvss", "CVSS:3.1/AV:N")
    assert bad.code == 2
    assert "Missing mandatory metrics" in bad.stderr and "Traceback" not in bad.stderr
    assert env.cli("vuln", "show", "CVE-2026-4001").code == 2
    ok = env.cli("vuln", "add", "CVE-2026-4001", "--title", "t", "--cvss", CRITICAL)
    assert ok.code == 0
    dup = env.cli("vuln", "add", "CVE-2026-4001", "--title", "t2", "--cvss", CRITICAL)
    assert dup.code == 2 and "already in the register" in dup.stderr
    for status in ("triaged", "fix_in_progress", "fix_released", "fix_deployed", "closed"):
        assert env.cli("vuln", "triage", "CVE-2026-4001", "--status", status).code == 0
    back = env.cli("vuln", "triage", "CVE-2026-4001", "--status", "new")
    assert back.code == 2 and "closed → new is not allowed" in back.stderr
    future = env.cli(
        "vuln",
        "upstream",
        "CVE-2026-4001",
        "--component",
        "libfoo",
        "--to",
        "foo",
        "--at",
        "2999-01-01T00:00:00Z",
    )
    assert future.code == 2 and "cannot be dated in the future" in future.stderr
    assert env.cli("vuln", "show", "CVE-2026-4001", "--json").json()["upstream"] == {}
    refused = env.cli("vuln", "import", str(SAMPLES / "invalid/invalid-bomformat-1.6.json"))
    assert refused.code == 2 and "bomFormat" in refused.stderr


def test_import_list_export_and_report_from_the_command_line(demo_env: Env) -> None:
    imported = demo_env.cli(
        "vuln",
        "import",
        str(SAMPLES / "cyclonedx/vex-not_affected.json"),
        "--product",
        "Demo Gateway",
        "--json",
    )
    assert imported.code == 0, imported.stderr
    assert imported.json()["created"] == ["CVE-2021-44228"]
    listed = demo_env.cli("vuln", "list", "--json").json()
    assert [v["id"] for v in listed["vulnerabilities"]] == ["CVE-2021-44228"]
    vex = demo_env.cli("vuln", "export-vex", "Demo Gateway")
    assert vex.code == 0
    doc = json.loads(vex.stdout)
    assert doc["vulnerabilities"][0]["analysis"]["state"] == "not_affected"
    report = demo_env.cli("report", "sla", "--json")
    assert report.code == 0 and "severities" in report.json()
    demo_env.cli(
        "vuln",
        "add",
        "CVE-2026-4002",
        "--title",
        "t",
        "--cvss",
        CRITICAL,
        "--product",
        "Demo Gateway",
        "--exploited",
    )
    md = demo_env.cli("vuln", "art14", "CVE-2026-4002", "early_warning")
    assert md.code == 0 and md.stdout.startswith("# Early warning")
    due = demo_env.cli("vuln", "due", "--json").json()["reports"]
    assert {r["report"] for r in due} == {"early_warning", "notification"}


def test_the_rest_api_checks_roles_and_maps_errors(env: Env, server: LiveServer) -> None:
    _, viewer = access.create_token(env.ctx, name="v", role="viewer", actor="t")
    _, analyst = access.create_token(env.ctx, name="a", role="security_analyst", actor="t")
    body = {"id": "CVE-2026-4100", "title": "t", "cvss": CRITICAL}
    with server.client() as anon:
        assert anon.get("/api/v1/vulnerabilities").status_code == 401
    with server.client(viewer) as client:
        assert client.post("/api/v1/vulnerabilities", json=body).status_code == 403
    with server.client(analyst) as client:
        created = client.post("/api/v1/vulnerabilities", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["severity"] == "critical"
        assert client.post("/api/v1/vulnerabilities", json=body).status_code == 409
        bad = client.post(
            "/api/v1/vulnerabilities", json={**body, "id": "X-1", "cvss": "CVSS:3.1/AV:N"}
        )
        assert bad.status_code == 422 and "Missing mandatory metrics" in bad.text
        step = client.post(
            "/api/v1/vulnerabilities/CVE-2026-4100/triage", json={"status": "fix_deployed"}
        )
        assert step.status_code == 200 and step.json()["status"] == "fix_deployed"
        refused = client.post(
            "/api/v1/vulnerabilities/CVE-2026-4100/triage", json={"status": "new"}
        )
        assert refused.status_code == 409 and "allowed" in refused.text
        data = (SAMPLES / "osv/GHSA-838r-hvwh-24h8.json").read_bytes()
        imported = client.post("/api/v1/vulnerabilities/import", content=data)
        assert imported.status_code == 200 and imported.json()["created"] == ["GHSA-838r-hvwh-24h8"]
        junk = client.post("/api/v1/vulnerabilities/import", content=b"not json")
        assert junk.status_code == 422
    with server.client(viewer) as client:
        shown = client.get("/api/v1/vulnerabilities/CVE-2026-4100")
        assert shown.status_code == 200 and shown.json()["status"] == "fix_deployed"
        assert client.get("/api/v1/vulnerabilities/CVE-1999-0001").status_code == 404
        assert len(client.get("/api/v1/vulnerabilities").json()["vulnerabilities"]) == 2
        assert client.get("/api/v1/vulnerabilities/reports/sla").status_code == 200


def test_an_import_over_the_size_limit_gets_413_and_stores_nothing(
    env: Env, tmp_path: Path
) -> None:
    # The general request limit is raised past the import limit so that the import
    # endpoint's own bounded read is what refuses the body.
    limit = vuln_imports.MAX_IMPORT_BYTES
    server = LiveServer(
        {**env.vars, "PATCHGATE_MAX_REQUEST_BYTES": str(2 * limit)}, tmp_path / "big.log"
    ).start()
    try:
        _, analyst = access.create_token(env.ctx, name="a", role="security_analyst", actor="t")
        data = (SAMPLES / "osv/GHSA-838r-hvwh-24h8.json").read_bytes()
        padded = data + b" " * (limit + 1024 - len(data))  # valid JSON, one KiB too long
        with server.client(analyst) as client:
            answer = client.post("/api/v1/vulnerabilities/import", content=padded)
            assert answer.status_code == 413, answer.text
            assert f"over the limit of {limit} bytes" in answer.json()["message"]
            assert client.get("/api/v1/vulnerabilities").json()["vulnerabilities"] == []
            fits = client.post("/api/v1/vulnerabilities/import", content=padded[:limit])
            assert fits.status_code == 200, fits.text
            assert fits.json()["created"] == ["GHSA-838r-hvwh-24h8"]
    finally:
        server.stop()
