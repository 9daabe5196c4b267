"""``/console/``: what needs attention now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from patchgate.entrypoints.console import base, views
from patchgate.services.compliance import checklist
from patchgate.services.devices import DEFAULT_TENANT

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, caller: base.SignedIn) -> HTMLResponse:
    ctx = caller.ctx
    now = ctx.clock()
    register = views.vulnerabilities(ctx)
    urgent = [v for v in register if v["sla_state"] in ("overdue", "due_soon")]
    urgent.sort(key=lambda v: v["due_at"] or "")
    with ctx.read_uow() as uow:
        total, seen = uow.fleet.counts(DEFAULT_TENANT, now - timedelta(days=1))
    active: list[dict[str, Any]] = [
        views.campaign(ctx, c["id"])
        for c in views.campaigns(ctx)
        if c["state"] in ("running", "paused", "halted", "reverting")
    ]
    report = checklist.report(ctx, base_url=caller.rt.base_url(request))
    return base.page(
        request,
        "dashboard.html",
        caller,
        urgent=urgent,
        open_count=sum(1 for v in register if v["sla_state"] in views.OPEN_SLA),
        campaigns=active,
        devices_total=total,
        devices_seen=seen,
        checklist=report,
    )
