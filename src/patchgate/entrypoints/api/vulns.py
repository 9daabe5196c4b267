"""Management API of the vulnerability register: ``/api/v1/vulnerabilities``.

Reading needs the viewer role; every change needs security_analyst (or admin).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from patchgate.entrypoints.api import constraints as rule
from patchgate.entrypoints.api.deps import Caller, SecurityAnalyst, Viewer, limited
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import vulnerabilities as present
from patchgate.services.context import Context
from patchgate.services.vulnerabilities import art14 as drafts
from patchgate.services.vulnerabilities import commands, cyclonedx, imports, views

# An Art. 14 report kind as a path segment (the enum the document states).
ReportKind = Annotated[str, Path(json_schema_extra=rule.enum(rule.REPORT_KINDS))]

router = APIRouter(prefix="/vulnerabilities", tags=["vulnerabilities"], route_class=StrictRoute)


class NewVulnerability(BaseModel):
    id: str = Field(min_length=1, max_length=128, json_schema_extra=rule.pattern(rule.VULN_ID))
    title: str = Field(min_length=1, max_length=500, json_schema_extra=rule.pattern(rule.NOT_BLANK))
    cvss: str = Field(
        description="CVSS:3.1/…, CVSS:3.0/… or CVSS:4.0/… vector",
        json_schema_extra=rule.pattern(rule.CVSS),
    )
    aware_at: datetime | None = None
    products: list[str] = []
    affected: list[str] = []
    exploited: bool = False
    description: str = ""


class Triage(BaseModel):
    status: str = Field(json_schema_extra=rule.enum(rule.TRIAGE_STATUSES))
    justification: str | None = None
    product: str | None = None
    at: datetime | None = None
    release_id: int | None = None


class Affects(BaseModel):
    product: str
    affected: list[str] = []


class Override(BaseModel):
    severity: str | None = Field(
        description="null clears the override",
        json_schema_extra=rule.enum([*rule.SEVERITIES, None]),
    )
    justification: str = Field(
        description="10+ characters",
        json_schema_extra=rule.pattern(rule.JUSTIFICATION),
        max_length=2000,
    )


class Exploited(BaseModel):
    at: datetime | None = None
    severe_incident: bool = False


class Upstream(BaseModel):
    component: str = Field(json_schema_extra=rule.pattern(rule.NOT_BLANK))
    reported_to: str = Field(json_schema_extra=rule.pattern(rule.NOT_BLANK))
    at: datetime | None = None
    reference: str = ""


class SubmitReport(BaseModel):
    at: datetime | None = None
    reference: str = ""


def _shown(ctx: Context, vuln_id: str) -> dict[str, Any]:
    return present.vulnerability_json(views.show(ctx, vuln_id))


def _change(
    caller: Caller,
    command: Callable[..., str],
    vuln_id: str,
    body: BaseModel,
    kind: str | None = None,
    **renamed: str,
) -> dict[str, Any]:
    """Run a register command (services/vulnerabilities/commands.py) as the caller: the
    body's fields are its keyword arguments (``renamed`` maps a field to the argument of
    another name), an Art. 14 ``kind`` follows the ID; answer the changed vulnerability."""
    fields = {renamed.get(name, name): value for name, value in body}
    kinds = () if kind is None else (kind,)
    changed = command(caller.ctx, vuln_id, *kinds, actor=caller.actor, **fields)
    return _shown(caller.ctx, changed)


@router.get("")
def list_vulnerabilities(
    caller: Viewer,
    overdue: bool = False,
    offset: int = Query(default=0, ge=0),
    limit: int | None = Query(default=None, ge=1, le=10_000),
) -> dict[str, Any]:
    """The register, soonest deadline first; ``offset``/``limit`` page it (``total``
    counts every match)."""
    page = views.list_vulnerabilities(caller.ctx, overdue=overdue, offset=offset, limit=limit)
    return present.page_json(page)


@router.post("", status_code=201)
def add_vulnerability(caller: SecurityAnalyst, body: NewVulnerability) -> dict[str, Any]:
    """Register a vulnerability (422 with the cvss library's reason for a bad vector, 409
    for a duplicate ID)."""
    vuln_id = commands.add(
        caller.ctx,
        vuln_id=body.id,
        title=body.title,
        cvss=body.cvss,
        actor=caller.actor,
        aware_at=body.aware_at,
        products=body.products,
        affected=body.affected,
        exploited=body.exploited,
        description=body.description,
    )
    return _shown(caller.ctx, vuln_id)


# The document is read as it streams in, so the body is declared here.
IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A CVE JSON 5 record, an OSV record or a CycloneDX VEX/BOM document",
        "content": {"application/json": {"schema": {"type": ["object", "array"]}}},
    }
}


@router.post("/import", openapi_extra=IMPORT_BODY)
async def import_vulnerabilities(
    request: Request,
    caller: SecurityAnalyst,
    format: Literal["cve5", "osv", "cyclonedx"] | None = None,  # the CLI flag's name
    product: list[str] = Query(default=[]),  # noqa: B008  # FastAPI's way to declare a list
) -> dict[str, Any]:
    """Import a CVE JSON 5, OSV or CycloneDX document sent as the request body (413 past
    ``MAX_IMPORT_BYTES``, refused while reading rather than after buffering it all)."""
    limit = imports.MAX_IMPORT_BYTES
    data = b"".join([chunk async for chunk in limited(request, limit)])
    result = await run_in_threadpool(
        imports.import_document,
        caller.ctx,
        data,
        actor=caller.actor,
        fmt=format,
        products=product,
        name="the body",
    )
    return present.import_json(result)


@router.get("/reports/due")
def art14_due(caller: Viewer) -> dict[str, Any]:
    """CRA Art. 14 reports whose clock runs and that are not submitted yet."""
    return present.due_json(views.reports_due(caller.ctx))


@router.get("/reports/sla")
def sla(caller: Viewer) -> dict[str, Any]:
    """The SLA report (the same as ``patchgate report sla --json``)."""
    return present.sla_json(views.sla_report(caller.ctx))


@router.get("/vex/{product}")
def vex(caller: Viewer, product: str) -> dict[str, Any]:
    """CycloneDX 1.6 VEX of the current analysis for a product."""
    return cyclonedx.export_vex(caller.ctx, product)


@router.get("/{vuln_id}")
def show_vulnerability(caller: Viewer, vuln_id: str) -> dict[str, Any]:
    """One vulnerability, by its ID or one of its aliases."""
    return _shown(caller.ctx, vuln_id)


@router.post("/{vuln_id}/triage")
def triage(caller: SecurityAnalyst, vuln_id: str, body: Triage) -> dict[str, Any]:
    """Move along the lifecycle (409 naming the allowed transitions when refused)."""
    return _change(caller, commands.triage, vuln_id, body)


@router.put("/{vuln_id}/products")
def affects(caller: SecurityAnalyst, vuln_id: str, body: Affects) -> dict[str, Any]:
    """Record that a product is affected and in which versions."""
    return _change(caller, commands.set_affected, vuln_id, body)


@router.post("/{vuln_id}/override")
def override(caller: SecurityAnalyst, vuln_id: str, body: Override) -> dict[str, Any]:
    """Override the severity with a written justification (audited)."""
    return _change(caller, commands.override_severity, vuln_id, body, severity="severity_name")


@router.post("/{vuln_id}/exploited")
def exploited(caller: SecurityAnalyst, vuln_id: str, body: Exploited) -> dict[str, Any]:
    """Record active exploitation (or a severe incident): starts the Art. 14 clocks."""
    return _change(caller, commands.mark_exploited, vuln_id, body, severe_incident="severe")


@router.post("/{vuln_id}/upstream")
def upstream(caller: SecurityAnalyst, vuln_id: str, body: Upstream) -> dict[str, Any]:
    """Record the report to the component's maintainer (CRA Art. 13(6))."""
    return _change(caller, commands.record_upstream, vuln_id, body)


@router.get("/{vuln_id}/art14/{kind}", response_model=None)
def art14_draft(
    caller: Viewer,
    vuln_id: str,
    kind: ReportKind,
    format: Literal["json", "md"] = "json",
) -> dict[str, Any] | PlainTextResponse:
    """Draft of one Art. 14 report as JSON or Markdown."""
    draft = drafts.draft_report(caller.ctx, vuln_id, kind)
    if format == "md":
        return PlainTextResponse(present.art14_markdown(draft), media_type="text/markdown")
    return present.art14_json(draft)


@router.post("/{vuln_id}/art14/{kind}/submitted")
def art14_submitted(
    caller: SecurityAnalyst, vuln_id: str, kind: ReportKind, body: SubmitReport
) -> dict[str, Any]:
    """Record the submission of an Art. 14 report."""
    return _change(caller, commands.submit_report, vuln_id, body, kind=kind)
