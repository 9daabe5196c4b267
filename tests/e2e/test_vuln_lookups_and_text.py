"""The register as users meet it from the command line and the REST API: a CVE record of
one's own product counts its devices, a record is found under any of its names, and text
that no database can store is refused with a clear message, changing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchgate.services import access
from tests.conftest import Env
from tests.support import LiveServer

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
PRODUCT = "Demo Gateway"


def cve_record(cve_id: str, affected: list[dict[str, object]]) -> dict[str, object]:
    """A published CVE JSON 5 record as a manufacturer's CNA would write it."""
    return {
        "dataType": "CVE_RECORD",
        "dataVersion": "5.1",
        "cveMetadata": {"cveId": cve_id, "state": "PUBLISHED", "assignerShortName": "Demo"},
        "containers": {
            "cna": {
                "providerMetadata": {"orgId": "00000000-0000-4000-8000-000000000000"},
                "title": "Command injection in the gateway's diagnostics page",
                "descriptions": [{"lang": "en", "value": "Command injection."}],
                "affected": affected,
                "metrics": [{"cvssV3_1": {"version": "3.1", "vectorString": CRITICAL}}],
            }
        },
    }


def add_devices(env: Env, versions: dict[str, str]) -> None:
    for cid, version in versions.items():
        made = env.cli("device", "add", cid, "--hardware", "demo-gw-1", "--version", version)
        assert made.code == 0, made.stderr


def test_a_cve5_record_naming_a_product_of_the_policy_counts_its_exposed_devices(
    demo_env: Env, tmp_path: Path
) -> None:
    add_devices(demo_env, {"gw-1": "1.0.0", "gw-2": "1.1.9", "gw-3": "1.2.0", "gw-4": "2.0.0"})
    record = cve_record(
        "CVE-2026-7001",
        [
            {
                "vendor": "Demo",
                "product": "Gateway",  # "Demo Gateway" once the vendor is put before it
                "defaultStatus": "unaffected",
                "versions": [
                    {
                        "version": "1.0.0",
                        "lessThan": "1.2.0",
                        "status": "affected",
                        "versionType": "semver",
                    }
                ],
            },
            {
                "vendor": "Example",
                "product": "libdiag",
                "versions": [{"version": "0.9", "status": "affected"}],
            },
        ],
    )
    path = tmp_path / "CVE-2026-7001.json"
    path.write_text(json.dumps(record))
    imported = demo_env.cli("vuln", "import", str(path), "--json")
    assert imported.code == 0, imported.stderr
    shown = demo_env.cli("vuln", "show", "CVE-2026-7001", "--json").json()
    assert shown["exposed_devices"] == 2  # gw-1 and gw-2 run 1.0.0 ≤ v < 1.2.0
    assert [(p["product"], p["affected"]) for p in shown["products"]] == [
        (PRODUCT, ["vers:semver/>=1.0.0|<1.2.0"])
    ]
    assert [c["name"] for c in shown["components"]] == ["Example libdiag"]
    # The product's name alone matches too, and a second import updates the range.
    record["containers"]["cna"]["affected"] = [  # type: ignore[index]
        {
            "vendor": "Demo",
            "product": "demo gateway",
            "versions": [{"version": "0", "lessThan": "2.0.0", "status": "affected"}],
        }
    ]
    path.write_text(json.dumps(record))
    assert demo_env.cli("vuln", "import", str(path)).code == 0
    again = demo_env.cli("vuln", "show", "CVE-2026-7001", "--json").json()
    assert again["exposed_devices"] == 3
    assert again["products"][0]["affected"] == ["vers:semver/<2.0.0"]


def test_a_record_is_found_by_its_alias_from_the_command_line_and_the_api(
    env: Env, server: LiveServer
) -> None:
    imported = env.cli("vuln", "import", str(SAMPLES / "osv/GHSA-838r-hvwh-24h8.json"))
    assert imported.code == 0, imported.stderr
    shown = env.cli("vuln", "show", "CVE-2021-38555", "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["id"] == "GHSA-838r-hvwh-24h8"
    assert "CVE-2021-38555" in shown.json()["aliases"]
    text = env.cli("vuln", "show", "cve-2021-38555")
    assert text.code == 0 and text.stdout.startswith("GHSA-838r-hvwh-24h8")
    triaged = env.cli("vuln", "triage", "CVE-2021-38555", "--status", "triaged", "--json")
    assert triaged.code == 0 and triaged.json()["status"] == "triaged"
    _, viewer = access.create_token(env.ctx, name="v", role="viewer", actor="t")
    with server.client(viewer) as client:
        answer = client.get("/api/v1/vulnerabilities/CVE-2021-38555")
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == "GHSA-838r-hvwh-24h8"
        assert client.get("/api/v1/vulnerabilities/CVE-2021-99999").status_code == 404


BAD_TEXT = [("a lone surrogate", "\ud800"), ("a NUL character", "\x00")]


@pytest.mark.parametrize(("what", "bad"), BAD_TEXT)
def test_text_no_database_can_store_is_refused_from_the_command_line(
    env: Env, what: str, bad: str
) -> None:
    assert env.cli("vuln", "add", "CVE-2026-7100", "--title", "t", "--cvss", CRITICAL).code == 0
    before = env.cli("vuln", "show", "CVE-2026-7100", "--json").json()
    attempts = [
        ("vuln", "add", "CVE-2026-7101", "--title", "t", "--cvss", CRITICAL + bad),
        ("vuln", "add", "CVE-2026-7101", "--title", "t" + bad, "--cvss", CRITICAL),
        ("vuln", "upstream", "CVE-2026-7100", "--component", "lib" + bad, "--to", "them"),
        ("vuln", "upstream", "CVE-2026-7100", "--component", "lib", "--to", "them" + bad),
        ("vuln", "upstream", "CVE-2026-7100", "--component", "c", "--to", "t", "--reference", bad),
        ("vuln", "show", "CVE-2026-7100" + bad),
        ("vuln", "triage", "CVE-2026-7100" + bad, "--status", "triaged"),
    ]
    for args in attempts:
        result = env.cli(*args)
        assert result.code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert ("NUL" in result.stderr) if bad == "\x00" else ("surrogate" in result.stderr)
    assert env.cli("vuln", "show", "CVE-2026-7101").code == 2
    assert env.cli("vuln", "show", "CVE-2026-7100", "--json").json() == before


def test_an_art14_reference_no_database_can_store_is_refused(demo_env: Env) -> None:
    added = demo_env.cli(
        "vuln", "add", "CVE-2026-7200", "--title", "t", "--cvss", CRITICAL,
        "--product", PRODUCT, "--exploited",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    for bad in ("ENISA-\ud800", "ENISA-\x00"):
        refused = demo_env.cli(
            "vuln", "submit", "CVE-2026-7200", "early_warning", "--reference", bad
        )
        assert refused.code == 2, refused.stderr
    clocks = demo_env.cli("vuln", "show", "CVE-2026-7200", "--json").json()["art14"]["reports"]
    assert clocks["early_warning"]["submitted_at"] is None


def test_text_no_database_can_store_gets_422_from_the_api(env: Env, server: LiveServer) -> None:
    _, analyst = access.create_token(env.ctx, name="a", role="security_analyst", actor="t")
    body = {"id": "CVE-2026-7300", "title": "t", "cvss": CRITICAL}
    base = "/api/v1/vulnerabilities/CVE-2026-7300"
    with server.client(analyst) as client:
        assert client.post("/api/v1/vulnerabilities", json=body).status_code == 201
        assert client.post(f"{base}/exploited", json={}).is_success
        for bad in ("\ud800", "\x00"):
            attempts: list[tuple[str, dict[str, object]]] = [
                ("", {**body, "id": "CVE-2026-7301", "cvss": CRITICAL + bad}),
                ("", {**body, "id": "CVE-2026-7301", "title": bad}),
                ("/upstream", {"component": "lib" + bad, "reported_to": "them"}),
                ("/upstream", {"component": "lib", "reported_to": "them" + bad}),
                ("/upstream", {"component": "c", "reported_to": "t", "reference": bad}),
                ("/art14/early_warning/submitted", {"reference": "R" + bad}),
            ]
            for path, payload in attempts:
                url = f"{base}{path}" if path else "/api/v1/vulnerabilities"
                # json.dumps writes the surrogate as an escape, as a hostile client would send it.
                answer = client.post(
                    url,
                    content=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json"},
                )
                assert answer.status_code == 422, (path, answer.text)
                assert answer.json()["message"]
        shown = client.get(base).json()
        assert shown["upstream"] == {}
        assert shown["art14"]["reports"]["early_warning"]["submitted_at"] is None
        assert client.get("/api/v1/vulnerabilities/CVE-2026-7301").status_code == 404


@pytest.mark.parametrize("escape", ["\\ud800", "\\u0000"])
def test_an_import_whose_json_escapes_decode_to_unstorable_text_imports_nothing(
    env: Env, tmp_path: Path, escape: str
) -> None:
    record = cve_record("CVE-2026-7400", [])
    text = json.dumps(record).replace("Command injection.", f"Command {escape}injection.")
    path = tmp_path / "bad.json"
    path.write_text(text)
    refused = env.cli("vuln", "import", str(path))
    assert refused.code == 2, refused.stderr
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert env.cli("vuln", "list", "--json").json()["vulnerabilities"] == []
