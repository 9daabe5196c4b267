"""``/console/``: what needs attention now."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from patchgate.domain.actions import TERMINAL, Status
from patchgate.entrypoints.console import base, views
from patchgate.entrypoints.console.compliance import FLEET_MAX_AGE
from patchgate.entrypoints.presenters import compliance as present_compliance
from patchgate.services.compliance import checklist
from patchgate.services.context import Context
from patchgate.services.vulnerabilities import register

router = APIRouter()
URGENT_SHOWN = 10
CAMPAIGNS_SHOWN = 8
ACTIVE = frozenset({"running", "paused", "halted", "reverting"})


# What the DDI action states mean on the dashboard's campaign rows.
DONE = (Status.FINISHED.value,)
FAILED = (Status.ERROR.value,)
OPEN = tuple(s.value for s in Status if s not in TERMINAL)


def _campaigns(ctx: Context) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Campaigns by state, and the newest that need watching with their actions counted
    by one aggregate (the campaign's page has the stage figures and gates): one read of
    the stored campaigns, one of the releases and one count, however many there are."""
    versions = {r["id"]: r["version"] for r in views.releases(ctx)}
    with ctx.read_uow() as uow:
        every = uow.campaigns.list()
        watched = [c for c in every if c.state in ACTIVE][-CAMPAIGNS_SHOWN:][::-1]
        tallies = uow.fleet.campaign_tallies([c.id for c in watched])
    out = []
    for rec in watched:
        tally = tallies.get(rec.id, {})
        out.append(
            {
                "id": rec.id, "product": rec.product, "state": rec.state,
                "release_version": versions.get(rec.release_id, "?"),
                "stage": rec.stages[rec.stage_index]["name"],
                "stage_index": rec.stage_index, "stages": len(rec.stages),
                "halt_reason": rec.halt_reason,
                "verdict": (rec.last_gate or {}).get("verdict"),
                "done": sum(tally.get(s, 0) for s in DONE),
                "failed": sum(tally.get(s, 0) for s in FAILED),
                "open": sum(tally.get(s, 0) for s in OPEN),
            }
        )  # fmt: skip
    return Counter(c.state for c in every), out


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, caller: base.SignedIn) -> HTMLResponse:
    ctx = caller.ctx
    where = register.RegisterFilter(urgent=True, sort="due")
    urgent = register.register_page(ctx, where, limit=URGENT_SHOWN)
    by_state, active = _campaigns(ctx)
    report = checklist.view(ctx, base_url=caller.rt.base_url(request), fleet_max_age=FLEET_MAX_AGE)
    # The same read of the fleet as the checklist's A/B item, kept as long.
    fleet = checklist.fleet(ctx, max_age=FLEET_MAX_AGE)
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
        devices_total=fleet.total,
        devices_seen=fleet.seen,
        checklist=present_compliance.checklist_json(report),
    )
