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
from patchgate.services.vulnerabilities.shapes import (
    art14_json,
    due_json,
    import_json,
    page_json,
    sla_json,
    vulnerability_json,
)
from patchgate.services.vulnerabilities.views import (
    DueReport,
    ProductView,
    SlaReport,
    VulnerabilityPage,
    VulnerabilityView,
)

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
