"""``/console/``: what needs attention now."""

from __future__ import annotations

from collections import Counter
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
CAMPAIGNS_SHOWN = 8
ACTIVE = frozenset({"running", "paused", "halted", "reverting"})


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, caller: base.SignedIn) -> HTMLResponse:
    ctx = caller.ctx
    now = ctx.clock()
    where = register.RegisterFilter(urgent=True, sort="due")
    urgent = register.register_page(ctx, where, limit=URGENT_SHOWN)
    with ctx.read_uow() as uow:
        total, seen = uow.fleet.counts(DEFAULT_TENANT, now - timedelta(days=1))
    # The newest campaigns that need watching, each with its stage figures (the campaign
    # view's own figures); older ones are on the campaign list.
    every = views.campaigns(ctx)
    watched = [c for c in every if c["state"] in ACTIVE][-CAMPAIGNS_SHOWN:]
    by_state = Counter(c["state"] for c in every)
    active: list[dict[str, Any]] = [views.campaign(ctx, c["id"]) for c in reversed(watched)]
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
        campaign_states=by_state,
        devices_total=total,
        devices_seen=seen,
        checklist=report,
    )
