"""The vulnerability register's views in their JSON form: the management API and
``vuln … --json`` print it (through ``entrypoints.presenters.vulnerabilities``), and the
compliance evidence, the notices and the console read it, so all of them show one shape.

Times are RFC 3339 UTC with a ``Z``; a missing value is ``null``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.services.vulnerabilities import art14 as drafts
from patchgate.services.vulnerabilities.parsing import ImportResult
from patchgate.services.vulnerabilities.views import (
    Art14View,
    DueReport,
    DurationStats,
    ProductView,
    SlaReport,
    VulnerabilityPage,
    VulnerabilityView,
)
from patchgate.services.vulnerability_ports import Component, UpstreamReport

# ---------------------------------------------------------------------------------


def _product_json(p: ProductView) -> dict[str, Any]:
    return {
        "product": p.product,
        "status": p.status,
        "justification": p.justification,
        "affected": list(p.affected),
        "fixing_release_id": p.fixing_release_id,
        "due_at": rfc3339(p.due_at),
        "sla_state": p.sla_state,
        "released_at": rfc3339(p.released_at),
        "deployed_at": rfc3339(p.deployed_at),
        "exposed_devices": p.exposed_devices,
        "fleet_devices": p.fleet_devices,
        "patched_share": p.patched_share,
        "fix_95pct_at": rfc3339(p.rollout.reached_at),
        "time_to_95pct_hours": p.rollout.hours,
        "fix_affected_devices": p.rollout.affected_devices,
        "fix_running_devices": p.rollout.running_devices,
        "fix_running_share": p.rollout.running_share,
    }


def _art14_json(art14: Art14View) -> dict[str, Any]:
    body: dict[str, Any] = {
        "required": art14.required,
        "member_states": list(art14.member_states),
        "severe_incident_at": rfc3339(art14.severe_incident_at),
        "reports": {
            c.kind: {
                "due_at": rfc3339(c.due_at),
                "state": c.state,
                "submitted_at": rfc3339(c.submitted_at),
            }
            for c in art14.reports
        },
    }
    for clock in art14.reports:
        body[f"{clock.kind}_due"] = rfc3339(clock.due_at)
    return body


def _component_json(c: Component) -> dict[str, Any]:
    return {
        "name": c.name,
        "package": c.package,
        "ecosystem": c.ecosystem,
        "purl": c.purl,
        "version": c.version,
        "ref": c.ref,
        "ranges": list(c.ranges),
    }


def _upstream_json(up: UpstreamReport | None) -> dict[str, Any]:
    if up is None:
        return {}
    return {
        "component": up.component,
        "reported_to": up.reported_to,
        "reported_at": rfc3339(up.reported_at),
        "reference": up.reference,
    }


def vulnerability_json(v: VulnerabilityView) -> dict[str, Any]:
    """``vuln show --json`` and ``GET /api/v1/vulnerabilities/{id}``."""
    body: dict[str, Any] = {
        "id": v.id,
        "title": v.title,
        "description": v.description,
        "aliases": list(v.aliases),
        "cvss_vector": v.cvss_vector,
        "cvss_version": v.cvss_version,
        "score": v.score,
        "cvss_severity": v.cvss_severity,
        "severity": v.severity,
        "severity_override": (
            {
                "severity": v.severity_override.severity,
                "justification": v.severity_override.justification,
            }
            if v.severity_override
            else None
        ),
        "deadline_severity": v.deadline_severity,
        "score_source": v.score_source,
        "scores": [
            {
                "source": s.source,
                "provider": s.provider,
                "version": s.version,
                "vector": s.vector,
                "score": s.score,
            }
            for s in v.scores
        ],
        "aware_at": rfc3339(v.aware_at),
        "due_at": rfc3339(v.due_at),
        "sla_state": v.sla_state,
        "status": v.status,
        "exploited": v.exploited,
        "exploited_at": rfc3339(v.exploited_at),
        "products": [_product_json(p) for p in v.products],
        # A count, as scripts expect; per product in ``exposure`` and in ``products[]``.
        "exposed_devices": v.exposed_devices,
        "exposure": {"total": v.exposed_devices, "per_product": dict(v.exposure_per_product)},
        # The moment 95 % of the affected devices of every product ran the fix.
        "fix_95pct_at": rfc3339(v.fix_95pct_at),
        "time_to_95pct_hours": v.time_to_95pct_hours,
        "components": [_component_json(c) for c in v.components],
        "upstream": _upstream_json(v.upstream),
        "origin": v.origin,
        "notes": list(v.notes),
        "withdrawn_at": rfc3339(v.withdrawn_at),
        "created_at": rfc3339(v.created_at),
        "updated_at": rfc3339(v.updated_at),
    }
    if v.art14 is not None:
        body["art14"] = _art14_json(v.art14)
    return body


def page_json(page: VulnerabilityPage) -> dict[str, Any]:
    """``vuln list --json`` and ``GET /api/v1/vulnerabilities``."""
    return {
        "vulnerabilities": [vulnerability_json(v) for v in page.items],
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
    }


def due_json(reports: Sequence[DueReport]) -> dict[str, Any]:
    """``vuln due --json`` and ``GET /api/v1/vulnerabilities/reports/due``."""
    return {
        "reports": [
            {
                "id": r.vulnerability_id,
                "report": r.clock.kind,
                "due_at": rfc3339(r.clock.due_at),
                "state": r.clock.state,
                "submitted_at": rfc3339(r.clock.submitted_at),
            }
            for r in reports
        ]
    }


def _stats_json(s: DurationStats) -> dict[str, Any]:
    return {"median": s.median, "p90": s.p90, "n": s.n}


def sla_json(report: SlaReport) -> dict[str, Any]:
    """``report sla --json`` and ``GET /api/v1/vulnerabilities/reports/sla``."""
    return {
        "generated_at": rfc3339(report.generated_at),
        "severities": {
            row.severity: {
                "count": row.count,
                "open": row.open,
                "overdue": row.overdue,
                "time_to_release_hours": _stats_json(row.time_to_release_hours),
                "time_to_deploy_hours": _stats_json(row.time_to_deploy_hours),
                "met": row.met,
                "missed": row.missed,
                "share_met": row.share_met,
            }
            for row in report.severities
        },
    }


def import_json(result: ImportResult) -> dict[str, Any]:
    """``vuln import --json`` and ``POST /api/v1/vulnerabilities/import``."""
    return {
        "format": result.format,
        "created": list(result.created),
        "updated": list(result.updated),
        "skipped": list(result.skipped),
        "notes": list(result.notes),
    }


def art14_json(draft: drafts.Art14Draft) -> dict[str, Any]:
    """``vuln art14 ID REPORT --format json`` and its API twin."""
    return drafts.draft_record(draft)
