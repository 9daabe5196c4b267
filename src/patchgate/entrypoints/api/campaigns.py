"""Management API: campaigns (docs/campaigns.md; release_manager writes, viewer reads).

Each write runs a command, then reads the campaign's status view and renders it with the
campaign presenter, exactly as the CLI's ``--json`` does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, get_type_hints

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, create_model

from patchgate.entrypoints.api import constraints as rule
from patchgate.entrypoints.api.deps import ReleaseManager, Viewer
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import campaigns as present
from patchgate.services.campaigns import commands, views
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.context import Context

router = APIRouter(tags=["campaigns"], route_class=StrictRoute)


# The options whose syntax the document states (the others are grammars: a stage plan, a
# cron window, a version range; entrypoints/api/constraints.py).
PATTERNS = {
    "rate": rule.RATE,
    "soak": rule.DURATION,
    "timeout": rule.DURATION,
    "start_at": rule.TIMESTAMP,
    "end_at": rule.TIMESTAMP,
}


def _option_fields() -> dict[str, Any]:
    """``CreateOptions`` as pydantic fields: the same names, defaults, help and limits."""
    hints = get_type_hints(CreateOptions)
    out: dict[str, Any] = {}
    for f in fields(CreateOptions):
        limits = {k: v for k, v in f.metadata.items() if k in ("ge", "le", "max_length")}
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        assert default is not MISSING
        kind = list[str] if f.name == "groups" else hints[f.name]
        extra: dict[str, Any] = {}
        if f.name in PATTERNS:
            extra = rule.pattern(PATTERNS[f.name])
        elif f.name == "groups":
            extra = {"items": {"type": "string", "pattern": rule.GROUP}}
        schema_extra: Any = extra or None
        field = Field(
            default=default, description=f.metadata["doc"], json_schema_extra=schema_extra, **limits
        )
        out[f.name] = (kind, field)
    return out


# ``campaign create`` as JSON: the release, then the options of ``CreateOptions``.
CampaignIn: type[BaseModel] = create_model(
    "CampaignIn", release_id=(int, Field(description="Release to roll out.")), **_option_fields()
)


class HaltIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class RevertIn(BaseModel):
    to_release_id: int | None = None


def _status(ctx: Context, campaign_id: int) -> dict[str, Any]:
    return present.status_json(views.status(ctx, campaign_id))


@router.post("/campaigns", status_code=201)
def create_campaign(body: CampaignIn, caller: ReleaseManager) -> dict[str, Any]:  # type: ignore[valid-type]
    """Create a draft campaign (refused, naming the rule, for a bad release or plan)."""
    values = body.model_dump()  # type: ignore[attr-defined]
    release_id = values.pop("release_id")
    options = CreateOptions(**{**values, "groups": tuple(values["groups"])})
    campaign_id = commands.create(caller.ctx, release_id, options, actor=caller.actor)
    return _status(caller.ctx, campaign_id)


@router.get("/campaigns")
def list_campaigns(
    caller: Viewer,
    after: int = Query(0, ge=0, le=2**63 - 1, description="Continue after this id."),
    limit: int = Query(views.DEFAULT_PAGE, ge=1, le=views.MAX_PAGE),
) -> dict[str, Any]:
    """Campaigns, oldest first, a page at a time (``next_after`` continues)."""
    return present.page_json(views.list_campaigns(caller.ctx, after=after, limit=limit))


@router.get("/campaigns/{campaign_id}")
def campaign_status(campaign_id: int, caller: Viewer) -> dict[str, Any]:
    """``campaign status --json``."""
    return _status(caller.ctx, campaign_id)


def _runs(command: Callable[..., None]) -> Callable[..., dict[str, Any]]:
    """The route of a command that takes nothing but the campaign and the actor."""

    def route(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
        command(caller.ctx, campaign_id, actor=caller.actor)
        return _status(caller.ctx, campaign_id)

    return route


# ``POST /campaigns/{id}/VERB`` for the commands without a body; the route is named after
# the command (as its operationId says).
for _command in (
    commands.start,
    commands.pause,
    commands.resume,
    commands.approve,
    commands.complete,
):
    _verb = _command.__name__
    router.post(f"/campaigns/{{campaign_id}}/{_verb}", name=_verb)(_runs(_command))


@router.post("/campaigns/{campaign_id}/halt")
def halt(campaign_id: int, body: HaltIn, caller: ReleaseManager) -> dict[str, Any]:
    commands.halt(caller.ctx, campaign_id, reason=body.reason, actor=caller.actor)
    return _status(caller.ctx, campaign_id)


@router.post("/campaigns/{campaign_id}/revert")
def revert(
    campaign_id: int, caller: ReleaseManager, body: RevertIn | None = None
) -> dict[str, Any]:
    to = body.to_release_id if body is not None else None
    commands.revert(caller.ctx, campaign_id, to_release=to, actor=caller.actor)
    return _status(caller.ctx, campaign_id)


@router.post("/campaigns/{campaign_id}/evaluate")
def evaluate(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
    """Evaluate the gates now (the server's timer does this on its own)."""
    commands.evaluate(caller.ctx, campaign_id)
    return _status(caller.ctx, campaign_id)


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


@router.post("/campaigns/{campaign_id}/cancel")
def cancel(
    campaign_id: int, caller: ReleaseManager, body: CancelIn | None = None
) -> dict[str, Any]:
    """``campaign cancel``: nothing more is offered; pending actions are cancelled."""
    reason = body.reason if body is not None else ""
    commands.cancel(caller.ctx, campaign_id, reason=reason, actor=caller.actor)
    return _status(caller.ctx, campaign_id)


@router.post("/campaigns/tick")
def tick(caller: ReleaseManager) -> dict[str, Any]:
    """``campaign tick``: evaluate the gates of every running campaign once (the server's
    timer does this on its own); each evaluated campaign's verdict by ID."""
    verdicts = commands.tick(caller.ctx)
    return {"verdicts": {str(k): v for k, v in verdicts.items()}}
