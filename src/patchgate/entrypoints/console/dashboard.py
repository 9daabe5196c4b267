"""``/console/``: what needs attention now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from patchgate.entrypoints.console import base, views
from patchgate.services.compliance import checklist
from patchgate.services.devices import DEFAULT_TENANT
from patchgate.services.vulnerabilities import register

router = APIRouter()
URGENT_SHOWN = 10


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, caller: base.SignedIn) -> HTMLResponse:
    ctx = caller.ctx
    now = ctx.clock()
    where = register.RegisterFilter(urgent=True, sort="due")
    urgent = register.register_page(ctx, where, limit=URGENT_SHOWN)
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
        urgent=urgent.rows,
        urgent_more=urgent.total - len(urgent.rows),
        states=urgent.states,
        open_count=sum(n for s, n in urgent.states.items() if s in register.OPEN_STATES),
        campaigns=active,
        devices_total=total,
        devices_seen=seen,
        checklist=report,
    )
