"""Management API: campaigns (INTERFACES.md; release_manager writes, viewer reads)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from patchgate.entrypoints.api.deps import ReleaseManager, Viewer
from patchgate.services import campaigns

router = APIRouter(tags=["campaigns"])


class CampaignIn(BaseModel):
    """``campaign create`` as JSON."""

    # The release, then campaigns.CreateOptions field for field (create_campaign passes
    # them on by name); this model adds the API's limits and its OpenAPI schema.

    release_id: int
    stages: str | None = None
    max_failure_rate: float | None = None
    min_finished: int | None = Field(default=None, ge=0)
    soak: str | None = None
    manual: bool = False
    confirm_required: bool = False
    rate: str | None = None
    window: str | None = None
    forced: bool = True
    download_only: bool = False
    fill_canary: bool = False
    groups: list[str] = Field(default_factory=list)
    supersedes: int | None = None
    versions: str | None = Field(default=None, max_length=500)


class HaltIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class RevertIn(BaseModel):
    to_release_id: int | None = None


@router.post("/campaigns", status_code=201)
def create_campaign(body: CampaignIn, caller: ReleaseManager) -> dict[str, Any]:
    """Create a draft campaign (refused, naming the rule, for a bad release or plan)."""
    options = campaigns.CreateOptions(
        **body.model_dump(exclude={"release_id", "groups"}), groups=tuple(body.groups)
    )
    return campaigns.create(caller.ctx, body.release_id, options, actor=caller.actor)


@router.get("/campaigns")
def list_campaigns(caller: Viewer) -> dict[str, Any]:
    return {"campaigns": campaigns.list_campaigns(caller.ctx)}


@router.get("/campaigns/{campaign_id}")
def campaign_status(campaign_id: int, caller: Viewer) -> dict[str, Any]:
    """``campaign status --json``."""
    return campaigns.status(caller.ctx, campaign_id)


@router.post("/campaigns/{campaign_id}/start")
def start(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
    return campaigns.start(caller.ctx, campaign_id, actor=caller.actor)


@router.post("/campaigns/{campaign_id}/pause")
def pause(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
    return campaigns.pause(caller.ctx, campaign_id, actor=caller.actor)


@router.post("/campaigns/{campaign_id}/resume")
def resume(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
    return campaigns.resume(caller.ctx, campaign_id, actor=caller.actor)


@router.post("/campaigns/{campaign_id}/approve")
def approve(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
    return campaigns.approve(caller.ctx, campaign_id, actor=caller.actor)


@router.post("/campaigns/{campaign_id}/complete")
def complete(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
    return campaigns.complete(caller.ctx, campaign_id, actor=caller.actor)


@router.post("/campaigns/{campaign_id}/halt")
def halt(campaign_id: int, body: HaltIn, caller: ReleaseManager) -> dict[str, Any]:
    return campaigns.halt(caller.ctx, campaign_id, reason=body.reason, actor=caller.actor)


@router.post("/campaigns/{campaign_id}/revert")
def revert(
    campaign_id: int, caller: ReleaseManager, body: RevertIn | None = None
) -> dict[str, Any]:
    to = body.to_release_id if body is not None else None
    return campaigns.revert(caller.ctx, campaign_id, to_release=to, actor=caller.actor)


@router.post("/campaigns/{campaign_id}/evaluate")
def evaluate(campaign_id: int, caller: ReleaseManager) -> dict[str, Any]:
    """Evaluate the gates now (the server's timer does this on its own)."""
    campaigns.evaluate(caller.ctx, campaign_id)
    return campaigns.status(caller.ctx, campaign_id)


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


@router.post("/campaigns/{campaign_id}/cancel")
def cancel(
    campaign_id: int, caller: ReleaseManager, body: CancelIn | None = None
) -> dict[str, Any]:
    """``campaign cancel``: nothing more is offered; pending actions are cancelled."""
    reason = body.reason if body is not None else ""
    return campaigns.cancel(caller.ctx, campaign_id, reason=reason, actor=caller.actor)


@router.post("/campaigns/tick")
def tick(caller: ReleaseManager) -> dict[str, Any]:
    """``campaign tick``: evaluate the gates of every running campaign once (the server's
    timer does this on its own); each evaluated campaign's verdict by ID."""
    verdicts = campaigns.tick(caller.ctx)
    return {"verdicts": {str(k): v for k, v in verdicts.items()}}
