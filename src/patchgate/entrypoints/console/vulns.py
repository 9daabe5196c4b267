"""``/console/vulnerabilities``: the register, one vulnerability, and the forms a product
security engineer uses (add, triage, mark exploited)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from patchgate.domain import vulnerabilities as rules
from patchgate.domain.clock import parse_rfc3339
from patchgate.domain.errors import InvalidInput, PatchgateError
from patchgate.entrypoints.console import base, views
from patchgate.services.policy import in_force
from patchgate.services.vulnerabilities import commands as vuln_service
from patchgate.services.vulnerabilities import register

router = APIRouter(prefix="/vulnerabilities")

ROLE = "security_analyst"
PAGE = 50


def filter_of(query: Mapping[str, str]) -> register.RegisterFilter:
    """The form's fields as the register's filter (an unknown value is refused)."""
    return register.RegisterFilter(
        severity=query.get("severity") or None,
        state=query.get("state") or None,
        product=query.get("product") or None,
        overdue=bool(query.get("overdue")),
        open_only=bool(query.get("open")),
        sort=query.get("sort") or "due",
    )


def _offset(query: Mapping[str, str]) -> int:
    try:
        offset = int(query.get("offset") or 0)
    except ValueError:
        raise InvalidInput("offset must be a whole number") from None
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
    return offset


@router.get("", response_class=HTMLResponse)
def register_list(request: Request, caller: base.SignedIn) -> HTMLResponse:
    query = {k: v for k, v in request.query_params.items() if v}
    found = register.register_page(caller.ctx, filter_of(query), offset=_offset(query), limit=PAGE)
    products = [p.name for p in in_force(caller.ctx).policy.products]
    kept = {k: v for k, v in query.items() if k != "offset"}

    def page_link(offset: int) -> str:
        return "/console/vulnerabilities?" + urlencode({**kept, "offset": offset})

    return base.page(
        request,
        "vulns.html",
        caller,
        rows=found.rows,
        found=found,
        query=query,
        products=products,
        states=rules.SLA_SEVERITY.keys(),
        sorts=register.SORTS,
        next_link=page_link(found.next_offset) if found.next_offset is not None else None,
        prev_link=page_link(max(0, found.offset - PAGE)) if found.offset else None,
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
