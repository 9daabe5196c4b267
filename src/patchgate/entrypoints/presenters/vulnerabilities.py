"""The vulnerability register's views as JSON (the management API and ``vuln … --json``
share these shapes), as text for the CLI (aligned tables, every value as a person would
write it) and as Markdown (the CRA Art. 14 report drafts).

Times are RFC 3339 UTC with a ``Z``; a missing value is ``null`` in JSON and ``-`` in
text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
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

__all__ = [
    "art14_json",
    "art14_markdown",
    "due_json",
    "due_text",
    "import_json",
    "import_text",
    "page_json",
    "page_text",
    "sla_json",
    "sla_text",
    "vulnerability_json",
    "vulnerability_text",
]

NONE = "-"

# --- JSON ---------------------------------------------------------------------------------


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


# --- text ---------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None or value == "" or value == ():
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return rfc3339(value) or NONE
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Columns padded to line up (``right``: the indexes of right-aligned columns); the
    last column is not padded."""
    cells = [list(headers), *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        out = [
            f"{v:>{widths[i]}}" if i in right else f"{v:<{widths[i]}}"
            for i, v in enumerate(row[:-1])
        ]
        return "  ".join([*out, row[-1]]).rstrip()

    return "\n".join(line(r) for r in cells)


def _share(value: float | None) -> str:
    return NONE if value is None else f"{value:.0%}"


def page_text(page: VulnerabilityPage) -> str:
    """``vuln list``: one aligned row per vulnerability, soonest deadline first."""
    if not page.items:
        return "no vulnerabilities" + (" on this page" if page.total else "")
    return _table(
        ("ID", "SEVERITY", "SCORE", "STATUS", "SLA", "DUE", "EXPOSED", "TITLE"),
        (
            (
                v.id,
                v.severity,
                NONE if v.score is None else f"{v.score:.1f}",
                v.status,
                v.sla_state,
                v.due_at,
                v.exposed_devices,
                v.title,
            )
            for v in page.items
        ),
        right=(2, 6),
    )


def _field_lines(pairs: Iterable[tuple[str, Any]]) -> list[str]:
    items = [(label, _cell(value)) for label, value in pairs]
    width = max(len(label) for label, _ in items)
    return [f"{label + ':':<{width + 1}} {value}" for label, value in items]


def vulnerability_text(v: VulnerabilityView) -> str:
    """``vuln show`` (and the other ``vuln`` commands without ``--json``)."""
    score = NONE if v.score is None else f"{v.score:.1f}"
    lines = [f"{v.id}  {v.title}", ""]
    lines += _field_lines(
        [
            ("severity", f"{v.severity} (score {score}, deadline by {v.deadline_severity})"),
            ("cvss", f"{v.cvss_vector or NONE} ({v.score_source or 'no score'})"),
            ("aware", v.aware_at),
            ("due", v.due_at),
            ("sla", v.sla_state),
            ("status", v.status),
            ("exploited", v.exploited_at or False),
            ("exposed devices", v.exposed_devices),
            ("aliases", v.aliases),
            ("fix at 95 %", v.fix_95pct_at),
        ]
    )
    if v.upstream is not None:
        up = v.upstream
        lines += _field_lines(
            [
                (
                    "upstream",
                    f"{up.component} reported to {up.reported_to} at {rfc3339(up.reported_at)}",
                )
            ]
        )
    if v.products:
        lines += ["", _products_table(v.products)]
    if v.art14 is not None:
        lines += [
            "",
            "CRA Art. 14 reports",
            _table(
                ("REPORT", "STATE", "DUE", "SUBMITTED"),
                ((c.kind, c.state, c.due_at, c.submitted_at) for c in v.art14.reports),
            ),
        ]
    if v.notes:
        lines += ["", "Notes", *(f"- {n}" for n in v.notes)]
    return "\n".join(lines)


def _products_table(products: Sequence[ProductView]) -> str:
    return _table(
        ("PRODUCT", "STATUS", "SLA", "EXPOSED", "FIX", "AFFECTED"),
        (
            (
                p.product,
                p.status,
                p.sla_state,
                p.exposed_devices,
                NONE if p.fixing_release_id is None else f"release {p.fixing_release_id}",
                p.affected or "every version before the fix",
            )
            for p in products
        ),
        right=(3,),
    )


def due_text(reports: Sequence[DueReport]) -> str:
    """``vuln due``."""
    if not reports:
        return "no Art. 14 report is due"
    return _table(
        ("ID", "REPORT", "STATE", "DUE"),
        ((r.vulnerability_id, r.clock.kind, r.clock.state, r.clock.due_at) for r in reports),
    )


def _hours(value: float | None) -> str:
    return NONE if value is None else f"{value:.1f}"


def sla_text(report: SlaReport) -> str:
    """``report sla``: per severity, hours to release and to deploy, share met."""
    if not report.severities:
        return "no vulnerabilities in the register"
    return _table(
        (
            "SEVERITY",
            "N",
            "OPEN",
            "OVERDUE",
            "RELEASE MEDIAN H",
            "RELEASE P90 H",
            "DEPLOY MEDIAN H",
            "DEPLOY P90 H",
            "MET",
        ),
        (
            (
                r.severity,
                r.count,
                r.open,
                r.overdue,
                _hours(r.time_to_release_hours.median),
                _hours(r.time_to_release_hours.p90),
                _hours(r.time_to_deploy_hours.median),
                _hours(r.time_to_deploy_hours.p90),
                _share(r.share_met),
            )
            for r in report.severities
        ),
        right=(1, 2, 3, 4, 5, 6, 7),
    )


def import_text(result: ImportResult) -> str:
    """``vuln import``: the counts, then one line per note."""
    lines = [
        f"{result.format}: {len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.skipped)} skipped"
    ]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


# --- Markdown -------------------------------------------------------------------------------


def _md_value(value: drafts.FieldValue) -> list[str]:
    if value is None or value == "":
        return ["_to be completed_"]
    if isinstance(value, bool):
        return ["Yes" if value else "No"]
    if isinstance(value, float):
        return [f"{value:.1f}"]
    if isinstance(value, str):
        return [value]
    if not value:
        return ["_none_"]
    first = value[0]
    if isinstance(first, drafts.AffectedProduct):
        return _md_products([p for p in value if isinstance(p, drafts.AffectedProduct)])
    if isinstance(first, drafts.SecurityUpdate):
        return [
            f"- {u.product}: release {u.release_id}"
            for u in value
            if isinstance(u, drafts.SecurityUpdate)
        ]
    return [f"- {item}" for item in value]


def _md_products(products: Sequence[drafts.AffectedProduct]) -> list[str]:
    if not products:
        return ["_none_"]
    lines = [
        "| Product | Status | Affected versions | Fixing release | Exposed devices |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in products:
        versions = (
            ", ".join(f"`{r}`" for r in p.affected_versions) or "every version before the fix"
        )
        release = "none yet" if p.fixing_release_id is None else f"release {p.fixing_release_id}"
        exposed = "unknown" if p.exposed_devices is None else str(p.exposed_devices)
        lines.append(
            f"| {p.name} | {p.status.replace('_', ' ')} | {versions} | {release} | {exposed} |"
        )
    return lines


# Headings a field name would not spell right by itself.
_HEADINGS = {"cvss_vector": "CVSS vector", "indicators_of_compromise": "Indicators of compromise"}


def _section(heading: str, body: Sequence[str]) -> list[str]:
    return [f"## {heading}", "", *body, ""]


def art14_markdown(draft: drafts.Art14Draft) -> str:
    """The draft as a Markdown document a person would send: one section per field, lists
    as lists, products as a table, nothing left as a Python literal."""
    maker = draft.manufacturer
    contact = ", ".join(c.removeprefix("mailto:") for c in maker.contact) or "_to be completed_"
    vuln = draft.vulnerability
    known_as = f" (also known as {', '.join(vuln.aliases)})" if vuln.aliases else ""
    lines = [f"# {draft.title}", ""]
    lines += _section("Report", [draft.kind.replace("_", " ").capitalize()])
    lines += _section(
        "Manufacturer", [maker.name or "_to be completed_", "", f"Contact: {contact}"]
    )
    lines += _section("Vulnerability", [f"{vuln.id}{known_as}: {vuln.title}"])
    lines += _section("Due", [rfc3339(draft.due_at) or "_not running yet_"])
    lines += _section(
        "Member States where the product is made available",
        [", ".join(draft.member_states) or "_to be completed_"],
    )
    lines += _section("Products", _md_products(draft.products))
    for field in draft.fields:
        heading = _HEADINGS.get(field.name) or field.name.replace("_", " ").capitalize()
        lines += _section(heading, _md_value(field.value))
    return "\n".join(lines)
