"""``/console/compliance`` and ``/console/advisories``: the guide's checklist from live
data with its evidence, and the CSAF advisories (drafts included; publishing asks for a
confirmation and is refused for a document that does not validate)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from patchgate.entrypoints.console import base
from patchgate.entrypoints.presenters import advisories as present
from patchgate.entrypoints.presenters import compliance as present_compliance
from patchgate.services.advisories import commands, views
from patchgate.services.compliance import checklist

router = APIRouter()
# The checklist's count of A/B devices reads every device's attributes: the console reuses
# one for a minute (docs/console.md, "Performance").
FLEET_MAX_AGE = 60.0
ROLE = "security_analyst"


@router.get("/compliance", response_class=HTMLResponse)
def compliance(request: Request, caller: base.SignedIn) -> HTMLResponse:
    view = checklist.view(
        caller.ctx, base_url=caller.rt.base_url(request), fleet_max_age=FLEET_MAX_AGE
    )
    return base.page(
        request, "compliance.html", caller, report=present_compliance.checklist_json(view)
    )


@router.get("/advisories", response_class=HTMLResponse)
def advisories(request: Request, caller: base.SignedIn) -> HTMLResponse:
    found = views.advisories(caller.ctx, caller.rt.base_url(request))
    rows = [present.advisory_json(v) for v in found]
    return base.page(request, "advisories.html", caller, rows=rows)


@router.get("/advisories/{advisory_id}", response_class=HTMLResponse)
def advisory(request: Request, advisory_id: str, caller: base.SignedIn) -> HTMLResponse:
    record = views.get(caller.ctx, advisory_id)
    return base.page(
        request,
        "advisory.html",
        caller,
        a=present.advisory_json(views.view(record, caller.rt.base_url(request))),
        doc=present.reading(record.document),
    )


@router.post("/advisories/{advisory_id}/publish", response_model=None)
async def publish(request: Request, advisory_id: str, caller: base.SignedIn) -> Response:
    form = await base.form_of(request, caller, ROLE)
    if form.get("confirm") != "yes":
        record = views.get(caller.ctx, advisory_id)
        return base.page(
            request, "advisory.html", caller, status=422,
            a=present.advisory_json(views.view(record, caller.rt.base_url(request))),
            doc=present.reading(record.document), problem="tick the box to confirm",
        )  # fmt: skip
    commands.publish(
        caller.ctx, advisory_id, base_url=caller.rt.base_url(request), actor=caller.actor
    )
    return base.redirect(f"/console/advisories/{advisory_id}")
