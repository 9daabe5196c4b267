"""The campaign commands: create, the transitions (start, pause, resume, approve,
complete, halt, cancel, revert) and the gate evaluation (``evaluate``, ``tick``). Each
changes state under the campaign's row lock and returns an id or a small result; the
views (``services.campaigns.views``) read what they did.

The rules live in the pure core (``patchgate.domain.campaigns``, ``cohorts``, ``stages``,
``executions``, ``gates``, ``planning``; docs/campaign-core.md). Every transition takes the
campaign's row lock first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one writer), so
two processes never advance or halt one campaign twice; it is audited in the same
transaction and raises the state version there, so every server process rebuilds its
snapshot at its next poll and obeys a halt from its commit (docs/architecture.md).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from patchgate.domain import campaigns as core
from patchgate.domain.campaign_timing import (
    CampaignTiming,
    parse_instant,
    parse_timeout,
    timing_json,
    timing_problems,
)
from patchgate.domain.clock import rfc3339
from patchgate.domain.cohorts import CANARY_OPTIN_GROUP, CohortCut
from patchgate.domain.durations import parse_duration
from patchgate.domain.errors import Conflict, InvalidInput, NotFound, PatchgateError
from patchgate.domain.gate_power import power_warnings
from patchgate.domain.gates import GateResult, StageFigures, evaluate_gate
from patchgate.domain.planning import plan_schedule, stage_sizes
from patchgate.domain.ratelimit import RateLimit
from patchgate.domain.stages import default_stages, format_stages
from patchgate.domain.stages import parse_stages as parse_stage_spec
from patchgate.domain.versions import VersionRange, parse_range
from patchgate.domain.windows import MaintenanceWindow
from patchgate.services import audit
from patchgate.services.campaign_ports import CampaignChanges, CampaignRecord, NewCampaign
from patchgate.services.campaigns import reverts, timing
from patchgate.services.campaigns.effects import (
    Effects,
    after_commit,
    apply_transition,
    cancel_open_actions,
    mark_stopped,
    supersede_pending,
)
from patchgate.services.campaigns.figures import refresh, reseed
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.campaigns.plans import (
    ACTOR_ENGINE,
    TIMING,
    cohort_cuts,
    cut_json,
    get_campaign,
    plan_of,
    product_hardware,
    progress_of,
    release_ref,
    stage_json,
    targeted_fleet,
)
from patchgate.services.context import Context
from patchgate.services.devices import saved_filters
from patchgate.services.policy import in_force
from patchgate.services.release_ports import ReleaseRecord
from patchgate.services.state import claim_tick
from patchgate.services.unit_of_work import UnitOfWork

log = logging.getLogger("patchgate.campaigns")

__all__ = ["CreateOptions"]


def _deadline(ctx: Context, uow: UnitOfWork, release: ReleaseRecord) -> datetime | None:
    """The earliest due date of the vulnerabilities the release fixes (those in the
    register), by the policy's cadence."""
    from patchgate.services.vulnerabilities import deadline

    policy = in_force(ctx).policy
    records = (uow.vulnerabilities.get(vuln_id) for vuln_id in release.fixes)
    dues = [due for r in records if r is not None and (due := deadline(r, policy)[1]) is not None]
    return min(dues) if dues else None


def _versions(text: str | None) -> VersionRange | None:
    """The ``--versions`` selector, or a refusal naming what is wrong with it."""
    if text is None:
        return None
    try:
        return parse_range(text)
    except InvalidInput as exc:
        raise InvalidInput(f"target versions: {exc}") from exc


def _timing(options: CreateOptions, now: datetime) -> CampaignTiming:
    """``--timeout``, ``--retries``, ``--start-at``, ``--end-at``, or a refusal naming each
    problem (docs/campaigns.md "Timing, retries and schedule")."""
    timing = CampaignTiming(
        timeout=parse_timeout(options.timeout),
        retries=options.retries,
        start_at=parse_instant(options.start_at, "--start-at"),
        end_at=parse_instant(options.end_at, "--end-at"),
    )
    problems = timing_problems(timing, now)
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    return timing


def create(ctx: Context, release_id: int, options: CreateOptions, *, actor: str) -> int:
    """Create a draft campaign for a release, or refuse naming each broken rule: a
    withdrawn, unsigned or artifact-less release; stages that do not increase, exceed
    100 % or name unknown groups; bad gate, rate or window settings."""
    now = ctx.clock()
    overrides: dict[str, Any] = {}
    if options.max_failure_rate is not None:
        overrides["max_failure_rate"] = options.max_failure_rate
    if options.min_finished is not None:
        overrides["min_finished"] = options.min_finished
    if options.soak is not None:
        overrides["min_soak"] = parse_duration(options.soak, what="soak")
    if options.manual:
        overrides["manual"] = True
    window = MaintenanceWindow.parse(options.window) if options.window else None
    rate = RateLimit.parse(options.rate) if options.rate else None
    versions = _versions(options.versions)
    schedule_timing = _timing(options, now)
    target = saved_filters.resolve(ctx, options.filter, saved=options.saved_filter)
    query = target.expression if target is not None else None
    with ctx.read_uow() as uow:
        deadline_release = uow.releases.get(release_id)
        if deadline_release is None:
            raise NotFound(f"no release {release_id}")
        deadline = _deadline(ctx, uow, deadline_release)
    hardware = product_hardware(ctx, deadline_release.product)
    with ctx.uow() as uow:
        release = uow.releases.get(release_id)
        if release is None:
            raise NotFound(f"no release {release_id}")
        problems = core.release_problems(
            release_ref(release),
            signed=release.state == "signed",
            artifacts=len(release.artifacts),
        )
        if problems:
            raise Conflict(problems[0], problems=problems)
        known = uow.campaigns.known_groups()
        unknown = [g for g in options.groups if g not in known]
        if unknown:
            raise InvalidInput(f"target groups: unknown group {', '.join(unknown)}")
        if options.stages:
            stages = parse_stage_spec(options.stages, known, overrides=overrides)
        else:
            stages = default_stages(known, overrides=overrides)
        priority: frozenset[str] = frozenset()
        supersedes = None
        halted = _halted_predecessor(uow, release, options.supersedes)
        if halted is not None:
            priority = core.plan_roll_forward(plan_of(uow, halted), release_ref(release))
            supersedes = halted.id
        salt = secrets.token_hex(8)
        selector = {
            "product": release.product,
            "hardware": [],
            "groups": list(options.groups),
            "versions": options.versions.strip() if options.versions is not None else None,
            "filter": target.query if target is not None else None,
            "saved_filter": target.saved_filter if target is not None else None,
        }
        delivery = {
            "forced": options.forced,
            "download_only": options.download_only,
            "confirm_required": options.confirm_required,
            "window": str(window) if window else options.window,
            "rate": options.rate if rate else None,
            "fill_canary": options.fill_canary,
            **timing_json(schedule_timing),
        }
        probe = core.CampaignPlan(
            0,
            salt,
            release_ref(release),
            core.Selector(
                release.product, groups=frozenset(options.groups), versions=versions, query=query
            ),
            stages,
            tuple(CohortCut() for _ in stages),
            core.Progress(),
        )
        marks = uow.campaigns.current_marks()
        fleet = targeted_fleet(uow, probe, hardware)
        cuts = cohort_cuts(stages, fleet, options.fill_canary)
        warnings = [
            f"stage {s.name}: {c.shortfall} devices short of its aim (too few in "
            f"{CANARY_OPTIN_GROUP})"
            for s, c in zip(stages, cuts, strict=True)
            if c.shortfall
        ]
        schedule_json = None
        group_sizes: dict[str, int] = {}
        for d in fleet:
            for g in d.groups:
                group_sizes[g] = group_sizes.get(g, 0) + 1
        sizes = stage_sizes(stages, fleet=len(fleet), group_sizes=group_sizes)
        if deadline is not None:
            schedule = plan_schedule(
                stages,
                start=now,
                sizes=sizes,
                timing=replace(
                    TIMING,
                    rate_per_minute=rate.per_minute if rate else None,
                    offline_share=options.offline_share or 0.0,
                ),
                deadline=deadline,
            )
            stages = schedule.apply(stages)
            warnings.extend(schedule.warnings)
            schedule_json = schedule.to_json()
        # A canary too small for its gates to see a regression (docs/gates.md).
        warnings.extend(power_warnings(stages, sizes))
        campaign_id = uow.campaigns.add(
            NewCampaign(
                release_id=release.id,
                product=release.product,
                salt=salt,
                stages=[stage_json(s) for s in stages],
                stage_spec=format_stages(stages),
                cuts=[cut_json(c) for c in cuts],
                selector=selector,
                delivery=delivery,
                state=core.DRAFT,
                stage_index=0,
                approved=False,
                floor_raised=False,
                supersedes_id=supersedes,
                priority_versions=sorted(priority),
                deadline_at=deadline,
                schedule=schedule_json,
                warnings=warnings,
                created_at=now,
                created_by=actor,
                updated_at=now,
            )
        )
        draft = get_campaign(uow, campaign_id)
        reseed(ctx, uow, draft, plan_of(uow, draft), now, fleet=fleet, marks=marks)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="campaign.create",
            subject=f"campaign:{campaign_id}",
            details={
                "release_id": release.id,
                "stages": format_stages(stages),
                "supersedes": supersedes,
                "versions": selector["versions"],
                "filter": selector["filter"],
                "saved_filter": selector["saved_filter"],
                "deadline_at": rfc3339(deadline),
                "timing": timing_json(schedule_timing),
            },
        )
        uow.commit()
    return campaign_id


def _halted_predecessor(
    uow: UnitOfWork, release: ReleaseRecord, explicit: int | None
) -> CampaignRecord | None:
    """The halted campaign a new release rolls forward from: the one named, else the newest
    halted (or reverting) campaign of the product for another release."""
    if explicit is not None:
        return get_campaign(uow, explicit)
    candidates = [
        c
        for c in uow.campaigns.list(states=(core.HALTED, core.REVERTING))
        if c.product == release.product and c.release_id != release.id
    ]
    for candidate in reversed(candidates):
        bad = uow.releases.get(candidate.release_id)
        if bad is not None and release.security_version >= bad.security_version:
            return candidate
    return None


def _command(
    ctx: Context,
    campaign_id: int,
    command: core.Command,
    *,
    actor: str,
    prepare: Callable[[UnitOfWork, CampaignRecord], CampaignChanges] | None = None,
) -> None:
    now = ctx.clock()
    with ctx.uow() as uow:
        rec = get_campaign(uow, campaign_id, lock=True)
        moved = core.transition(progress_of(rec), command, stages=len(rec.stages), now=now)
        extra = prepare(uow, rec) if prepare is not None else None
        effects = apply_transition(ctx, uow, rec, moved, actor=actor, extra=extra)
        uow.commit()
    after_commit(ctx, campaign_id, effects, actor=actor)


def start(ctx: Context, campaign_id: int, *, actor: str) -> None:
    """``campaign start``: the first stage opens; its cohort cut is fixed now. Refused for
    an unsigned or withdrawn release and for a halted campaign."""
    from patchgate.services import releases as release_service

    def prepare(uow: UnitOfWork, rec: CampaignRecord) -> CampaignChanges:
        release_service.require_installable(uow, rec.release_id)
        plan = plan_of(uow, rec)
        marks = uow.campaigns.current_marks()
        fleet = targeted_fleet(uow, plan, product_hardware(ctx, rec.product))
        cuts = cohort_cuts(plan.stages, fleet, bool(rec.delivery.get("fill_canary")))
        # The figures count from the start, with the cut fixed now.
        started = replace(plan, cuts=tuple(cuts))
        reseed(ctx, uow, rec, started, ctx.clock(), fleet=fleet, marks=marks, since=ctx.clock())
        return CampaignChanges(cuts=[cut_json(c) for c in cuts])

    _command(ctx, campaign_id, core.StartCampaign(), actor=actor, prepare=prepare)


def pause(ctx: Context, campaign_id: int, *, actor: str) -> None:
    """``campaign pause``: no new offers; open actions continue."""
    _command(ctx, campaign_id, core.PauseCampaign(), actor=actor)


def resume(ctx: Context, campaign_id: int, *, actor: str) -> None:
    """``campaign resume``."""
    _command(ctx, campaign_id, core.ResumeCampaign(), actor=actor)


def approve(ctx: Context, campaign_id: int, *, actor: str) -> None:
    """``campaign approve``: the stage may advance once its gates pass (evaluated now)."""
    _command(ctx, campaign_id, core.ApproveStage(), actor=actor)
    evaluate(ctx, campaign_id)


def complete(ctx: Context, campaign_id: int, *, actor: str) -> None:
    """``campaign complete``: at the last stage; a rollout raises the security floor."""
    _command(ctx, campaign_id, core.CompleteCampaign(), actor=actor)


def halt(ctx: Context, campaign_id: int, *, reason: str, actor: str) -> None:
    """``campaign halt --reason``: from its commit no device is offered the release."""
    _command(ctx, campaign_id, core.HaltCampaign(reason), actor=actor)


def cancel(ctx: Context, campaign_id: int, *, reason: str = "", actor: str) -> None:
    """Cancel a campaign: nothing more is offered and pending actions are cancelled."""
    _command(ctx, campaign_id, core.CancelCampaign(reason), actor=actor)


def revert(ctx: Context, campaign_id: int, *, to_release: int | None = None, actor: str) -> None:
    """``campaign revert``: offer each device running the halted release the last release
    it ran successfully that is neither halted, withdrawn nor below the security floor,
    or the release named with ``--to`` (refused when it breaks one of those rules); a
    device with no such release is reported, not moved (docs/campaigns.md "Revert")."""

    def prepare(uow: UnitOfWork, rec: CampaignRecord) -> CampaignChanges:
        good = reverts.explicit(uow, rec, to_release) if to_release is not None else None
        if good is not None and good.state != "signed":
            raise Conflict(f"revert: release {good.id} is not signed ({good.state})")
        # A reverting campaign is no longer swept: its halt's cancellations are marked now.
        mark_stopped(uow, rec)
        reverts.record(ctx, uow, rec, reverts.plan(ctx, uow, rec, to=to_release), actor)
        return CampaignChanges(revert_to_release_id=good.id if good is not None else None)

    _command(ctx, campaign_id, core.RevertCampaign(), actor=actor, prepare=prepare)


def evaluate(ctx: Context, campaign_id: int) -> GateResult | None:
    """Evaluate the current stage's gates and apply the verdict (advance, complete, halt)
    under the campaign's row lock; returns the gate result (None when nothing runs). A
    halted or cancelled campaign gets its missed open actions cancelled again."""
    now = ctx.clock()
    with ctx.uow() as uow:
        rec = get_campaign(uow, campaign_id, lock=True)
        stopped = rec.state in (core.HALTED, core.CANCELLED)
        if rec.state not in (core.RUNNING, core.PAUSED):
            judged = None
            if stopped:  # its figures still move (cancellations, reports) while swept
                refresh(ctx, uow, rec, plan_of(uow, rec), now)
                uow.commit()
        else:
            judged = judge(ctx, uow, rec, now)
            uow.commit()
    if stopped:
        cancel_open_actions(ctx, campaign_id, actor=ACTOR_ENGINE)
    if judged is None:
        return None
    result, effects = judged
    after_commit(ctx, campaign_id, effects, actor=ACTOR_ENGINE)
    return result


def judge(
    ctx: Context, uow: UnitOfWork, rec: CampaignRecord, now: datetime
) -> tuple[GateResult, Effects]:
    """The gate verdict on the current stage, applied in the caller's transaction."""
    plan = plan_of(uow, rec)
    found = refresh(ctx, uow, rec, plan, now)
    stage = plan.stages[rec.stage_index]
    result = evaluate_gate(
        stage.gates,
        StageFigures(
            found.stages[rec.stage_index],
            rec.stage_started_at or now,
            found.updated,
            found.baseline,
            rec.approved,
        ),
        now,
    )
    moved = core.apply_verdict(progress_of(rec), result, stages=len(plan.stages), now=now)
    extra = CampaignChanges(last_gate={**result.to_json(), "at": rfc3339(now)})
    if any(e.kind == core.STAGE_ADVANCED for e in moved.events):
        # The new stage's cut is fixed now, from the fleet as it stands (the canary's
        # depends on how many targeted devices opted in).
        marks = uow.campaigns.current_marks()
        fleet = targeted_fleet(uow, plan, product_hardware(ctx, rec.product))
        cuts = list(plan.cuts)
        to = moved.progress.stage_index
        cuts[to] = cohort_cuts(plan.stages, fleet, bool(rec.delivery.get("fill_canary")))[to]
        extra = replace(extra, cuts=[cut_json(c) for c in cuts])
        opened = replace(plan, cuts=tuple(cuts))
        reseed(ctx, uow, rec, opened, now, fleet=fleet, marks=marks)
    if not moved.events:
        uow.campaigns.update(rec.id, extra)
        return result, Effects()
    return result, apply_transition(ctx, uow, rec, moved, actor=ACTOR_ENGINE, extra=extra)


# Halted and cancelled campaigns are swept this long after they stopped: the sweep marks
# the rows of the actions the stop cancelled (docs/campaigns.md, "Halt").
SWEEP_FOR = timedelta(days=2)


def tick(ctx: Context, *, since: datetime | None = None) -> dict[int, str]:
    """Evaluate every campaign that runs (the timer's job, and ``campaign tick``); returns
    each evaluated campaign's verdict. Schedules and in-progress timeouts are applied
    first (``services.campaigns.timing``). ``since`` (the server's timer): the start of the
    tick, or when the feedback that prompted it arrived; a campaign some process has
    evaluated since then is left alone, so across every process on the database each
    campaign is evaluated once per tick (docs/deploy.md, "What each process keeps")."""
    timing.run(ctx, start=partial(start, ctx), cancel=partial(cancel, ctx))
    now = ctx.clock()
    with ctx.read_uow() as uow:
        listed = uow.campaigns.list(
            states=(core.RUNNING, core.PAUSED, core.HALTED, core.CANCELLED, core.REVERTING)
        )
    ids = [
        c.id
        for c in listed
        if c.state in (core.RUNNING, core.PAUSED)
        or (
            c.state in (core.HALTED, core.CANCELLED)
            and now - (c.halted_at or c.finished_at or c.updated_at) < SWEEP_FOR
        )
    ]
    verdicts: dict[int, str] = {}
    try:
        # Devices that reached a reverted release since, stale targets.
        reverts.sweep(ctx, reverting=[c.id for c in listed if c.state == core.REVERTING])
    except PatchgateError as exc:
        log.warning("revert plans: sweep refused: %s", exc)
    for campaign_id in ids:
        if since is not None and not claim_tick(ctx, f"campaign:{campaign_id}", since):
            continue
        try:
            result = evaluate(ctx, campaign_id)
            # The sweep again: a device may have become targeted since the stage opened,
            # and an action missed by a crash after the stage opened is cancelled now.
            supersede_pending(ctx, campaign_id)
        except PatchgateError as exc:
            log.warning("campaign %s: evaluation refused: %s", campaign_id, exc)
            continue
        if result is not None:
            verdicts[campaign_id] = result.verdict
            log.info(
                "campaign %s: gates evaluated: %s", campaign_id, result.verdict,
                extra={"campaign": campaign_id, "verdict": result.verdict, "tick": since},
            )  # fmt: skip
    return verdicts
