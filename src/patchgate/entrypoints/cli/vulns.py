"""``patchgate vuln ...`` and ``patchgate report sla``: the vulnerability register."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from patchgate.domain.clock import parse_rfc3339
from patchgate.domain.errors import InvalidInput
from patchgate.entrypoints.cli.common import actor, add_group, app, emit_json, emit_view

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def register(cli: typer.Typer) -> None:
    """Add ``vuln`` and ``report sla`` to ``cli``."""
    commands: dict[str, Callable[..., Any]] = {
        "add": add,
        "import": import_file,
        "list": list_vulns,
        "show": show,
        "triage": triage,
        "affects": affects,
        "override": override,
        "exploited": exploited,
        "upstream": upstream,
        "art14": art14,
        "submit": submit,
        "due": due,
        "export-vex": export_vex,
    }
    add_group(cli, "vuln", "The vulnerability register.", commands)
    report = add_group(cli, "report", "Reports.", {"sla": report_sla})
    from patchgate.entrypoints.cli.compliance import register_reports

    register_reports(report)


def _time(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise InvalidInput(f"{flag}: {value!r} is not an RFC 3339 time") from exc


def _show(vuln_id: str, as_json: bool) -> None:
    """Print the vulnerability a command changed, as JSON or as text."""
    from patchgate.entrypoints.presenters import vulnerabilities as present
    from patchgate.services.vulnerabilities import views

    view = views.show(app().context, vuln_id)
    emit_view(view, as_json, json=present.vulnerability_json, text=present.vulnerability_text)


def _change(command: Callable[..., str], vuln_id: str, as_json: bool, /, **fields: Any) -> None:
    """Run a register command (services/vulnerabilities/commands.py) on ``vuln_id`` as the
    local user, then print the vulnerability it changed."""
    _show(command(app().context, vuln_id, actor=actor(), **fields), as_json)


def add(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    title: Annotated[str, typer.Option("--title", help="A short title.")],
    cvss: Annotated[str, typer.Option("--cvss", help="CVSS:3.1/…, CVSS:3.0/… or CVSS:4.0/…")],
    aware_at: Annotated[str | None, typer.Option("--aware-at", help="RFC 3339")] = None,
    product: Annotated[list[str] | None, typer.Option("--product")] = None,
    affected: Annotated[
        list[str] | None, typer.Option("--affected", help="vers:semver/… or >=1.0,<1.2")
    ] = None,
    is_exploited: Annotated[bool, typer.Option("--exploited")] = False,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Register a vulnerability with the manufacturer's own CVSS assessment."""
    from patchgate.services.vulnerabilities import commands

    changed = commands.add(
        app().context,
        vuln_id=vuln_id,
        title=title,
        cvss=cvss,
        actor=actor(),
        aware_at=_time(aware_at, "--aware-at"),
        products=product or [],
        affected=affected or [],
        exploited=is_exploited,
        description=description,
    )
    _show(changed, as_json)


def import_file(
    path: Annotated[str, typer.Argument(metavar="FILE")],
    fmt: Annotated[str | None, typer.Option("--format", help="cve5|osv|cyclonedx")] = None,
    product: Annotated[
        list[str] | None, typer.Option("--product", help="Tie every record to this product.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import CVE JSON 5, OSV or CycloneDX (format detected when not given); all or nothing."""
    from patchgate.entrypoints.presenters import vulnerabilities as present
    from patchgate.services.vulnerabilities import imports

    try:
        with open(path, "rb") as handle:
            data = handle.read(imports.MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    result = imports.import_document(
        app().context, data, actor=actor(), fmt=fmt, products=product or [], name=path
    )
    emit_view(result, as_json, json=present.import_json, text=present.import_text)


def list_vulns(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue ones.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Every vulnerability, soonest deadline first."""
    from patchgate.entrypoints.presenters import vulnerabilities as present
    from patchgate.services.vulnerabilities import views

    page = views.list_vulnerabilities(app().context, overdue=overdue)
    emit_view(page, as_json, json=present.page_json, text=present.page_text)


def show(vuln_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """One vulnerability with its products, deadline, exposure and Art. 14 clocks."""
    _show(vuln_id, as_json)


def triage(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    status: Annotated[str, typer.Option("--status")],
    justification: Annotated[str | None, typer.Option("--justification")] = None,
    product: Annotated[str | None, typer.Option("--product")] = None,
    at: Annotated[str | None, typer.Option("--at", help="When it happened (RFC 3339)")] = None,
    release: Annotated[int | None, typer.Option("--release", help="Fixing release ID")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Move the analysis along the lifecycle (for one product, or all of them)."""
    from patchgate.services.vulnerabilities import commands

    _change(
        commands.triage,
        vuln_id,
        as_json,
        status=status,
        justification=justification,
        product=product,
        at=_time(at, "--at"),
        release_id=release,
    )


def affects(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    product: Annotated[str, typer.Option("--product")],
    affected: Annotated[
        list[str] | None, typer.Option("--affected", help="vers:semver/… or >=1.0,<1.2")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record that a product is affected, in which versions (e.g. after an import)."""
    from patchgate.services.vulnerabilities import commands

    _change(commands.set_affected, vuln_id, as_json, product=product, affected=affected or [])


def override(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    justification: Annotated[str, typer.Option("--justification")],
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    clear: Annotated[bool, typer.Option("--clear")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Override the severity (or --clear the override), with a written justification."""
    from patchgate.services.vulnerabilities import commands

    if (severity is None) != clear:
        raise InvalidInput("give --severity S or --clear")
    fields = {"severity_name": severity, "justification": justification}
    _change(commands.override_severity, vuln_id, as_json, **fields)


def exploited(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    at: Annotated[str | None, typer.Option("--at", help="When we became aware")] = None,
    severe_incident: Annotated[
        bool, typer.Option("--severe-incident", help="A severe incident (Art. 14(3))")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Mark actively exploited: escalates the deadline and starts the Art. 14 clocks."""
    from patchgate.services.vulnerabilities import commands

    when = _time(at, "--at")
    _change(commands.mark_exploited, vuln_id, as_json, at=when, severe=severe_incident)


def upstream(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    component: Annotated[str, typer.Option("--component")],
    to: Annotated[str, typer.Option("--to", help="Maintainer it was reported to")],
    at: Annotated[str | None, typer.Option("--at")] = None,
    reference: Annotated[str, typer.Option("--reference")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Record the report to a third-party component's maintainer (CRA Art. 13(6))."""
    from patchgate.services.vulnerabilities import commands

    _change(
        commands.record_upstream,
        vuln_id,
        as_json,
        component=component,
        reported_to=to,
        at=_time(at, "--at"),
        reference=reference,
    )


def art14(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    kind: Annotated[str, typer.Argument(metavar="REPORT")],
    fmt: Annotated[str, typer.Option("--format", help="json|md")] = "md",
) -> None:
    """Draft a CRA Art. 14 report (early_warning, notification, final_report, incident_*)."""
    from patchgate.entrypoints.presenters import vulnerabilities as present
    from patchgate.services.vulnerabilities import art14 as drafts

    if fmt not in ("json", "md"):
        raise InvalidInput("--format is json or md")
    draft = drafts.draft_report(app().context, vuln_id, kind)
    if fmt == "json":
        emit_json(present.art14_json(draft))
    else:
        typer.echo(present.art14_markdown(draft))


def submit(
    vuln_id: Annotated[str, typer.Argument(metavar="ID")],
    kind: Annotated[str, typer.Argument(metavar="REPORT")],
    at: Annotated[str | None, typer.Option("--at")] = None,
    reference: Annotated[str, typer.Option("--reference")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Record that an Art. 14 report was submitted."""
    from patchgate.services.vulnerabilities import commands

    when = _time(at, "--at")
    _change(commands.submit_report, vuln_id, as_json, kind=kind, at=when, reference=reference)


def due(as_json: JsonFlag = False) -> None:
    """Art. 14 reports whose clock runs and that are not submitted yet."""
    from patchgate.entrypoints.presenters import vulnerabilities as present
    from patchgate.services.vulnerabilities import views

    reports = views.reports_due(app().context)
    emit_view(reports, as_json, json=present.due_json, text=present.due_text)


def export_vex(
    product: Annotated[str, typer.Argument(metavar="PRODUCT")],
    fmt: Annotated[str, typer.Option("--format", help="cyclonedx or csaf.")] = "cyclonedx",
) -> None:
    """The VEX of the current analysis for a product, on stdout: CycloneDX 1.6, or a CSAF
    2.0 ``csaf_vex`` document."""
    from patchgate.entrypoints.cli.advisories import export_csaf_vex
    from patchgate.services.vulnerabilities import cyclonedx

    if fmt == "csaf":
        return export_csaf_vex(product)
    if fmt != "cyclonedx":
        raise InvalidInput(f"--format must be cyclonedx or csaf, not {fmt!r}")
    typer.echo(json.dumps(cyclonedx.export_vex(app().context, product), indent=2))


def report_sla(as_json: JsonFlag = False) -> None:
    """Per severity: median and p90 time to release and to deploy, share met."""
    from patchgate.entrypoints.presenters import vulnerabilities as present
    from patchgate.services.vulnerabilities import views

    report = views.sla_report(app().context)
    emit_view(report, as_json, json=present.sla_json, text=present.sla_text)
