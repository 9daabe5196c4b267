"""``/console/vulnerabilities``: the register, one vulnerability, and the forms a product
security engineer uses (add, triage, mark exploited)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from patchgate.domain import vulnerabilities as rules
from patchgate.domain.clock import parse_rfc3339
from patchgate.domain.errors import InvalidInput, PatchgateError
from patchgate.entrypoints.console import base, views
from patchgate.services.policy import in_force
from patchgate.services.vulnerabilities import commands as vuln_service

router = APIRouter(prefix="/vulnerabilities")

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "none": 4}
SORTS = {
    "due": lambda v: (v["due_at"] is None, v["due_at"] or ""),
    "score": lambda v: -(v["score"] or 0.0),
    "severity": lambda v: SEVERITY_ORDER.get(v["severity"], 9),
    "exposure": lambda v: -(v["exposed_devices"] or 0),
    "id": lambda v: v["id"],
}
ROLE = "security_analyst"


def _filtered(rows: list[dict[str, Any]], q: Mapping[str, str]) -> list[dict[str, Any]]:
    out = rows
    if q.get("severity"):
        out = [v for v in out if v["severity"] == q["severity"]]
    if q.get("state"):
        out = [v for v in out if v["sla_state"] == q["state"]]
    if q.get("product"):
        out = [v for v in out if any(p["product"] == q["product"] for p in v["products"])]
    if q.get("overdue"):
        out = [v for v in out if v["sla_state"] == "overdue"]
    if q.get("open"):
        out = [v for v in out if v["sla_state"] in views.OPEN_SLA]
    return sorted(out, key=SORTS.get(q.get("sort", "due"), SORTS["due"]))


@router.get("", response_class=HTMLResponse)
def register(request: Request, caller: base.SignedIn) -> HTMLResponse:
    query = {k: v for k, v in request.query_params.items() if v}
    rows = _filtered(views.vulnerabilities(caller.ctx), query)
    products = [p.name for p in in_force(caller.ctx).policy.products]
    return base.page(
        request,
        "vulns.html",
        caller,
        rows=rows,
        query=query,
        products=products,
        states=rules.SLA_SEVERITY.keys(),
        sorts=list(SORTS),
    )


def _new_form(
    request: Request, caller: base.Caller, values: Mapping[str, str], problems: dict[str, str]
) -> HTMLResponse:
    products = [p.name for p in in_force(caller.ctx).policy.products]
    status = 422 if problems else 200
    return base.page(
        request, "vuln_new.html", caller, status=status, values=values, problems=problems,
        products=products,
    )  # fmt: skip


@router.get("/new", response_class=HTMLResponse)
def new_form(request: Request, caller: base.SignedIn) -> HTMLResponse:
    caller.require(ROLE)
    return _new_form(request, caller, {}, {})


def _field_of(message: str) -> str:
    lowered = message.lower()
    for field in ("cvss", "title", "product", "range", "aware"):
        if field in lowered:
            return {"range": "affected", "aware": "aware_at"}.get(field, field)
    return "id"


@router.post("/new", response_model=None)
async def add(request: Request, caller: base.SignedIn) -> Response:
    form = await base.form_of(request, caller, ROLE)
    products = [p for p in (form.get("product") or "").split(",") if p.strip()]
    try:
        aware = parse_rfc3339(form["aware_at"]) if form.get("aware_at") else None
        made = vuln_service.add(
            caller.ctx,
            vuln_id=(form.get("id") or "").strip(),
            title=form.get("title") or "",
            cvss=(form.get("cvss") or "").strip(),
            actor=caller.actor,
            aware_at=aware,
            products=[p.strip() for p in products],
            affected=[r.strip() for r in (form.get("affected") or "").split(";") if r.strip()],
            exploited=form.get("exploited") == "on",
        )
    except ValueError:
        return _new_form(request, caller, form, {"aware_at": "not an RFC 3339 time"})
    except PatchgateError as exc:
        return _new_form(request, caller, form, {_field_of(exc.message): exc.message})
    return base.redirect(f"/console/vulnerabilities/{made}")


@router.get("/{vuln_id}", response_class=HTMLResponse)
def detail(request: Request, vuln_id: str, caller: base.SignedIn) -> HTMLResponse:
    return _detail(request, caller, vuln_id, {}, {})


def _detail(
    request: Request,
    caller: base.Caller,
    vuln_id: str,
    values: Mapping[str, str],
    problems: dict[str, str],
) -> HTMLResponse:
    v = views.vulnerability(caller.ctx, vuln_id)
    return base.page(
        request,
        "vuln.html",
        caller,
        status=422 if problems else 200,
        v=v,
        vector=_vector_parts(v.get("cvss_vector")),
        statuses=rules.STATUSES,
        justifications=rules.VEX_JUSTIFICATIONS,
        values=values,
        problems=problems,
    )


# CVSS v3.x base metrics (FIRST CVSS v3.1 specification §2) and CVSS v4.0 base metrics
# (§2), spelled out for the breakdown table; an unknown one is shown as written.
METRICS = {
    "AV": ("Attack vector", {"N": "Network", "A": "Adjacent", "L": "Local", "P": "Physical"}),
    "AC": ("Attack complexity", {"L": "Low", "H": "High"}),
    "AT": ("Attack requirements", {"N": "None", "P": "Present"}),
    "PR": ("Privileges required", {"N": "None", "L": "Low", "H": "High"}),
    "UI": ("User interaction", {"N": "None", "R": "Required", "P": "Passive", "A": "Active"}),
    "S": ("Scope", {"U": "Unchanged", "C": "Changed"}),
    "C": ("Confidentiality", {"N": "None", "L": "Low", "H": "High"}),
    "I": ("Integrity", {"N": "None", "L": "Low", "H": "High"}),
    "A": ("Availability", {"N": "None", "L": "Low", "H": "High"}),
    "VC": ("Confidentiality (vulnerable system)", {"N": "None", "L": "Low", "H": "High"}),
    "VI": ("Integrity (vulnerable system)", {"N": "None", "L": "Low", "H": "High"}),
    "VA": ("Availability (vulnerable system)", {"N": "None", "L": "Low", "H": "High"}),
    "SC": ("Confidentiality (subsequent systems)", {"N": "None", "L": "Low", "H": "High"}),
    "SI": ("Integrity (subsequent systems)", {"N": "None", "L": "Low", "H": "High"}),
    "SA": ("Availability (subsequent systems)", {"N": "None", "L": "Low", "H": "High"}),
}


def _vector_parts(vector: str | None) -> list[tuple[str, str]]:
    """``CVSS:3.1/AV:N/AC:L/…`` as (metric, value) pairs in words, for the breakdown."""
    if not vector:
        return []
    out: list[tuple[str, str]] = []
    for part in vector.split("/")[1:]:
        key, _, value = part.partition(":")
        name, values = METRICS.get(key, (key, {}))
        out.append((f"{name} ({key})", f"{values.get(value, value)} ({value})"))
    return out


@router.post("/{vuln_id}/triage", response_model=None)
async def triage(request: Request, vuln_id: str, caller: base.SignedIn) -> Response:
    form = await base.form_of(request, caller, ROLE)
    status = form.get("status") or ""
    if status not in rules.STATUSES:
        problem = f"choose a status ({', '.join(rules.STATUSES)})"
        return _detail(request, caller, vuln_id, form, {"status": problem})
    try:
        vuln_service.triage(
            caller.ctx,
            vuln_id,
            status=status,
            actor=caller.actor,
            justification=form.get("justification") or None,
            product=form.get("product") or None,
        )
    except InvalidInput as exc:
        field = "justification" if "justification" in exc.message.lower() else "status"
        return _detail(request, caller, vuln_id, form, {field: exc.message})
    return base.redirect(f"/console/vulnerabilities/{vuln_id}")


@router.post("/{vuln_id}/exploited", response_model=None)
async def exploited(request: Request, vuln_id: str, caller: base.SignedIn) -> Response:
    await base.form_of(request, caller, ROLE)
    vuln_service.mark_exploited(caller.ctx, vuln_id, actor=caller.actor)
    return base.redirect(f"/console/vulnerabilities/{vuln_id}")
