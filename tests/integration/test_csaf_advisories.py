"""CSAF 2.0 advisories and VEX from the register (both backends): every generated document
passes the official schema and the §6.1 mandatory tests of the BSI's reference validator;
create → publish is audited; bad input changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Advisory
from patchgate.domain import csaf
from patchgate.domain.vulnerabilities import VEX_JUSTIFICATIONS
from patchgate.services import audit
from tests import vuln_views as vulns
from tests.conftest import Env
from tests.csaf_support import assert_valid_csaf
from tests.factories import make_release

PRODUCT = "Demo Gateway"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
HIGH_V30 = "CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"
V4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


def _add(env: Env, vuln_id: str, vector: str = CRITICAL, **kw: Any) -> None:
    vulns.add(
        env.ctx,
        vuln_id=vuln_id,
        title=f"{vuln_id} in the web UI",
        cvss=vector,
        actor="test",
        products=[PRODUCT],
        description=f"A flaw {vuln_id} lets a remote attacker run code.",
        **kw,
    )


def _triage(env: Env, vuln_id: str, *steps: str, **kw: Any) -> None:
    for step in steps:
        vulns.triage(env.ctx, vuln_id, status=step, actor="test", **kw)


def populate(env: Env) -> dict[str, str]:
    """One vulnerability per register state; returns {state: vulnerability ID}."""
    made: dict[str, str] = {}
    _add(env, "CVE-2026-1001", affected=["<1.0.2"])
    made["under_investigation"] = "CVE-2026-1001"
    _add(env, "CVE-2026-1002", HIGH_V30, affected=["<=1.0.1"])
    _triage(env, "CVE-2026-1002", "triaged", "fix_in_progress")
    made["affected"] = "CVE-2026-1002"
    _add(env, "CVE-2026-1003", affected=["<1.0.2"], exploited=True)
    make_release(
        env, "1.0.2", {"fw.bin": b"1.0.2"}, hardware=["demo-gw-1"], fixes=["CVE-2026-1003"]
    )
    _triage(env, "CVE-2026-1003", "triaged", "fix_in_progress", "fix_released")
    made["fixed"] = "CVE-2026-1003"
    _add(env, "PG-2026-0004", V4)
    _triage(env, "PG-2026-0004", "triaged", "will_not_fix", justification="hardware limit")
    made["will_not_fix"] = "PG-2026-0004"
    for n, justification in enumerate(VEX_JUSTIFICATIONS):
        vuln_id = f"CVE-2026-20{n:02d}"
        _add(env, vuln_id)
        _triage(env, vuln_id, "not_affected", justification=justification)
        made[f"not_affected:{justification}"] = vuln_id
    return made


def _create(env: Env, *ids: str, extra: tuple[str, ...] = ()) -> str:
    r = env.cli("advisory", "create", *ids, *extra, "--json")
    assert r.code == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["state"] == "draft" and body["id"].startswith("SA-")
    return str(body["id"])


def _document(env: Env, advisory_id: str) -> dict[str, Any]:
    r = env.cli("advisory", "show", advisory_id, "--format", "csaf")
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_every_advisory_and_vex_passes_the_schema_and_the_mandatory_tests(
    demo_env: Env, tmp_path: Path
) -> None:
    made = populate(demo_env)
    documents: dict[str, dict[str, Any]] = {}
    for state, vuln_id in made.items():
        advisory_id = _create(demo_env, vuln_id)
        documents[f"draft-{state}"] = _document(demo_env, advisory_id)
        published = demo_env.cli("advisory", "publish", advisory_id, "--json")
        assert published.code == 0, published.stderr
        assert json.loads(published.stdout)["state"] == "final"
        documents[f"final-{state}"] = _document(demo_env, advisory_id)
    together = _create(demo_env, *made.values(), extra=("--acknowledge", "Jane Doe"))
    demo_env.cli("advisory", "publish", together)
    documents["together"] = _document(demo_env, together)
    vex = demo_env.cli("vuln", "export-vex", PRODUCT, "--format", "csaf")
    assert vex.code == 0, vex.stderr
    documents["vex"] = json.loads(vex.stdout)
    assert_valid_csaf(documents, tmp_path)

    # The register's states reach the documents as CSAF product status.
    def status(name: str) -> dict[str, Any]:
        return documents[name]["vulnerabilities"][0]

    assert "under_investigation" in status("final-under_investigation")["product_status"]
    affected = status("final-affected")
    assert "known_affected" in affected["product_status"]
    assert affected["remediations"][0]["category"] == "none_available"
    assert affected["scores"][0]["cvss_v3"]["version"] == "3.0"
    fixed = status("final-fixed")
    assert fixed["product_status"]["fixed"] == ["demo-gateway-1.0.2"]
    assert "demo-gateway-1.0.1" in fixed["product_status"]["known_affected"]
    assert fixed["remediations"][0]["category"] == "vendor_fix"
    assert "1.0.2" in fixed["remediations"][0]["details"]
    assert fixed["remediations"][0]["url"].endswith("/fw.bin")
    assert any(t["category"] == "exploit_status" for t in fixed["threats"])
    wontfix = status("final-will_not_fix")
    assert wontfix["remediations"][0]["category"] == "no_fix_planned"
    assert "CVSS:4.0/" in wontfix["notes"][1]["text"]  # CSAF 2.0 has no v4 field
    labels = {status(f"final-not_affected:{j}")["flags"][0]["label"] for j in VEX_JUSTIFICATIONS}
    assert labels == set(csaf.FLAG_FOR_JUSTIFICATION.values())
    assert status("final-not_affected:code_not_present")["threats"][0]["category"] == "impact"
    assert documents["vex"]["document"]["category"] == "csaf_vex"
    assert len(documents["vex"]["vulnerabilities"]) == len(made)
    tree = json.dumps(documents["vex"]["product_tree"])
    assert "pkg:generic/example-devices-ltd/demo-gateway@1.0.2" in tree
    assert "demo-gw-1" in tree  # hardware models as model numbers
    final = documents["final-fixed"]["document"]["tracking"]
    assert final["status"] == "final" and final["version"] == "1"
    assert documents["together"]["document"]["acknowledgments"] == [{"names": ["Jane Doe"]}]


def test_create_publish_list_show_and_the_audit_log(demo_env: Env) -> None:
    _add(demo_env, "CVE-2026-3001", affected=["<1.0.2"])
    advisory_id = _create(demo_env, "CVE-2026-3001", extra=("--title", "Web UI flaw"))
    listed = json.loads(demo_env.cli("advisory", "list", "--json").stdout)["advisories"]
    assert [(a["id"], a["state"], a["title"]) for a in listed] == [
        (advisory_id, "draft", "Web UI flaw")
    ]
    published = json.loads(demo_env.cli("advisory", "publish", advisory_id, "--json").stdout)
    year = published["published_at"][:4]
    assert published["path"] == f"{year}/{csaf.file_name(advisory_id)}"
    again = demo_env.cli("advisory", "publish", advisory_id)
    assert again.code == 2 and "already published" in again.stderr
    md = demo_env.cli("advisory", "show", advisory_id, "--format", "md").stdout
    assert md.startswith("# Web UI flaw") and "CVE-2026-3001" in md and "Under investigation" in md
    html = demo_env.cli("advisory", "show", advisory_id, "--format", "html").stdout
    assert "<h1>Web UI flaw</h1>" in html
    entries = audit.entries(demo_env.ctx, subject=f"advisory:{advisory_id}")
    assert [e.action for e in reversed(entries)] == ["advisory.create", "advisory.publish"]


def test_bad_input_changes_nothing(demo_env: Env) -> None:
    _add(demo_env, "CVE-2026-4001")
    for args, message in (
        (("advisory", "create", "CVE-2026-4001", "CVE-2099-9999"), "no vulnerability"),
        (("advisory", "publish", "SA-2026-0999"), "no advisory"),
        (("advisory", "show", "SA-2026-0999"), "no advisory"),
        (("vuln", "export-vex", "../etc", "--format", "csaf"), "not a product name"),
        (("vuln", "export-vex", "Nope", "--format", "csaf"), "unknown product"),
        (("vuln", "export-vex", PRODUCT, "--format", "pdf"), "--format"),
    ):
        r = demo_env.cli(*args)
        assert r.code == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert json.loads(demo_env.cli("advisory", "list", "--json").stdout) == {"advisories": []}


def test_publishing_an_invalid_document_is_refused_and_it_stays_a_draft(demo_env: Env) -> None:
    _add(demo_env, "CVE-2026-5001", affected=["<1.0.2"])
    advisory_id = _create(demo_env, "CVE-2026-5001")
    with Session(demo_env.app.engines.write) as session:
        row = session.execute(select(Advisory).where(Advisory.id == advisory_id)).scalar_one()
        broken = json.loads(json.dumps(row.document))
        # A product status naming a product the tree does not define (§6.1.1).
        broken["vulnerabilities"][0]["product_status"]["under_investigation"].append("ghost")
        row.document = broken
        session.commit()
    r = demo_env.cli("advisory", "publish", advisory_id)
    assert r.code == 2 and "not a valid CSAF 2.0 document" in r.stderr and "ghost" in r.stderr
    listed = json.loads(demo_env.cli("advisory", "list", "--json").stdout)["advisories"]
    assert listed[0]["state"] == "draft" and listed[0]["path"] is None
