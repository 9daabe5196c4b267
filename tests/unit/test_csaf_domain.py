"""Pure CSAF rules: §5.1 file names, identification helpers, CVSS v3 ratings, the
mandatory tests run before publishing, and how the register's status becomes CSAF status."""

from __future__ import annotations

from datetime import UTC, datetime

from patchgate.domain import csaf
from patchgate.domain.csaf_checks import mandatory_problems

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def test_file_names_follow_section_5_1() -> None:
    assert csaf.file_name("SA-2026-0001") == "sa-2026-0001.json"
    assert csaf.file_name("Example Company - 2019-YH3234") == "example_company_-_2019-yh3234.json"
    assert csaf.file_name("rhba-2019:0024") == "rhba-2019_0024.json"
    assert csaf.file_name("a+b/c") == "a+b_c.json"


def test_identification_helpers_and_ratings() -> None:
    assert csaf.purl("Example Devices Ltd", "Demo Gateway", "1.0.2+b1") == (
        "pkg:generic/example-devices-ltd/demo-gateway@1.0.2%2Bb1"
    )
    assert csaf.cpe("Acme", "Gate Way", "2.0") == "cpe:2.3:o:acme:gate_way:2.0:*:*:*:*:*:*:*"
    assert [csaf.base_severity(s) for s in (0.0, 3.9, 4.0, 7.0, 9.0)] == [
        "NONE", "LOW", "MEDIUM", "HIGH", "CRITICAL",
    ]  # fmt: skip


def _document(*findings: csaf.Finding) -> dict[str, object]:
    return csaf.build(
        csaf.DocumentInput(
            category=csaf.ADVISORY,
            title="t",
            publisher=csaf.Publisher("Acme", "https://acme.example"),
            tracking=csaf.Tracking("SA-1", "draft", "1", NOW, NOW, (csaf.Revision("1", NOW, "x"),)),
            products=(csaf.ProductInput("Gate", ("gw-1",), ("1.0", "1.1", "2.0")),),
            vulnerabilities=(csaf.VulnerabilityInput("CVE-2026-0001", "t", findings=findings),),
        )
    )


def test_register_status_becomes_product_status() -> None:
    fix = csaf.Fix(7, "2.0", "https://pg.example/tuf/targets/x")
    doc = _document(csaf.Finding("Gate", "fix_released", ranges=("<2.0",), fixes=(fix,)))
    vulnerability = doc["vulnerabilities"][0]  # type: ignore[index]
    status = vulnerability["product_status"]
    assert status["fixed"] == ["gate-2.0"]
    assert status["known_affected"][1:] == ["gate-1.0", "gate-1.1"]
    assert vulnerability["remediations"][0]["url"] == fix.url
    assert mandatory_problems(doc) == []
    not_affected = _document(csaf.Finding("Gate", "not_affected", "code_not_reachable"))
    flags = not_affected["vulnerabilities"][0]["flags"]  # type: ignore[index]
    assert flags[0]["label"] == "vulnerable_code_not_in_execute_path"


def test_the_mandatory_checks_find_what_they_name() -> None:
    doc = _document(csaf.Finding("Gate", "triaged", ranges=("<1.1",)))
    status = doc["vulnerabilities"][0]["product_status"]  # type: ignore[index]
    status["fixed"] = [status["known_affected"][-1], "ghost"]
    doc["document"]["tracking"]["version"] = "2"  # type: ignore[index]
    problems = mandatory_problems(doc)
    assert any(p.startswith("6.1.1:") and "ghost" in p for p in problems)
    assert any(p.startswith("6.1.6:") for p in problems)
    assert any(p.startswith("6.1.16:") for p in problems)
    tree = doc["product_tree"]["branches"][0]["branches"][0]["branches"]  # type: ignore[index]
    tree.append(tree[0])
    assert any(p.startswith("6.1.2:") for p in mandatory_problems(doc))
