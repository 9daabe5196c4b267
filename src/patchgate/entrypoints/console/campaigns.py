"""``/console/campaigns``: rollouts, their stages and gates, and the release manager's
actions. Every action asks for confirmation on a page of its own, then goes through the
same service call as the CLI and is audited with the signed-in token's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from patchgate.domain import campaigns as core
from patchgate.domain.errors import InvalidInput, NotFound
from patchgate.entrypoints.console import base, charts, views
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.context import Context

router = APIRouter(prefix="/campaigns")
ROLE = "release_manager"
CHART_POINTS = 160  # the chart's resolution: one point per 2.5 px of its width

# The buttons, by the command they run (the CLI's verbs).
VERBS: dict[str, str] = {
    "start": "Start",
    "pause": "Pause",
    "resume": "Resume",
    "approve": "Approve",
    "halt": "Halt",
    "revert": "Revert",
    "complete": "Complete",
}
EXPLAIN = {
    "start": "Devices of the first stage are offered the release from now on.",
    "pause": "No new offers until you resume; devices already installing finish.",
    "resume": "Offers continue where the campaign stopped.",
    "approve": "The next stage opens now.",
    "halt": "No device is offered the release again, from the moment this commits; open "
    "actions are cancelled through DDI and people are notified.",
    "revert": "Devices that installed this release are offered the last release each ran "
    "successfully.",
    "complete": "The campaign ends and the product's security floor rises to this release: "
    "devices can no longer go back below it.",
}


def _run(ctx: Context, verb: str, campaign_id: int, actor: str, reason: str) -> None:
    run: dict[str, Callable[[], Any]] = {
        "start": lambda: commands.start(ctx, campaign_id, actor=actor),
        "pause": lambda: commands.pause(ctx, campaign_id, actor=actor),
        "resume": lambda: commands.resume(ctx, campaign_id, actor=actor),
        "approve": lambda: commands.approve(ctx, campaign_id, actor=actor),
        "halt": lambda: commands.halt(ctx, campaign_id, reason=reason, actor=actor),
        "revert": lambda: commands.revert(ctx, campaign_id, actor=actor),
        "complete": lambda: commands.complete(ctx, campaign_id, actor=actor),
    }
    run[verb]()


def _verb(verb: str) -> str:
    if verb not in VERBS:
        raise NotFound(f"no campaign action {verb!r}")
    return verb


@router.get("", response_class=HTMLResponse)
def campaign_list(request: Request, caller: base.SignedIn) -> HTMLResponse:
    rows = list(reversed(views.campaigns(caller.ctx)))
    return base.page(request, "campaigns.html", caller, rows=rows)


@router.get("/{campaign_id}", response_class=HTMLResponse)
def detail(request: Request, campaign_id: int, caller: base.SignedIn) -> HTMLResponse:
    c = views.campaign(caller.ctx, campaign_id)
    with caller.ctx.read_uow() as uow:
        curve = uow.fleet.finish_curve(campaign_id, CHART_POINTS)
    stage = c["stages"][c["stage"]["index"]]
    threshold = (stage.get("gates") or {}).get("max_failure_rate")
    allowed = [v for v in VERBS if v in core.ALLOWED.get(c["state"], ())]
    return base.page(
        request,
        "campaign.html",
        caller,
        c=c,
        chart=charts.failure_rate(curve, threshold),
        actions=allowed if caller.can(ROLE) else [],
        verbs=VERBS,
    )


@router.get("/{campaign_id}/{verb}", response_class=HTMLResponse)
def confirm(request: Request, campaign_id: int, verb: str, caller: base.SignedIn) -> HTMLResponse:
    caller.require(ROLE)
    c = views.campaign(caller.ctx, campaign_id)
    return base.page(
        request, "campaign_confirm.html", caller, c=c, verb=_verb(verb), label=VERBS[verb],
        explain=EXPLAIN[verb], problems={},
    )  # fmt: skip


@router.post("/{campaign_id}/{verb}", response_model=None)
async def act(request: Request, campaign_id: int, verb: str, caller: base.SignedIn) -> Response:
    form = await base.form_of(request, caller, ROLE)
    _verb(verb)
    reason = (form.get("reason") or "").strip()
    if form.get("confirm") != "yes" or (verb == "halt" and not reason):
        c = views.campaign(caller.ctx, campaign_id)
        problems = {"reason": "say why the campaign halts (it is recorded and sent to people)"}
        if form.get("confirm") != "yes":
            problems = {"confirm": "tick the box to confirm"}
        return base.page(
            request, "campaign_confirm.html", caller, status=422, c=c, verb=verb,
            label=VERBS[verb], explain=EXPLAIN[verb], problems=problems, reason=reason,
        )  # fmt: skip
    _run(caller.ctx, verb, campaign_id, caller.actor, reason)
    return base.redirect(f"/console/campaigns/{campaign_id}")


def create_options(form: dict[str, str]) -> CreateOptions:
    """The create form's fields as ``campaign create`` options."""
    try:
        rate = float(form["max_failure_rate"]) / 100 if form.get("max_failure_rate") else None
        minimum = int(form["min_finished"]) if form.get("min_finished") else None
    except ValueError:
        raise InvalidInput("the failure rate and minimum finished must be numbers") from None
    return CreateOptions(
        stages=form.get("stages") or None,
        max_failure_rate=rate,
        min_finished=minimum,
        soak=form.get("soak") or None,
        manual=form.get("manual") == "on",
    )
