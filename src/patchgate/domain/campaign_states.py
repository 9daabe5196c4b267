"""The campaign's state machine: commands, the events they record, and the progress they
move (docs/campaign-core.md "State machine").

State machine (docs/contract.md states), commands imperative, events past tense::

    draft ──start──► running ◄──resume── paused
      │               │  ├──pause──────────►│
      │               │  ├──advance (gates pass; last stage: completes)
      │               │  └──approve (a stage that awaits approval)
      │               ├──complete (last stage) ──► completed   (security floor raised)
      │     running|paused ──halt──► halted ──revert──► reverting ──complete──► completed
      └──cancel── draft|running|paused|halted|reverting ──► cancelled

A halted campaign cannot be started or resumed: recovery is a revert
or a roll-forward campaign for a new release. Completing a reverting campaign does not
raise the floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from patchgate.domain.errors import InvalidInput, TransitionRefused
from patchgate.domain.gates import ADVANCE, AWAIT_APPROVAL, HALT, GateResult

# States (docs/contract.md).
DRAFT: Final = "draft"
RUNNING: Final = "running"
PAUSED: Final = "paused"
HALTED: Final = "halted"
REVERTING: Final = "reverting"
COMPLETED: Final = "completed"
CANCELLED: Final = "cancelled"
STATES: Final = (DRAFT, RUNNING, PAUSED, HALTED, REVERTING, COMPLETED, CANCELLED)


# Commands (imperative).
@dataclass(frozen=True)
class StartCampaign:
    """``campaign start``."""

    name: Final = "start"


@dataclass(frozen=True)
class PauseCampaign:
    """``campaign pause``: no new offers; open actions continue."""

    name: Final = "pause"


@dataclass(frozen=True)
class ResumeCampaign:
    """``campaign resume``."""

    name: Final = "resume"


@dataclass(frozen=True)
class ApproveStage:
    """``campaign approve``: the current stage may advance once its gates pass."""

    name: Final = "approve"


@dataclass(frozen=True)
class AdvanceStage:
    """Gate evaluation passed (issued by the gate evaluator, not by people)."""

    gate: GateResult | None = None
    name: Final = "advance"


@dataclass(frozen=True)
class HaltCampaign:
    """``campaign halt --reason`` or a breached gate (``gate`` holds its figures)."""

    reason: str
    gate: GateResult | None = None
    name: Final = "halt"


@dataclass(frozen=True)
class RevertCampaign:
    """``campaign revert``: offer each device on the bad release its last good one."""

    name: Final = "revert"


@dataclass(frozen=True)
class CompleteCampaign:
    """``campaign complete`` (or the last stage's gates passing)."""

    name: Final = "complete"


@dataclass(frozen=True)
class CancelCampaign:
    """Cancel the campaign: pending actions are cancelled, nothing more is offered."""

    reason: str = ""
    name: Final = "cancel"


Command = (
    StartCampaign
    | PauseCampaign
    | ResumeCampaign
    | ApproveStage
    | AdvanceStage
    | HaltCampaign
    | RevertCampaign
    | CompleteCampaign
    | CancelCampaign
)


# Events (past tense), what the audit log records.
@dataclass(frozen=True)
class CampaignEvent:
    """A transition that happened: ``kind`` (past tense), when, and its details."""

    kind: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


CAMPAIGN_STARTED: Final = "campaign-started"
CAMPAIGN_PAUSED: Final = "campaign-paused"
CAMPAIGN_RESUMED: Final = "campaign-resumed"
STAGE_APPROVED: Final = "stage-approved"
STAGE_ADVANCED: Final = "stage-advanced"
CAMPAIGN_HALTED: Final = "campaign-halted"
REVERT_STARTED: Final = "revert-started"
CAMPAIGN_COMPLETED: Final = "campaign-completed"
CAMPAIGN_CANCELLED: Final = "campaign-cancelled"

ALLOWED: Final[Mapping[str, tuple[str, ...]]] = {
    DRAFT: ("start", "cancel"),
    RUNNING: ("pause", "approve", "advance", "complete", "halt", "cancel"),
    PAUSED: ("resume", "approve", "complete", "halt", "cancel"),
    HALTED: ("revert", "cancel"),
    REVERTING: ("complete", "cancel"),
    COMPLETED: (),
    CANCELLED: (),
}


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a campaign stands: state, current stage and the facts its transitions set."""

    state: str = DRAFT
    stage_index: int = 0
    stage_started_at: datetime | None = None
    approved: bool = False
    started_at: datetime | None = None
    halted_at: datetime | None = None
    halt_reason: str | None = None
    finished_at: datetime | None = None
    floor_raised: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """The progress after a command, and the events to record (in order)."""

    progress: Progress
    events: tuple[CampaignEvent, ...]


def transition(progress: Progress, command: Command, *, stages: int, now: datetime) -> Transition:
    """Apply ``command`` (module state machine), or raise ``TransitionRefused`` naming the
    commands the current state allows."""
    state = progress.state
    allowed = ALLOWED[state]
    name = command.name
    if name not in allowed:
        options = ", ".join(allowed) if allowed else "none (the campaign is finished)"
        hint = ""
        if state == HALTED and name in ("start", "resume"):
            hint = " — a halted campaign never offers its release again; revert, or roll forward"
        raise TransitionRefused(f"cannot {name} a {state} campaign; allowed: {options}{hint}")
    if isinstance(command, AdvanceStage):
        return _advance(progress, command, last=stages - 1, now=now)
    if isinstance(command, HaltCampaign):
        return _halt(progress, command, now)
    if isinstance(command, CompleteCampaign):
        return _complete_command(progress, stages=stages, now=now)
    return _simple(progress, command, now)


# Stands for the moment of the command in ``SETS``.
NOW: Final = object()

# The transitions that only set facts of the progress: the command's name → the event it
# records, the facts it sets, and whether the event names the stage it leaves the campaign
# at (a cancel's event names its reason).
SETS: Final[Mapping[str, tuple[str, Mapping[str, Any], bool]]] = {
    "start": (
        CAMPAIGN_STARTED,
        {"state": RUNNING, "stage_index": 0, "stage_started_at": NOW, "started_at": NOW},
        True,
    ),
    "pause": (CAMPAIGN_PAUSED, {"state": PAUSED}, False),
    "resume": (CAMPAIGN_RESUMED, {"state": RUNNING}, False),
    "approve": (STAGE_APPROVED, {"approved": True}, True),
    "revert": (REVERT_STARTED, {"state": REVERTING}, False),
    "cancel": (CAMPAIGN_CANCELLED, {"state": CANCELLED, "finished_at": NOW}, False),
}


def _simple(progress: Progress, command: Command, now: datetime) -> Transition:
    """A transition of ``SETS``."""
    kind, facts, names_stage = SETS[command.name]
    changes: dict[str, Any] = {k: now if v is NOW else v for k, v in facts.items()}
    new = replace(progress, **changes)
    details: dict[str, Any] = {"stage": new.stage_index} if names_stage else {}
    if isinstance(command, CancelCampaign):
        details["reason"] = command.reason
    return Transition(new, (CampaignEvent(kind, now, details),))


def _advance(progress: Progress, command: AdvanceStage, *, last: int, now: datetime) -> Transition:
    gate = {} if command.gate is None else {"gate": command.gate.to_json()}
    if progress.stage_index >= last:
        return _complete(progress, now, rollout=True, details=gate)
    to = progress.stage_index + 1
    new = replace(progress, stage_index=to, stage_started_at=now, approved=False)
    moved = {"from": progress.stage_index, "to": to, **gate}
    return Transition(new, (CampaignEvent(STAGE_ADVANCED, now, moved),))


def _halt(progress: Progress, command: HaltCampaign, now: datetime) -> Transition:
    if not command.reason.strip():
        raise InvalidInput("halt: a reason is required")
    new = replace(progress, state=HALTED, halted_at=now, halt_reason=command.reason)
    details: dict[str, Any] = {"reason": command.reason, "stage": progress.stage_index}
    if command.gate is not None:
        details["gate"] = command.gate.to_json()
    return Transition(new, (CampaignEvent(CAMPAIGN_HALTED, now, details),))


def _complete_command(progress: Progress, *, stages: int, now: datetime) -> Transition:
    if progress.state == REVERTING:
        return _complete(progress, now, rollout=False, details={})
    if progress.stage_index < stages - 1:
        raise TransitionRefused(
            f"cannot complete at stage {progress.stage_index + 1} of {stages}; "
            "the last stage must be reached first"
        )
    return _complete(progress, now, rollout=True, details={})


def _complete(
    progress: Progress, now: datetime, *, rollout: bool, details: Mapping[str, Any]
) -> Transition:
    new = replace(progress, state=COMPLETED, finished_at=now, floor_raised=rollout)
    event = CampaignEvent(CAMPAIGN_COMPLETED, now, {"floor_raised": rollout, **details})
    return Transition(new, (event,))


def apply_verdict(
    progress: Progress, gate: GateResult, *, stages: int, now: datetime
) -> Transition:
    """What a gate verdict does: a running campaign advances (or completes); a running or
    paused one halts with the gate's figures (a pause stops offers, not the evidence of
    devices already updating); anything else changes nothing."""
    if gate.verdict == ADVANCE and progress.state == RUNNING:
        return transition(progress, AdvanceStage(gate), stages=stages, now=now)
    if gate.verdict == HALT and progress.state in (RUNNING, PAUSED):
        reason = "; ".join(gate.reasons)
        return transition(progress, HaltCampaign(reason, gate), stages=stages, now=now)
    return Transition(progress, ())


def awaiting_approval(gate: GateResult | None) -> bool:
    """Whether a stage's last gate result waits for ``approve``."""
    return gate is not None and gate.verdict == AWAIT_APPROVAL


def floor_after(floor: int, release_security_version: int, progress: Progress) -> int:
    """The product's security floor after a campaign: raised to the release's security
    version only by a completed rollout (``Trust``: never at install, never by a revert)."""
    if progress.state == COMPLETED and progress.floor_raised:
        return max(floor, release_security_version)
    return floor
