"""Read models of campaigns: one query each, returning frozen dataclasses that the
presenters (``patchgate.entrypoints.presenters.campaigns``) render as JSON or text.
Views never change state and never import the commands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.domain.campaign_timing import timing_from, timing_json
from patchgate.domain.clock import parse_rfc3339, rfc3339
from patchgate.domain.planning import forecast
from patchgate.services.campaign_ports import CampaignRecord
from patchgate.services.campaigns import reverts
from patchgate.services.campaigns.figures import figures
from patchgate.services.campaigns.plans import (
    TIMING,
    gates_json,
    get_campaign,
    plan_of,
    progress_of,
)
from patchgate.services.context import Context
from patchgate.services.unit_of_work import UnitOfWork

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class StageStatus:
    """One stage of a campaign: its plan, gates and counts."""

    index: int
    name: str
    spec: str
    gates: Mapping[str, Any]
    counts: ex.Counts
    shortfall: int


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign as ``campaign status`` shows it."""

    id: int
    release_id: int
    release_version: str
    product: str
    state: str
    stage_index: int
    stage_name: str
    counts: ex.Counts
    stages: tuple[StageStatus, ...]
    stage_spec: str
    last_gate: Mapping[str, Any] | None
    halt_reason: str | None
    halted_at: datetime | None
    started_at: datetime | None
    stage_started_at: datetime | None
    finished_at: datetime | None
    floor_raised: bool
    revert_to_release_id: int | None
    revert: Mapping[str, Any] | None
    supersedes: int | None
    priority_versions: tuple[str, ...]
    selector: Mapping[str, Any]
    delivery: Mapping[str, Any]
    forecast_complete_at: datetime | None
    deadline_at: datetime | None
    deadline_at_risk: bool
    schedule: Mapping[str, Any] | None
    warnings: tuple[str, ...]
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``campaign create|status --json`` (and the API)."""
        return {
            "id": self.id,
            "release_id": self.release_id,
            "release_version": self.release_version,
            "product": self.product,
            "state": self.state,
            "stage": {"index": self.stage_index, "name": self.stage_name},
            "counts": self.counts.to_json(),
            "stages": [
                {
                    "index": s.index,
                    "name": s.name,
                    "spec": s.spec,
                    "gates": dict(s.gates),
                    "counts": s.counts.to_json(),
                    "shortfall": s.shortfall,
                }
                for s in self.stages
            ],
            "stage_spec": self.stage_spec,
            "last_gate": None if self.last_gate is None else dict(self.last_gate),
            "halt_reason": self.halt_reason,
            "halted_at": rfc3339(self.halted_at),
            "started_at": rfc3339(self.started_at),
            "stage_started_at": rfc3339(self.stage_started_at),
            "finished_at": rfc3339(self.finished_at),
            "floor_raised": self.floor_raised,
            "revert_to_release_id": self.revert_to_release_id,
            "revert": None if self.revert is None else dict(self.revert),
            "supersedes": self.supersedes,
            "priority_versions": list(self.priority_versions),
            "selector": dict(self.selector),
            "filter": self.selector.get("filter"),
            "delivery": dict(self.delivery),
            **self.timing_json(),
            "forecast_complete_at": rfc3339(self.forecast_complete_at),
            "deadline_at": rfc3339(self.deadline_at),
            "deadline_at_risk": self.deadline_at_risk,
            "schedule": None if self.schedule is None else dict(self.schedule),
            "warnings": list(self.warnings),
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
        }

    def timing_json(self) -> dict[str, Any]:
        """``timeout``, ``retries`` (the budget in force), ``start_at``, ``end_at``."""
        timing = timing_from(self.delivery)
        shown = timing_json(timing)
        return {
            "timeout": shown["timeout"],
            "retries": timing.max_retries,
            "start_at": shown["start_at"],
            "end_at": shown["end_at"],
        }


@dataclass(frozen=True)
class CampaignSummary:
    """A campaign in a list."""

    id: int
    release_id: int
    product: str
    state: str
    stage_index: int
    stage_name: str
    halt_reason: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """A campaign in a list, as JSON."""
        return {
            "id": self.id,
            "release_id": self.release_id,
            "product": self.product,
            "state": self.state,
            "stage": {"index": self.stage_index, "name": self.stage_name},
            "halt_reason": self.halt_reason,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True)
class CampaignPage:
    """One page of the campaign list, oldest first; ``next_after`` continues it."""

    campaigns: tuple[CampaignSummary, ...]
    next_after: int | None


def _risk(rec: CampaignRecord, forecast_risk: bool) -> bool:
    if rec.state == core.DRAFT:
        # Not started: the plan made at create time is the forecast.
        return rec.deadline_at is not None and not (rec.schedule or {}).get("feasible", False)
    return forecast_risk


def _status(ctx: Context, uow: UnitOfWork, rec: CampaignRecord, now: datetime) -> CampaignStatus:
    plan = plan_of(uow, rec)
    found = figures(ctx, uow, rec, plan, now)
    index = rec.stage_index
    current = found.stages[index]
    outlook = forecast(
        plan.stages,
        progress_of(rec),
        sizes=[c.eligible for c in found.stages],
        timing=TIMING,
        eligible=current.eligible,
        finished=current.finished,
        now=now,
        deadline=rec.deadline_at,
    )
    at_risk = _risk(rec, outlook.deadline_at_risk)
    warnings = list(rec.warnings)
    if at_risk and rec.state not in (core.COMPLETED, core.CANCELLED):
        warnings.append(
            f"deadline at risk: the last stage is forecast after {rfc3339(rec.deadline_at)}"
        )
    complete_at = outlook.complete_at
    revert = reverts.summary(uow, rec)
    if rec.state == core.DRAFT and rec.schedule:
        complete_at = parse_rfc3339(rec.schedule["complete_at"])
    return CampaignStatus(
        id=rec.id,
        release_id=rec.release_id,
        release_version=plan.release.version,
        product=rec.product,
        state=rec.state,
        stage_index=index,
        stage_name=plan.stages[index].name,
        counts=found.total,
        stages=tuple(
            StageStatus(i, s.name, s.spec(), gates_json(s.gates), c, plan.cuts[i].shortfall)
            for i, (s, c) in enumerate(zip(plan.stages, found.stages, strict=True))
        ),
        stage_spec=rec.stage_spec,
        last_gate=rec.last_gate,
        halt_reason=rec.halt_reason,
        halted_at=rec.halted_at,
        started_at=rec.started_at,
        stage_started_at=rec.stage_started_at,
        finished_at=rec.finished_at,
        floor_raised=rec.floor_raised,
        revert_to_release_id=reverts.main_target(revert),
        revert=revert,
        supersedes=rec.supersedes_id,
        priority_versions=tuple(rec.priority_versions),
        selector={
            "product": rec.product,
            "hardware": list(rec.selector.get("hardware", ())),
            "groups": list(rec.selector.get("groups", ())),
            "versions": rec.selector.get("versions"),
            "filter": rec.selector.get("filter"),
            "saved_filter": rec.selector.get("saved_filter"),
        },
        delivery=dict(rec.delivery),
        forecast_complete_at=complete_at,
        deadline_at=rec.deadline_at,
        deadline_at_risk=at_risk,
        schedule=rec.schedule,
        warnings=tuple(warnings),
        created_at=rec.created_at,
        created_by=rec.created_by,
    )


def status(ctx: Context, campaign_id: int) -> CampaignStatus:
    """One campaign's state, stages, counts, last gate, forecast and deadline."""
    with ctx.read_uow() as uow:
        return _status(ctx, uow, get_campaign(uow, campaign_id), ctx.clock())


def list_campaigns(ctx: Context, *, after: int = 0, limit: int = DEFAULT_PAGE) -> CampaignPage:
    """Campaigns with ids above ``after``, oldest first, at most ``limit`` of them."""
    limit = max(1, min(limit, MAX_PAGE))
    with ctx.read_uow() as uow:
        rows = uow.campaigns.page(after_id=after, limit=limit + 1)
    items = tuple(
        CampaignSummary(
            c.id,
            c.release_id,
            c.product,
            c.state,
            c.stage_index,
            c.stages[c.stage_index]["name"],
            c.halt_reason,
            c.created_at,
        )
        for c in rows[:limit]
    )
    more = len(rows) > limit
    return CampaignPage(items, items[-1].id if more and items else None)


def all_campaigns(ctx: Context) -> list[CampaignSummary]:
    """Every campaign's summary, oldest first, read a page at a time."""
    out: list[CampaignSummary] = []
    after = 0
    while True:
        page = list_campaigns(ctx, after=after)
        out.extend(page.campaigns)
        if page.next_after is None:
            return out
        after = page.next_after
