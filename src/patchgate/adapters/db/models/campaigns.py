"""Campaigns: one row per campaign, holding what its snapshot plan is built from.

Stages, cohort cuts, selector and delivery settings are stored as JSON documents written
and read by the campaign service (``patchgate.services.campaigns``), so the plan a poll
decides on is exactly the plan that was created. Progress (state, stage, times, halt
reason, last gate verdict) has columns of its own; every change of it is audited in the
same transaction, which also raises the state version (docs/architecture.md).
Executions are not copied here: counts come from ``actions``/``action_events`` and
``health_reports`` (decision 7).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, intpk, str64, str255


class Campaign(Base):
    """A phased rollout of one release (or, once reverting, of its known-good release).

    ``rate_tokens``/``rate_at`` are the rate-limit bucket shared by every server process:
    an offer of a rate-limited campaign takes a token under this row's lock.
    """

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_product_state", "product", "state"),)

    id: Mapped[intpk]
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    product: Mapped[str255]
    salt: Mapped[str64]
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    stage_spec: Mapped[str] = mapped_column(Text)
    cuts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    selector: Mapped[dict[str, Any]] = mapped_column(JSON)
    delivery: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    stage_index: Mapped[int] = mapped_column(default=0)
    stage_started_at: Mapped[datetime | None]
    approved: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None]
    halted_at: Mapped[datetime | None]
    halt_reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
    floor_raised: Mapped[bool] = mapped_column(default=False)
    revert_to_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    supersedes_id: Mapped[int | None]
    priority_versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    deadline_at: Mapped[datetime | None]
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate_tokens: Mapped[float | None] = mapped_column(Float)
    rate_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str255]
    updated_at: Mapped[datetime]


class RevertTarget(Base):
    """The revert plan of a reverting campaign: per device running the halted release, the
    release it is offered (the last one it ran successfully that is not halted, withdrawn
    or below the security floor), or none (``release_id`` NULL, ``reason`` says why).
    Written by ``services/campaigns/reverts.py``; a device is in at most one reverting
    campaign's plan (docs/campaigns.md "Revert")."""

    __tablename__ = "campaign_revert_targets"
    __table_args__ = (Index("ix_campaign_revert_targets_device", "device_id"),)

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    reason: Mapped[str | None] = mapped_column(String(255))
    planned_at: Mapped[datetime]


class CampaignFigure(Base):
    """A campaign's figures as of its last gate evaluation (docs/campaigns.md, "Figures"):
    the marks up to which action events, health reports and device registrations are
    folded in, the per-stage eligible counts and the fleet size, and the health tallies of
    the updated and baseline cohorts. The gate tick folds in only what came after the
    marks, so its cost follows the changes, not the fleet."""

    __tablename__ = "campaign_figures"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    event_mark: Mapped[int] = mapped_column(BigInteger, default=0)
    health_mark: Mapped[int] = mapped_column(BigInteger, default=0)
    device_mark: Mapped[int] = mapped_column(BigInteger, default=0)
    eligible: Mapped[list[int]] = mapped_column(JSON, default=list)
    fleet: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_crashes: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_hours: Mapped[float] = mapped_column(Float, default=0.0)
    baseline_crashes: Mapped[int] = mapped_column(BigInteger, default=0)
    baseline_hours: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime]


class CampaignExecution(Base):
    """One device's execution in a campaign, folded from its latest action's events and
    its health reports (``domain.executions.fold``) when they last changed. ``due_at`` is
    when the execution times out if nothing more arrives (rule 2), so the per-stage counts
    are one indexed aggregate that applies the timeouts at read time."""

    __tablename__ = "campaign_executions"
    __table_args__ = (
        Index("ix_campaign_executions_counts", "campaign_id", "stage", "status", "due_at"),
    )

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stage: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime | None]
