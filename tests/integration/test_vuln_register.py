"""The vulnerability register on a real database (SQLite and PostgreSQL): deadlines from the
policy in force, lifecycle, overrides, exploitation and Art. 14, exposure, SLA report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Device, Vulnerability
from patchgate.domain.errors import Conflict, InvalidInput, NotFound, TransitionRefused
from patchgate.entrypoints.presenters import vulnerabilities as present
from patchgate.services import audit, releases
from patchgate.services import devices as device_service
from patchgate.services.vulnerabilities import art14 as drafts
from tests import vuln_views as vulns
from tests.conftest import Env
from tests.factories import make_release

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
HIGH = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"  # 8.8
MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"  # 5.9
LOW = "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:L/I:N/A:N"  # 2.7
PRODUCT = "Demo Gateway"


def at(env: Env, when: datetime) -> None:
    """Set the injected clock."""
    env.ctx.clock = lambda: when


def add(env: Env, vuln_id: str, vector: str = HIGH, **kw: object) -> dict:  # type: ignore[type-arg]
    return vulns.add(
        env.ctx,
        vuln_id=vuln_id,
        title=f"{vuln_id} title",
        cvss=vector,
        actor="test",
        **kw,  # type: ignore[arg-type]
    )


def add_devices(env: Env, rows: list[tuple[str, str | None, str | None]]) -> None:
    for cid, hardware, version in rows:
        device_service.add_device(env.ctx, cid, hardware=hardware, version=version, actor="test")


def set_version(env: Env, controller_id: str, version: str) -> None:
    with Session(env.app.engines.write) as session:
        session.execute(
            update(Device)
            .where(Device.controller_id == controller_id)
            .values(installed_version=version)
        )
        session.commit()


def add_release(env: Env, version: str, fixes: list[str], signed_at: datetime) -> int:
    """A signed release of the product fixing ``fixes``, created (and signed, in lab mode)
    at ``signed_at``; the clock is put back afterwards."""
    now = env.ctx.clock
    at(env, signed_at)
    try:
        made = make_release(
            env,
            version,
            {"fw.bin": version.encode()},
            hardware=["demo-gw-1"],
            security_version=1,
            fixes=fixes,
        )
    finally:
        env.ctx.clock = now
    return made.id


def test_add_gives_the_score_severity_and_deadline_of_the_policy(demo_env: Env) -> None:
    at(demo_env, NOW)
    v = add(demo_env, "CVE-2026-1000", CRITICAL, products=[PRODUCT])
    for name in (
        "id",
        "title",
        "cvss_vector",
        "cvss_version",
        "score",
        "severity",
        "score_source",
        "aware_at",
        "due_at",
        "sla_state",
        "status",
        "exploited",
        "exposed_devices",
    ):
        assert name in v
    assert (v["score"], v["severity"], v["cvss_version"]) == (9.8, "critical", "3.1")
    assert v["score_source"] == "manufacturer"
    assert v["aware_at"] == "2026-03-04T12:00:00Z"
    assert v["due_at"] == "2026-03-07T12:00:00Z"  # critical: 72 h in the default policy
    assert (v["sla_state"], v["status"], v["exploited"]) == ("on_track", "new", False)
    assert "art14" not in v
    medium = add(demo_env, "CVE-2026-1001", MEDIUM, aware_at=NOW - timedelta(days=1))
    assert medium["due_at"] == "2026-06-01T12:00:00Z"  # 90 days after awareness


def test_a_duplicate_id_is_refused_and_the_existing_record_is_untouched(env: Env) -> None:
    at(env, NOW)
    add(env, "CVE-2026-1002", HIGH)
    with pytest.raises(Conflict, match="already in the register"):
        add(env, "cve-2026-1002", CRITICAL)
    assert vulns.show(env.ctx, "CVE-2026-1002")["score"] == 8.8


def test_a_malformed_vector_stores_nothing_and_records_nothing(env: Env) -> None:
    at(env, NOW)
    before = len(audit.entries(env.ctx, limit=1000))
    with pytest.raises(InvalidInput, match="Missing mandatory metrics"):
        add(env, "CVE-2026-1003", "CVSS:3.1/AV:N/AC:L/PR:N")
    with pytest.raises(NotFound):
        vulns.show(env.ctx, "CVE-2026-1003")
    assert len(audit.entries(env.ctx, limit=1000)) == before


def test_unknown_products_and_unreadable_ranges_are_refused(demo_env: Env) -> None:
    at(demo_env, NOW)
    with pytest.raises(InvalidInput, match="not in the policy"):
        add(demo_env, "CVE-2026-1004", products=["Toaster"])
    with pytest.raises(InvalidInput, match="not a version"):
        add(demo_env, "CVE-2026-1004", products=[PRODUCT], affected=["<banana"])


def test_the_lifecycle_is_audited_and_refuses_closed_to_new(demo_env: Env) -> None:
    at(demo_env, NOW)
    add(demo_env, "CVE-2026-1005", products=[PRODUCT])
    for status in ("triaged", "fix_in_progress", "fix_released", "fix_deployed", "closed"):
        v = vulns.triage(demo_env.ctx, "CVE-2026-1005", status=status, actor="cli:alice")
        assert v["status"] == status
    with pytest.raises(TransitionRefused, match="closed → new is not allowed"):
        vulns.triage(demo_env.ctx, "CVE-2026-1005", status="new", actor="cli:alice")
    trail = audit.entries(demo_env.ctx, subject="vuln:CVE-2026-1005", limit=50)
    assert [e.action for e in trail].count("vuln.triage") == 5
    assert trail[0].actor == "cli:alice"
    assert trail[0].details["changes"] == [
        {"product": PRODUCT, "from": "fix_deployed", "to": "closed"}
    ]


def test_not_affected_needs_a_justification_and_is_kept_per_product(demo_env: Env) -> None:
    at(demo_env, NOW)
    add(demo_env, "CVE-2026-1006", products=[PRODUCT])
    with pytest.raises(InvalidInput, match="VEX justification"):
        vulns.triage(demo_env.ctx, "CVE-2026-1006", status="not_affected", actor="t")
    v = vulns.triage(
        demo_env.ctx,
        "CVE-2026-1006",
        status="not_affected",
        actor="t",
        justification="code_not_reachable",
        product=PRODUCT,
    )
    assert v["products"][0]["justification"] == "code_not_reachable"
    assert v["sla_state"] == "not_applicable"


def test_a_severity_override_needs_a_justification_is_audited_and_moves_the_deadline(
    env: Env,
) -> None:
    at(env, NOW)
    add(env, "CVE-2026-1007", LOW)
    with pytest.raises(InvalidInput, match="justification"):
        vulns.override_severity(
            env.ctx, "CVE-2026-1007", severity_name="high", justification="", actor="t"
        )
    v = vulns.override_severity(
        env.ctx,
        "CVE-2026-1007",
        severity_name="high",
        justification="Reachable from the field bus without authentication",
        actor="cli:bob",
    )
    assert (v["severity"], v["score"], v["cvss_severity"]) == ("high", 2.7, "low")
    assert v["due_at"] == "2026-04-01T12:00:00Z"  # 28 days
    entry = audit.entries(env.ctx, subject="vuln:CVE-2026-1007", limit=1)[0]
    assert (entry.action, entry.actor) == ("vuln.override", "cli:bob")
    assert entry.details["from"] == "low" and entry.details["to"] == "high"


def test_exploitation_escalates_to_the_critical_cadence_and_starts_the_art14_clocks(
    demo_env: Env,
) -> None:
    at(demo_env, NOW)
    add(demo_env, "CVE-2026-1008", LOW, products=[PRODUCT])
    later = NOW + timedelta(hours=5)
    at(demo_env, later)
    v = vulns.mark_exploited(demo_env.ctx, "CVE-2026-1008", actor="t")
    assert v["exploited"] is True
    assert v["severity"] == "low" and v["deadline_severity"] == "critical"
    assert v["due_at"] == "2026-03-07T12:00:00Z"  # 72 h after awareness of the vulnerability
    art14 = v["art14"]
    assert art14["early_warning_due"] == "2026-03-05T17:00:00Z"
    assert art14["notification_due"] == "2026-03-07T17:00:00Z"
    assert art14["final_report_due"] is None  # no corrective measure yet
    assert art14["member_states"] == ["DE", "FR", "NL"] and art14["required"] is True
    draft = vulns.draft_report(demo_env.ctx, "CVE-2026-1008", "early_warning")
    assert draft["member_states"] == ["DE", "FR", "NL"] and draft["actively_exploited"]
    markdown = present.art14_markdown(
        drafts.draft_report(demo_env.ctx, "CVE-2026-1008", "early_warning")
    )
    assert "# Early warning" in markdown
    due = vulns.reports_due(demo_env.ctx)
    assert [r["report"] for r in due] == ["early_warning", "notification"]
    vulns.submit_report(
        demo_env.ctx, "CVE-2026-1008", "early_warning", actor="t", reference="ENISA-1"
    )
    vulns.triage(demo_env.ctx, "CVE-2026-1008", status="fix_released", actor="t", at=later)
    v = vulns.show(demo_env.ctx, "CVE-2026-1008")
    assert v["art14"]["reports"]["early_warning"]["state"] == "submitted"
    assert v["art14"]["final_report_due"] == "2026-03-18T17:00:00Z"  # 14 days after the fix
    with pytest.raises(Conflict):
        vulns.mark_exploited(demo_env.ctx, "CVE-2026-1008", actor="t")


def test_a_severe_incident_has_its_own_clocks(env: Env) -> None:
    at(env, NOW)
    add(env, "CVE-2026-1009")
    assert vulns.reports_due(env.ctx) == []
    v = vulns.mark_exploited(env.ctx, "CVE-2026-1009", actor="t", severe=True)
    reports = v["art14"]["reports"]
    assert v["art14"]["required"] is False  # tied to no product: nothing to report yet
    assert vulns.reports_due(env.ctx) == []
    assert set(reports) == {
        "incident_early_warning",
        "incident_notification",
        "incident_final_report",
    }
    assert reports["incident_final_report"]["due_at"] is None
    vulns.submit_report(env.ctx, "CVE-2026-1009", "incident_notification", actor="t")
    v = vulns.show(env.ctx, "CVE-2026-1009")
    assert v["art14"]["incident_final_report_due"] == "2026-04-03T12:00:00Z"


def test_upstream_reporting_of_a_third_party_component_is_recorded(env: Env) -> None:
    at(env, NOW)
    add(env, "CVE-2026-1010")
    v = vulns.record_upstream(
        env.ctx, "CVE-2026-1010", actor="t", component="libfoo", reported_to="foo maintainers"
    )
    assert v["upstream"]["reported_at"] == "2026-03-04T12:00:00Z"
    assert audit.entries(env.ctx, limit=1)[0].action == "vuln.upstream"


def test_an_upstream_report_dated_in_the_future_is_refused_and_changes_nothing(
    env: Env,
) -> None:
    at(env, NOW)
    add(env, "CVE-2026-1011")
    before = vulns.show(env.ctx, "CVE-2026-1011")
    with pytest.raises(InvalidInput, match="cannot be dated in the future"):
        vulns.record_upstream(
            env.ctx,
            "CVE-2026-1011",
            actor="t",
            component="libfoo",
            reported_to="foo maintainers",
            at=NOW + timedelta(hours=1),
        )
    assert vulns.show(env.ctx, "CVE-2026-1011") == before
    assert audit.entries(env.ctx, limit=1)[0].action == "vuln.add"


def test_exposure_counts_devices_of_the_product_on_affected_versions_and_falls_as_they_update(
    demo_env: Env,
) -> None:
    at(demo_env, NOW)
    add_devices(
        demo_env,
        [
            ("d1", "demo-gw-1", "1.0.0"),
            ("d2", "demo-gw-1", "1.1.5"),
            ("d3", "demo-gw-1", "1.2.0"),
            ("d4", "demo-gw-1", None),
            ("d5", "demo-gw-1", "1.0.0"),
        ],
    )
    # d5 then reports a board no product of the policy names (DDI configData may say so).
    with Session(demo_env.app.engines.write) as session:
        session.execute(
            update(Device).where(Device.controller_id == "d5").values(hardware="other-hw")
        )
        session.commit()
    v = add(demo_env, "CVE-2026-1011", products=[PRODUCT], affected=[">=1.0.0, <1.2.0"])
    assert v["exposed_devices"] == 2
    assert v["exposure"]["per_product"] == {PRODUCT: 2}
    assert (v["products"][0]["fleet_devices"], v["products"][0]["patched_share"]) == (4, 0.5)
    set_version(demo_env, "d1", "1.2.0")
    assert vulns.show(demo_env.ctx, "CVE-2026-1011")["exposed_devices"] == 1
    vulns.triage(
        demo_env.ctx,
        "CVE-2026-1011",
        status="not_affected",
        actor="t",
        justification="requires_configuration",
    )
    assert vulns.show(demo_env.ctx, "CVE-2026-1011")["exposed_devices"] == 0


def test_without_ranges_every_version_before_the_fixing_release_is_exposed(
    demo_env: Env,
) -> None:
    at(demo_env, NOW)
    add_devices(demo_env, [("e1", "demo-gw-1", "1.0"), ("e2", "demo-gw-1", "2.0")])
    add(demo_env, "CVE-2026-1012", products=[PRODUCT])
    assert vulns.show(demo_env.ctx, "CVE-2026-1012")["exposed_devices"] == 2
    at(demo_env, NOW + timedelta(days=2))
    release_id = add_release(demo_env, "1.5", ["CVE-2026-1012"], NOW + timedelta(days=1))
    v = vulns.show(demo_env.ctx, "CVE-2026-1012")
    assert v["exposed_devices"] == 1
    product = v["products"][0]
    assert product["fixing_release_id"] == release_id
    assert product["released_at"] == "2026-03-05T12:00:00Z"  # the release's signature
    with pytest.raises(InvalidInput, match=f"no release {release_id + 1}"):
        vulns.triage(
            demo_env.ctx,
            "CVE-2026-1012",
            status="fix_released",
            actor="t",
            release_id=release_id + 1,
        )
    named = vulns.triage(
        demo_env.ctx, "CVE-2026-1012", status="fix_released", actor="t", release_id=release_id
    )
    assert named["products"][0]["fixing_release_id"] == release_id


def test_the_sla_state_follows_the_injected_clock_until_the_fix_is_deployed(
    demo_env: Env,
) -> None:
    at(demo_env, NOW)
    add(demo_env, "CVE-2026-1013", CRITICAL, products=[PRODUCT])  # due in 72 h
    at(demo_env, NOW + timedelta(hours=57))
    assert vulns.show(demo_env.ctx, "CVE-2026-1013")["sla_state"] == "on_track"
    at(demo_env, NOW + timedelta(hours=58))  # the last 20 % begins at 57.6 h
    assert vulns.show(demo_env.ctx, "CVE-2026-1013")["sla_state"] == "due_soon"
    at(demo_env, NOW + timedelta(hours=73))
    assert vulns.show(demo_env.ctx, "CVE-2026-1013")["sla_state"] == "overdue"
    assert [v["id"] for v in vulns.list_all(demo_env.ctx, overdue=True)] == ["CVE-2026-1013"]
    vulns.triage(
        demo_env.ctx,
        "CVE-2026-1013",
        status="fix_deployed",
        actor="t",
        at=NOW + timedelta(hours=70),
    )
    assert vulns.show(demo_env.ctx, "CVE-2026-1013")["sla_state"] == "met"
    assert vulns.list_all(demo_env.ctx, overdue=True) == []


def test_the_sla_report_gives_median_p90_and_share_met_per_severity(demo_env: Env) -> None:
    at(demo_env, NOW)
    hours = [10, 20, 30, 40, 80]  # deployed after awareness; the deadline is 72 h
    for i in range(len(hours)):
        add(demo_env, f"CVE-2026-20{i:02d}", CRITICAL, products=[PRODUCT])
    add(demo_env, "CVE-2026-2100", MEDIUM, products=[PRODUCT])
    at(demo_env, NOW + timedelta(days=10))
    for i, h in enumerate(hours):
        vulns.triage(
            demo_env.ctx,
            f"CVE-2026-20{i:02d}",
            status="fix_released",
            actor="t",
            at=NOW + timedelta(hours=h / 2),
        )
        vulns.triage(
            demo_env.ctx,
            f"CVE-2026-20{i:02d}",
            status="fix_deployed",
            actor="t",
            at=NOW + timedelta(hours=h),
        )
    report = vulns.sla_report(demo_env.ctx)["severities"]
    critical = report["critical"]
    assert critical["count"] == 5
    assert critical["time_to_deploy_hours"]["median"] == 30
    assert critical["time_to_deploy_hours"]["p90"] == 80
    assert critical["time_to_release_hours"]["median"] == 15
    assert (critical["met"], critical["missed"]) == (4, 1)
    assert critical["share_met"] == 0.8
    medium = report["medium"]
    assert medium["count"] == 1 and medium["open"] == 1 and medium["share_met"] is None


def test_a_withdrawn_release_is_never_shown_as_the_fix(demo_env: Env) -> None:
    at(demo_env, NOW)
    add(demo_env, "CVE-2026-1090", CRITICAL, products=[PRODUCT], exploited=True)
    fix = make_release(demo_env, "1.5", {"fw.bin": b"fix"}, fixes=["CVE-2026-1090"])
    shown = vulns.show(demo_env.ctx, "CVE-2026-1090")["products"][0]
    assert shown["fixing_release_id"] == fix.id
    assert shown["released_at"] == "2026-03-04T12:00:00Z"
    releases.withdraw_release(demo_env.ctx, fix.id, reason="bricks devices", actor="t")
    shown = vulns.show(demo_env.ctx, "CVE-2026-1090")["products"][0]
    assert (shown["fixing_release_id"], shown["released_at"]) == (None, None)
    notification = vulns.draft_report(demo_env.ctx, "CVE-2026-1090", "notification")
    assert notification["corrective_measures_taken"] == []
    assert notification["products"][0]["fixing_release_id"] is None
    final = vulns.draft_report(demo_env.ctx, "CVE-2026-1090", "final_report")
    assert final["security_update"] == []


def test_a_release_fixing_a_records_alias_is_that_records_fix(demo_env: Env) -> None:
    at(demo_env, NOW)
    add(demo_env, "GHSA-2222-3333-4444", products=[PRODUCT])
    with demo_env.app.engines.write.begin() as connection:
        connection.execute(
            update(Vulnerability)
            .where(Vulnerability.id == "GHSA-2222-3333-4444")
            .values(aliases=["CVE-2026-3333"])
        )
    add_devices(demo_env, [("a1", "demo-gw-1", "1.0"), ("a2", "demo-gw-1", "2.0")])
    fix = add_release(demo_env, "1.5", ["CVE-2026-3333"], NOW)
    shown = vulns.show(demo_env.ctx, "cve-2026-3333")
    assert shown["id"] == "GHSA-2222-3333-4444"
    assert shown["products"][0]["fixing_release_id"] == fix
    assert shown["exposed_devices"] == 1  # 1.0 is before the fix, 2.0 is not
