"""Imports of every public sample in shared/samples (CVE JSON 5, OSV, CycloneDX), refusals
of bad files as a whole, idempotent re-imports and the CycloneDX VEX round trip.

The samples live beside the clone (``shared/samples``, described in its SOURCES.md). Files
under ``invalid/`` are not all invalid: SOURCES.md calls ``rest_test.json`` (an array of
OSV records) and ``vex-issue2549.json`` (not_affected without a justification,
false_positive, a score that disagrees with its vector) tricky but valid, and so do we.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonValidator

from patchgate.domain import versions
from patchgate.domain.errors import InvalidInput, TooLarge
from patchgate.services.vulnerabilities import cyclonedx as cdx
from patchgate.services.vulnerabilities import imports as vuln_imports
from tests import vuln_views as vulns
from tests.conftest import Env, _make_env
from tests.support import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "samples"
if not SAMPLES.is_dir():
    raise RuntimeError(
        f"the shared samples are missing: expected {SAMPLES} (shared/ beside the clone)"
    )
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

View = dict[str, Any]
Check = Callable[[dict[str, View], vuln_imports.ImportResult], None]


def contains(view: View, version: str) -> bool:
    ranges = [versions.parse_range(r) for c in view["components"] for r in c["ranges"]]
    return any(r.contains(version) for r in ranges)


def statuses(register: dict[str, View]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in register.values():
        out[v["status"]] = out.get(v["status"], 0) + 1
    return out


def notes(result: vuln_imports.ImportResult) -> str:
    return "\n".join(result.notes)


# file -> (format, created IDs, skipped IDs, further checks)
VALID: dict[str, tuple[str, set[str], set[str], Check]] = {
    "cve5/CVE-2016-15012.json": (
        "cve5",
        {"CVE-2016-15012"},
        set(),
        lambda r, res: (
            (
                r["CVE-2016-15012"]["score_source"] == "cna:VulDB"
                and r["CVE-2016-15012"]["cvss_version"] == "3.1"  # v3.1 before v3.0; v2 unused
                and r["CVE-2016-15012"]["score"] == 5.5
                and "CVSS v2" in notes(res)
            )
            or pytest.fail("VulDB v3.1 chosen")
        ),
    ),
    "cve5/CVE-2018-14618.json": (
        "cve5",
        {"CVE-2018-14618"},
        set(),
        lambda r, res: (
            (
                (r["CVE-2018-14618"]["cvss_version"], r["CVE-2018-14618"]["score"]) == ("3.0", 7.5)
                and r["CVE-2018-14618"]["score_source"] == "cna:redhat"
                and contains(r["CVE-2018-14618"], "7.61.1")
                and not contains(r["CVE-2018-14618"], "7.61.2")
            )
            or pytest.fail("Red Hat v3.0")
        ),
    ),
    "cve5/CVE-2021-44228.json": (
        "cve5",
        {"CVE-2021-44228"},
        set(),
        lambda r, res: (
            (
                r["CVE-2021-44228"]["score_source"] == "adp:CISA-ADP"
                and r["CVE-2021-44228"]["score"] == 10.0
                and r["CVE-2021-44228"]["exploited"] is True  # CISA KEV
                and "art14" in r["CVE-2021-44228"]
                and r["CVE-2021-44228"]["art14"]["required"] is False  # in no product yet
                and "log4j-core*" in notes(res)
            )
            or pytest.fail("Log4Shell from the CISA ADP, KEV")
        ),
    ),
    "cve5/CVE-2022-25929.json": (
        "cve5",
        {"CVE-2022-25929"},
        set(),
        lambda r, res: (
            (
                r["CVE-2022-25929"]["score"] == 5.4
                and contains(r["CVE-2022-25929"], "1.36.0")
                and "unspecified" in notes(res)
            )
            or pytest.fail("unspecified bounds")
        ),
    ),
    "cve5/CVE-2023-23127.json": (
        "cve5",
        {"CVE-2023-23127"},
        set(),
        lambda r, res: (
            (
                r["CVE-2023-23127"]["score"] is None
                and r["CVE-2023-23127"]["severity"] == "none"
                and r["CVE-2023-23127"]["due_at"] is None
                and r["CVE-2023-23127"]["sla_state"] == "not_applicable"
            )
            or pytest.fail("no metrics at all")
        ),
    ),
    "cve5/CVE-2023-45803.json": (
        "cve5",
        {"CVE-2023-45803"},
        set(),
        lambda r, res: (
            (
                r["CVE-2023-45803"]["score"] == 4.2
                and contains(r["CVE-2023-45803"], "1.26.17")
                and contains(r["CVE-2023-45803"], "2.0.6")
                and not contains(r["CVE-2023-45803"], "1.26.18")
                and not contains(r["CVE-2023-45803"], "2.0.7")
            )
            or pytest.fail("free-text ranges")
        ),
    ),
    "cve5/CVE-2023-5129.json": (
        "cve5",
        set(),
        {"CVE-2023-5129"},
        lambda r, res: (
            (r == {} and "replaced by CVE-2023-4863" in notes(res))
            or pytest.fail("REJECTED is skipped")
        ),
    ),
    "cve5/CVE-2024-3094.json": (
        "cve5",
        {"CVE-2024-3094"},
        set(),
        lambda r, res: (
            (
                r["CVE-2024-3094"]["score"] == 10.0
                and r["CVE-2024-3094"]["score_source"] == "cna:redhat"
                and contains(r["CVE-2024-3094"], "5.6.1")
                and not contains(r["CVE-2024-3094"], "5.4.6")
            )
            or pytest.fail("xz")
        ),
    ),
    "cve5/CVE-2024-7264.json": (
        "cve5",
        {"CVE-2024-7264"},
        set(),
        lambda r, res: (
            (
                r["CVE-2024-7264"]["score_source"] == "adp:CISA-ADP"
                and r["CVE-2024-7264"]["score"] == 6.3
                and contains(r["CVE-2024-7264"], "8.8.0")
            )
            or pytest.fail("lessThanOrEqual equal to version")
        ),
    ),
    "cve5/CVE-2025-1110.json": (
        "cve5",
        {"CVE-2025-1110"},
        set(),
        lambda r, res: (
            (
                (r["CVE-2025-1110"]["score"], r["CVE-2025-1110"]["severity"]) == (2.7, "low")
                and r["CVE-2025-1110"]["score_source"] == "cna:GitLab"
                and r["CVE-2025-1110"]["components"][0]["ranges"] == ["vers:semver/>=18.0|<18.0.1"]
            )
            or pytest.fail("GitLab")
        ),
    ),
    "cve5/CVE-2025-21631.json": (
        "cve5",
        {"CVE-2025-21631"},
        set(),
        lambda r, res: (
            (r["CVE-2025-21631"]["score_source"] == "adp:CISA-ADP" and "is a commit" in notes(res))
            or pytest.fail("git ranges noted")
        ),
    ),
    "cve5/CVE-2025-4565.json": (
        "cve5",
        {"CVE-2025-4565"},
        set(),
        lambda r, res: (
            (
                (r["CVE-2025-4565"]["cvss_version"], r["CVE-2025-4565"]["score"]) == ("4.0", 8.2)
                and r["CVE-2025-4565"]["severity"] == "high"
                and r["CVE-2025-4565"]["components"][0]["ranges"] == ["vers:semver/<6.31.1"]
            )
            or pytest.fail("CNA CVSS 4.0")
        ),
    ),
    "cyclonedx/VEX-CISA-Use-Cases-Case-3/vex.json": (
        "cyclonedx",
        {f"CVE-2020-{n}" for n in range(11896, 11915)},
        set(),
        lambda r, res: (
            (
                statuses(r) == {"triaged": 10, "not_affected": 6, "fix_released": 3}
                and r["CVE-2020-11898"]["score"] is None  # the malformed "AAV:N" vector
                and 'Unknown metric "AAV"' in notes(res)
                and r["CVE-2020-11896"]["cvss_vector"].startswith("CVSS:3.1/AV:N")
            )
            or pytest.fail("Ripple20 VEX")
        ),
    ),
    "cyclonedx/VEX/vex.json": (
        "cyclonedx",
        {"CVE-2020-25649"},
        set(),
        lambda r, res: (
            (
                r["CVE-2020-25649"]["status"] == "not_affected"
                and r["CVE-2020-25649"]["score_source"] == "other:NVD"
                and "points to another BOM" in notes(res)
            )
            or pytest.fail("BOM-Link to another BOM")
        ),
    ),
    "cyclonedx/grype_3.json": (
        "cyclonedx",
        {"CVE-2023-42363"},
        set(),
        lambda r, res: (
            (
                r["CVE-2023-42363"]["score"] == 5.5
                and "package-id=" in r["CVE-2023-42363"]["components"][0]["ref"]
                and r["CVE-2023-42363"]["components"][0]["name"] == "busybox"
            )
            or pytest.fail("grype, properties null")
        ),
    ),
    "cyclonedx/trivy.json": (
        "cyclonedx",
        {"CVE-2023-28484", "CVE-2023-29469"},
        set(),
        lambda r, res: (
            (
                any(s["version"] == "4.0" for v in r.values() for s in v["scores"])
                and all(v["cvss_version"] == "3.1" for v in r.values())
                and "CVSSv4" in notes(res)
            )
            or pytest.fail("trivy CVSSv4 tolerated, v3.1 preferred")
        ),
    ),
    "cyclonedx/valid-vulnerability-1.5.json": (
        "cyclonedx",
        {"SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111"},
        set(),
        lambda r, res: (
            (
                r["SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111"]["status"] == "not_affected"
                and "CVE-2018-7489" in r["SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111"]["aliases"]
                and r["SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111"]["components"][0]["name"]
                == "jackson-databind"
            )
            or pytest.fail("1.5 spec resource")
        ),
    ),
    "cyclonedx/valid-vulnerability-1.6.json": (
        "cyclonedx",
        {"SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111"},
        set(),
        lambda r, res: (
            (r["SNYK-JAVA-COMFASTERXMLJACKSONCORE-32111"]["status"] == "not_affected")
            or pytest.fail("1.6 spec resource")
        ),
    ),
    "cyclonedx/vex-not_affected.json": (
        "cyclonedx",
        {"CVE-2021-44228"},
        set(),
        lambda r, res: (
            (
                r["CVE-2021-44228"]["status"] == "not_affected"
                and r["CVE-2021-44228"]["score"] is None
            )
            or pytest.fail("minimal VEX")
        ),
    ),
    "invalid/rest_test.json": (
        "osv",
        {
            "CURL-CVE-2023-46219",
            "CURL-CVE-2023-46218",
            "CURL-CVE-2023-23915",
            "CURL-CVE-2023-23914",
        },
        set(),
        lambda r, res: (
            (
                contains(r["CURL-CVE-2023-46218"], "8.4.0")
                and not contains(r["CURL-CVE-2023-46218"], "8.5.0")
                and "GIT range" in notes(res)
            )
            or pytest.fail("an array of OSV records")
        ),
    ),
    "invalid/vex-issue2549.json": (
        "cyclonedx",
        {"CVE-2020-25649", "CVE-2020-25650", "CVE-2020-25651"},
        set(),
        lambda r, res: (
            (
                all(v["status"] == "not_affected" for v in r.values())
                and "without a justification" in notes(res)
                and "states 7.6, its vector scores 7.5" in notes(res)
            )
            or pytest.fail("Dependency-Track 2549")
        ),
    ),
    "osv/CVE-2016-10046.json": (
        "osv",
        {"CVE-2016-10046"},
        set(),
        lambda r, res: (
            (
                (r["CVE-2016-10046"]["cvss_version"], r["CVE-2016-10046"]["score"]) == ("3.0", 5.5)
                and "GIT range" in notes(res)
            )
            or pytest.fail("osv.dev CVE record")
        ),
    ),
    "osv/DSA-3029-1.json": (
        "osv",
        {"DSA-3029-1"},
        set(),
        lambda r, res: (
            (r["DSA-3029-1"]["aliases"] == ["CVE-2014-3616"] and r["DSA-3029-1"]["score"] is None)
            or pytest.fail("Debian DSA")
        ),
    ),
    "osv/GHSA-838r-hvwh-24h8.json": (
        "osv",
        {"GHSA-838r-hvwh-24h8"},
        set(),
        lambda r, res: (
            (
                r["GHSA-838r-hvwh-24h8"]["score"] == 9.1
                and "CVE-2021-38555" in r["GHSA-838r-hvwh-24h8"]["aliases"]
            )
            or pytest.fail("GHSA")
        ),
    ),
    "osv/GO-2022-0617.json": (
        "osv",
        set(),
        {"GO-2022-0617"},
        lambda r, res: (r == {} and "withdrawn" in notes(res)) or pytest.fail("withdrawn"),
    ),
    "osv/GO-2023-2102.json": (
        "osv",
        {"GO-2023-2102"},
        set(),
        lambda r, res: (
            (
                contains(r["GO-2023-2102"], "1.21.2")
                and not contains(r["GO-2023-2102"], "1.21.3")
                and "CVE-2023-39325" in r["GO-2023-2102"]["aliases"]
            )
            or pytest.fail("Go rapid reset")
        ),
    ),
    "osv/RUSTSEC-2020-0053.json": (
        "osv",
        set(),
        {"RUSTSEC-2020-0053"},
        lambda r, res: r == {} or pytest.fail("withdrawn"),
    ),
    "osv/RUSTSEC-2020-0071.json": (
        "osv",
        {"RUSTSEC-2020-0071"},
        set(),
        lambda r, res: (
            (
                r["RUSTSEC-2020-0071"]["score"] == 6.2
                and contains(r["RUSTSEC-2020-0071"], "0.2.22")
                and contains(r["RUSTSEC-2020-0071"], "0.1.43")
                and not contains(r["RUSTSEC-2020-0071"], "0.2.23")
            )
            or pytest.fail("eight introduced/fixed pairs")
        ),
    ),
    "osv/RUSTSEC-2024-0445.json": (
        "osv",
        {"RUSTSEC-2024-0445"},
        set(),
        lambda r, res: (
            (
                (r["RUSTSEC-2024-0445"]["cvss_version"], r["RUSTSEC-2024-0445"]["severity"])
                == ("4.0", "low")
            )
            or pytest.fail("OSV CVSS_V4")
        ),
    ),
    "osv/UBUNTU-CVE-2025-38094.json": (
        "osv",
        {"UBUNTU-CVE-2025-38094"},
        set(),
        lambda r, res: (
            (r["UBUNTU-CVE-2025-38094"]["score"] is None and "'Ubuntu' is not CVSS" in notes(res))
            or pytest.fail("Ubuntu severity")
        ),
    ),
    "osv/test_vuln.json": (
        "osv",
        {"PYSEC-2021-63"},
        set(),
        lambda r, res: (
            (
                len(r["PYSEC-2021-63"]["components"]) == 2
                and contains(r["PYSEC-2021-63"], "3.3.1")
                and not contains(r["PYSEC-2021-63"], "3.3.2")
            )
            or pytest.fail("one package twice")
        ),
    ),
}

INVALID: dict[str, str] = {
    "invalid/invalid-bomformat-1.6.json": "bomFormat 'AnotherFormat' is not CycloneDX",
    "invalid/invalid-component-ref-1.6.json": "bom-ref: '' should be non-empty",
    "invalid/invalid-metadata-timestamp-1.6.json": "'2020-04-13' is not a 'date-time'",
}


def register(env: Env) -> dict[str, View]:
    return {v["id"]: v for v in vulns.list_all(env.ctx)}


def import_sample(env: Env, name: str, **kw: Any) -> vuln_imports.ImportResult:
    return vuln_imports.import_document(
        env.ctx, (SAMPLES / name).read_bytes(), actor="test", name=name, **kw
    )


def test_every_sample_file_is_covered_by_these_tests() -> None:
    found = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*.json")}
    assert found == set(VALID) | set(INVALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_each_valid_sample_imports_right(env: Env, name: str) -> None:
    env.ctx.clock = lambda: NOW
    fmt, created, skipped, check = VALID[name]
    result = import_sample(env, name)
    assert result.format == fmt
    assert set(result.created) == created
    assert set(result.skipped) == skipped
    check(register(env), result)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_each_invalid_sample_is_refused_whole(env: Env, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        import_sample(env, name)
    assert INVALID[name] in str(info.value)
    assert register(env) == {}


def test_the_declared_format_must_match_the_file(env: Env) -> None:
    with pytest.raises(InvalidInput, match="not osv: it looks like cve5"):
        import_sample(env, "cve5/CVE-2025-1110.json", fmt="osv")
    assert import_sample(env, "cve5/CVE-2025-1110.json", fmt="cve5").created == ["CVE-2025-1110"]


def test_files_that_are_not_json_or_too_large_import_nothing(env: Env) -> None:
    with pytest.raises(InvalidInput, match="not JSON"):
        vuln_imports.import_document(env.ctx, b"id,title\n1,x\n", actor="t")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        vuln_imports.import_document(env.ctx, b"\xff\xfe{", actor="t")
    with pytest.raises(InvalidInput, match="not a CVE JSON 5 record"):
        vuln_imports.import_document(env.ctx, b'{"hello": "world"}', actor="t")
    big = b" " * (vuln_imports.MAX_IMPORT_BYTES + 1)
    with pytest.raises(TooLarge):
        vuln_imports.import_document(env.ctx, big, actor="t")
    assert register(env) == {}


def test_a_file_with_one_bad_record_imports_nothing_and_names_it(env: Env) -> None:
    good = json.loads((SAMPLES / "osv/GHSA-838r-hvwh-24h8.json").read_text())
    bad = json.loads((SAMPLES / "osv/GO-2023-2102.json").read_text())
    bad["affected"][0]["ranges"][0]["events"].append({"patched": "1.22"})
    data = json.dumps([good, bad]).encode()
    with pytest.raises(InvalidInput, match=r"GO-2023-2102: .*unknown OSV event 'patched'"):
        vuln_imports.import_document(env.ctx, data, actor="t")
    assert register(env) == {}


def test_a_list_of_cve_records_imports_in_one_go_and_skips_the_rejected(env: Env) -> None:
    records = [
        json.loads((SAMPLES / f"cve5/{n}.json").read_text())
        for n in ("CVE-2025-1110", "CVE-2023-5129", "CVE-2024-3094")
    ]
    result = vuln_imports.import_document(env.ctx, json.dumps(records).encode(), actor="t")
    assert sorted(result.created) == ["CVE-2024-3094", "CVE-2025-1110"]
    assert result.skipped == ["CVE-2023-5129"]


def test_importing_again_updates_and_never_duplicates(env: Env) -> None:
    env.ctx.clock = lambda: NOW
    names = [n for n in sorted(VALID) if VALID[n][1]]
    for name in names:
        import_sample(env, name)
    first = register(env)
    later = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    env.ctx.clock = lambda: later
    for name in names:
        result = import_sample(env, name)
        assert result.created == [], name
    again = register(env)
    assert set(again) == set(first)
    for vid, view in again.items():
        assert view["aware_at"] == first[vid]["aware_at"]  # awareness is kept
        assert view["score"] == first[vid]["score"]


def test_an_advisory_is_matched_to_an_existing_record_by_alias_and_the_own_score_stays(
    env: Env,
) -> None:
    env.ctx.clock = lambda: NOW
    vulns.add(
        env.ctx,
        vuln_id="CVE-2020-26235",
        title="time localtime_r",
        cvss="CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:L",
        actor="t",
    )
    result = import_sample(env, "osv/RUSTSEC-2020-0071.json")
    assert (result.created, result.updated) == ([], ["CVE-2020-26235"])
    view = vulns.show(env.ctx, "CVE-2020-26235")
    assert view["score_source"] == "manufacturer" and view["score"] == 3.3
    assert "RUSTSEC-2020-0071" in view["aliases"]
    assert {s["source"] for s in view["scores"]} == {"manufacturer", "other"}


def test_an_advisory_whose_id_and_alias_are_two_records_updates_its_own(env: Env) -> None:
    env.ctx.clock = lambda: NOW
    for vid in ("CVE-2021-38555", "GHSA-838r-hvwh-24h8"):  # registered apart, by hand
        vulns.add(
            env.ctx,
            vuln_id=vid,
            title=vid,
            cvss="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            actor="t",
        )
    result = import_sample(env, "osv/GHSA-838r-hvwh-24h8.json")
    assert (result.created, result.updated) == ([], ["GHSA-838r-hvwh-24h8"])
    assert set(register(env)) == {"CVE-2021-38555", "GHSA-838r-hvwh-24h8"}
    assert register(env)["CVE-2021-38555"]["title"] == "CVE-2021-38555"


def test_an_import_can_tie_every_record_to_a_product(demo_env: Env) -> None:
    result = import_sample(demo_env, "cyclonedx/grype_3.json", products=["Demo Gateway"])
    view = vulns.show(demo_env.ctx, result.created[0])
    assert [p["product"] for p in view["products"]] == ["Demo Gateway"]
    with pytest.raises(InvalidInput, match="not in the policy"):
        import_sample(demo_env, "cyclonedx/grype_3.json", products=["Toaster"])


def _comparable(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for v in doc["vulnerabilities"]:
        v = dict(v)
        v["analysis"] = {k: x for k, x in v["analysis"].items() if k != "lastUpdated"}
        out.append(v)
    return out


def test_the_vex_export_is_valid_cyclonedx_and_round_trips(
    demo_env: Env, tmp_path: Path, databases: DatabaseFactory, backend: str
) -> None:
    ctx = demo_env.ctx
    ctx.clock = lambda: NOW
    product = "Demo Gateway"
    for vid, status, justification in [
        ("CVE-2026-3001", None, None),
        ("CVE-2026-3002", "triaged", None),
        ("CVE-2026-3003", "fix_in_progress", None),
        ("CVE-2026-3004", "not_affected", "code_not_present"),
        ("CVE-2026-3005", "will_not_fix", "Hardware revision A is past its support period"),
        ("CVE-2026-3006", "fix_deployed", None),
    ]:
        vulns.add(
            ctx,
            vuln_id=vid,
            title=vid,
            cvss="CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            actor="t",
            products=[product],
            affected=["vers:semver/>=1.0.0|<1.4.2"],
        )
        if status is not None:
            if status in ("fix_in_progress", "fix_deployed"):
                vulns.triage(ctx, vid, status="triaged", actor="t")
            vulns.triage(ctx, vid, status=status, justification=justification, actor="t")
    exported = cdx.export_vex(ctx, product)
    text = json.dumps(exported)
    assert JsonValidator(SchemaVersion.V1_6).validate_str(text) is None
    states = {v["id"]: v["analysis"]["state"] for v in exported["vulnerabilities"]}
    assert states == {
        "CVE-2026-3001": "in_triage",
        "CVE-2026-3002": "exploitable",
        "CVE-2026-3003": "exploitable",
        "CVE-2026-3004": "not_affected",
        "CVE-2026-3005": "exploitable",
        "CVE-2026-3006": "resolved",
    }
    # Into a second, empty installation with the same policy, and out again.
    other = _make_env(tmp_path / "second", databases, backend, demo=True)
    try:
        other.ctx.clock = lambda: NOW
        result = vuln_imports.import_document(other.ctx, text.encode(), actor="t")
        assert len(result.created) == 6 and result.notes == []
        again = cdx.export_vex(other.ctx, product)
        assert _comparable(again) == _comparable(exported)
        shown = vulns.show(other.ctx, "CVE-2026-3005")["products"][0]
        assert shown["status"] == "will_not_fix"
        assert shown["justification"] == "Hardware revision A is past its support period"
    finally:
        other.app.close()
        databases.drop(other.database_url)


def test_a_bare_vex_statement_keeps_the_title_the_register_already_has(env: Env) -> None:
    import_sample(env, "cve5/CVE-2021-44228.json")
    import_sample(env, "cyclonedx/vex-not_affected.json")
    view = vulns.show(env.ctx, "CVE-2021-44228")
    assert view["title"].startswith("Apache Log4j2")
    assert view["status"] == "not_affected"


def test_an_imported_advisory_can_be_tied_to_a_product_later_keeping_its_analysis(
    demo_env: Env,
) -> None:
    import_sample(demo_env, "cyclonedx/vex-not_affected.json")
    view = vulns.set_affected(
        demo_env.ctx, "CVE-2021-44228", product="Demo Gateway", affected=["<2.0"], actor="t"
    )
    assert [(p["product"], p["status"], p["affected"]) for p in view["products"]] == [
        ("Demo Gateway", "not_affected", ["vers:semver/<2.0"])
    ]
    with pytest.raises(InvalidInput, match="not in the policy"):
        vulns.set_affected(
            demo_env.ctx, "CVE-2021-44228", product="Toaster", affected=[], actor="t"
        )
