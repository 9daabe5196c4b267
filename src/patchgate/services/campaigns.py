"""The campaign engine as use cases (issue 6): create, the transitions, gate evaluation,
status, and the two functions plugged into the device poll.

The rules live in the pure core (``patchgate.domain.campaigns``, ``cohorts``, ``stages``,
``executions``, ``gates``, ``planning``; ``docs/campaign-core.md``). This module persists
and translates:

* Every transition takes the campaign's row lock first (``SELECT … FOR UPDATE`` on
  PostgreSQL; SQLite has one writer), so two processes never advance or halt one campaign
  twice (ARCHITECTURE.md decision 3), and is audited with ``audit.record`` in the same
  transaction, which raises the state version: each server process rebuilds its snapshot
  at its next poll and obeys a halt from its commit (decision 2).
* Gate figures are computed from action events and health reports (decision 7) whenever
  ``evaluate`` runs: after device feedback and health reports, on the server's timer, and
  from ``campaign tick`` and the CLI's own commands.
* On a halt, every open action that has not started installing is cancelled through DDI
  ``cancelAction`` (``services.actions.cancel``) once the halt has committed; every later
  evaluation sweeps again, so an action missed by a crash in between is still cancelled.
  Configured webhooks get a JSON notice and the log says it at ERROR level.
* The security floor is raised only when a rollout completes (after its last soak).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from patchgate.domain import actions as action_rules
from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.domain.clock import parse_rfc3339, rfc3339
from patchgate.domain.cohorts import (
    CANARY_OPTIN_GROUP,
    CohortCut,
)
from patchgate.domain.durations import format_duration, parse_duration
from patchgate.domain.errors import Conflict, InvalidInput, NotFound, PatchgateError
from patchgate.domain.gates import CrashTest, GateResult, StageFigures, StageGates, evaluate_gate
from patchgate.domain.planning import FleetTiming, forecast, plan_schedule, stage_sizes
from patchgate.domain.ratelimit import FULL, RateLimit, TokenBucket
from patchgate.domain.stages import Stage, default_stages, format_stages
from patchgate.domain.stages import parse_stages as parse_stage_spec
from patchgate.domain.versions import VersionRange, parse_range
from patchgate.domain.windows import MaintenanceWindow
from patchgate.services import actions as action_service
from patchgate.services import audit
from patchgate.services.campaign_ports import CampaignAction, CampaignRecord, FleetDevice
from patchgate.services.context import Context
from patchgate.services.device_ports import ActionRecord, DeviceAuthRow, DeviceRecord
from patchgate.services.devices import DEFAULT_TENANT
from patchgate.services.policy import in_force
from patchgate.services.release_ports import ReleaseRecord
from patchgate.services.unit_of_work import UnitOfWork

log = logging.getLogger("patchgate.campaigns")

ACTOR_ENGINE = "campaign-engine"
SCAN_BATCH = 1000
# DDI statuses of an action that has not started installing: a halt cancels these.
NOT_INSTALLING = frozenset(
    {
        action_rules.Status.WAITING_CONFIRMATION.value,
        action_rules.Status.OFFERED.value,
        action_rules.Status.DOWNLOADING.value,
        action_rules.Status.DOWNLOADED.value,
    }
)
TIMING = FleetTiming()
EXECUTION_POLICY = ex.DEFAULT_EXECUTION_POLICY


# ---- stored shapes ------------------------------------------------------------------------


def _gates_json(g: StageGates) -> dict[str, Any]:
    crash = g.crash_test
    return {
        "min_finished": g.min_finished,
        "min_finished_fraction": g.min_finished_fraction,
        "max_failure_rate": g.max_failure_rate,
        "failure_outcomes": sorted(g.failure_outcomes),
        "min_soak": format_duration(g.min_soak),
        "min_soak_s": g.min_soak.total_seconds(),
        "manual": g.manual,
        "failure_alpha": g.failure_alpha,
        "crash_test": None
        if crash is None
        else {"crash_ratio": crash.crash_ratio, "alpha": crash.alpha, "beta": crash.beta},
    }


def _gates_from(d: Mapping[str, Any]) -> StageGates:
    crash = d.get("crash_test")
    return StageGates(
        min_finished=int(d["min_finished"]),
        min_finished_fraction=float(d["min_finished_fraction"]),
        max_failure_rate=float(d["max_failure_rate"]),
        failure_outcomes=frozenset(d["failure_outcomes"]),
        min_soak=timedelta(seconds=float(d["min_soak_s"])),
        manual=bool(d["manual"]),
        failure_alpha=float(d["failure_alpha"]),
        crash_test=None if crash is None else CrashTest(**crash),
    )


def _stage_json(s: Stage) -> dict[str, Any]:
    return {
        "name": s.name,
        "groups": list(s.groups),
        "percent": s.percent,
        "canary": s.canary,
        "gates": _gates_json(s.gates),
    }


def _stage_from(d: Mapping[str, Any]) -> Stage:
    return Stage(
        name=d["name"],
        groups=tuple(d["groups"]),
        percent=d["percent"],
        canary=bool(d["canary"]),
        gates=_gates_from(d["gates"]),
    )


def _cut_json(c: CohortCut) -> dict[str, Any]:
    return {
        "groups": sorted(c.groups),
        "cutoff": c.cutoff,
        "optin_group": c.optin_group,
        "optin_cutoff": c.optin_cutoff,
        "shortfall": c.shortfall,
    }


def _cut_from(d: Mapping[str, Any]) -> CohortCut:
    return CohortCut(
        frozenset(d["groups"]), d["cutoff"], d["optin_group"], d["optin_cutoff"], d["shortfall"]
    )


def _release_ref(r: ReleaseRecord) -> core.ReleaseRef:
    return core.ReleaseRef(
        id=r.id,
        product=r.product,
        version=r.version,
        security_version=r.security_version,
        type=r.type,
        hardware=frozenset(r.hardware),
        withdrawn=r.state == "withdrawn",
    )


# A campaign row holds its Progress in columns of the same names.
_PROGRESS_FIELDS = tuple(f.name for f in fields(core.Progress))


def _progress(rec: CampaignRecord) -> core.Progress:
    return core.Progress(**{name: getattr(rec, name) for name in _PROGRESS_FIELDS})


def _progress_values(p: core.Progress) -> dict[str, Any]:
    return {name: getattr(p, name) for name in _PROGRESS_FIELDS}


def _delivery(d: Mapping[str, Any]) -> core.Delivery:
    return core.Delivery(
        forced=bool(d.get("forced")),
        download_only=bool(d.get("download_only")),
        confirm_required=bool(d.get("confirm_required")),
        window=MaintenanceWindow.parse(d["window"]) if d.get("window") else None,
        rate=RateLimit.parse(d["rate"]) if d.get("rate") else None,
    )


def _plan(uow: UnitOfWork, rec: CampaignRecord) -> core.CampaignPlan:
    release = uow.releases.get(rec.release_id)
    assert release is not None
    revert_to = None
    if rec.revert_to_release_id is not None:
        good = uow.releases.get(rec.revert_to_release_id)
        revert_to = None if good is None else _release_ref(good)
    selector = rec.selector
    return core.CampaignPlan(
        id=rec.id,
        salt=rec.salt,
        release=_release_ref(release),
        selector=core.Selector(
            product=rec.product,
            hardware=frozenset(selector.get("hardware", ())),
            groups=frozenset(selector.get("groups", ())),
            versions=parse_range(selector["versions"]) if selector.get("versions") else None,
        ),
        stages=tuple(_stage_from(s) for s in rec.stages),
        cuts=tuple(_cut_from(c) for c in rec.cuts),
        progress=_progress(rec),
        delivery=_delivery(rec.delivery),
        revert_to=revert_to,
        priority_versions=frozenset(rec.priority_versions),
    )


def _get(uow: UnitOfWork, campaign_id: int, *, lock: bool = False) -> CampaignRecord:
    rec = uow.campaigns.get(campaign_id, lock=lock)
    if rec is None:
        raise NotFound(f"no campaign {campaign_id}")
    return rec


# ---- the fleet as the engine sees it -------------------------------------------------------


def _product_hardware(ctx: Context, product: str) -> tuple[str, ...]:
    found = in_force(ctx).policy.product(product)
    return found.hardware if found is not None else ()


def _scan(uow: UnitOfWork, hardware: Sequence[str]) -> Iterator[FleetDevice]:
    """The product's devices in batches (every device when the product names no models)."""
    after = 0
    models = list(hardware) or None
    while True:
        batch = uow.campaigns.scan_devices(after_id=after, limit=SCAN_BATCH, hardware=models)
        yield from batch
        if len(batch) < SCAN_BATCH:
            return
        after = batch[-1].id


def _facts(device: FleetDevice, product: str) -> core.DeviceFacts:
    return core.DeviceFacts(
        device.controller_id,
        product,
        device.hardware,
        frozenset(device.groups),
        device.installed_version,
    )


def _targeted(plan: core.CampaignPlan, device: FleetDevice) -> bool:
    release = plan.release
    if release.hardware and device.hardware not in release.hardware:
        return False
    return plan.selector.matches(_facts(device, plan.selector.product))


def _fleet(uow: UnitOfWork, plan: core.CampaignPlan, hardware: Sequence[str]) -> list[FleetDevice]:
    return [d for d in _scan(uow, hardware) if _targeted(plan, d)]


def _cuts(stages: Sequence[Stage], fleet: Sequence[FleetDevice], fill: bool) -> list[CohortCut]:
    optin = sum(1 for d in fleet if CANARY_OPTIN_GROUP in d.groups)
    return [s.cut(fleet=len(fleet), optin=optin, fill_from_others=fill) for s in stages]


def stage_devices(
    plan: core.CampaignPlan, fleet: Iterable[FleetDevice], stage: int
) -> list[FleetDevice]:
    """The devices that ``stage`` admits first (its own cohort)."""
    return [d for d in fleet if plan.stage_of(d.controller_id, frozenset(d.groups)) == stage]


# ---- create -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateOptions:
    """``campaign create`` flags (INTERFACES.md)."""

    stages: str | None = None
    max_failure_rate: float | None = None
    min_finished: int | None = None
    soak: str | None = None
    manual: bool = False
    confirm_required: bool = False
    rate: str | None = None
    window: str | None = None
    forced: bool = True
    download_only: bool = False
    fill_canary: bool = False
    groups: tuple[str, ...] = ()
    supersedes: int | None = None
    versions: str | None = None  # installed-version range, e.g. "<1.0.1" or ">=1.0, <2.0"


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


def create(ctx: Context, release_id: int, options: CreateOptions, *, actor: str) -> dict[str, Any]:
    """Create a draft campaign for a release, or refuse naming each broken rule (issue 6
    "Bad input"): a withdrawn, unsigned or artifact-less release; stages that do not
    increase, exceed 100 % or name unknown groups; bad gate, rate or window settings."""
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
    with ctx.read_uow() as uow:
        deadline_release = uow.releases.get(release_id)
        if deadline_release is None:
            raise NotFound(f"no release {release_id}")
        deadline = _deadline(ctx, uow, deadline_release)
    hardware = _product_hardware(ctx, deadline_release.product)
    with ctx.uow() as uow:
        release = uow.releases.get(release_id)
        if release is None:
            raise NotFound(f"no release {release_id}")
        problems = core.release_problems(
            _release_ref(release),
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
            priority = core.plan_roll_forward(_plan(uow, halted), _release_ref(release))
            supersedes = halted.id
        salt = secrets.token_hex(8)
        selector = {
            "product": release.product,
            "hardware": [],
            "groups": list(options.groups),
            "versions": options.versions.strip() if options.versions is not None else None,
        }
        delivery = {
            "forced": options.forced,
            "download_only": options.download_only,
            "confirm_required": options.confirm_required,
            "window": str(window) if window else options.window,
            "rate": options.rate if rate else None,
            "fill_canary": options.fill_canary,
        }
        probe = core.CampaignPlan(
            0,
            salt,
            _release_ref(release),
            core.Selector(release.product, groups=frozenset(options.groups), versions=versions),
            stages,
            tuple(CohortCut() for _ in stages),
            core.Progress(),
        )
        fleet = _fleet(uow, probe, hardware)
        cuts = _cuts(stages, fleet, options.fill_canary)
        warnings = [
            f"stage {s.name}: {c.shortfall} devices short of its aim (too few in "
            f"{CANARY_OPTIN_GROUP})"
            for s, c in zip(stages, cuts, strict=True)
            if c.shortfall
        ]
        schedule_json = None
        if deadline is not None:
            group_sizes: dict[str, int] = {}
            for d in fleet:
                for g in d.groups:
                    group_sizes[g] = group_sizes.get(g, 0) + 1
            sizes = stage_sizes(stages, fleet=len(fleet), group_sizes=group_sizes)
            schedule = plan_schedule(
                stages,
                start=now,
                sizes=sizes,
                timing=replace(TIMING, rate_per_minute=rate.per_minute if rate else None),
                deadline=deadline,
            )
            stages = schedule.apply(stages)
            warnings.extend(schedule.warnings)
            schedule_json = schedule.to_json()
        campaign_id = uow.campaigns.add(
            release_id=release.id,
            product=release.product,
            salt=salt,
            stages=[_stage_json(s) for s in stages],
            stage_spec=format_stages(stages),
            cuts=[_cut_json(c) for c in cuts],
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
                "deadline_at": rfc3339(deadline),
            },
        )
        uow.commit()
    return status(ctx, campaign_id)


def _halted_predecessor(
    uow: UnitOfWork, release: ReleaseRecord, explicit: int | None
) -> CampaignRecord | None:
    """The halted campaign a new release rolls forward from: the one named, else the newest
    halted (or reverting) campaign of the product for another release."""
    if explicit is not None:
        return _get(uow, explicit)
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


# ---- transitions ----------------------------------------------------------------------------


@dataclass
class _Effects:
    """What a transition does once committed."""

    cancel: bool = False
    opened_stage: int | None = None
    halted: dict[str, Any] | None = None
    reached_last: bool = False
    supersede: bool = False  # started, resumed or opened a stage: sweep superseded actions


def _apply(
    ctx: Context,
    uow: UnitOfWork,
    rec: CampaignRecord,
    moved: core.Transition,
    *,
    actor: str,
    extra: Mapping[str, Any] | None = None,
) -> _Effects:
    """Persist ``moved`` (progress and its events, each audited) and collect the effects."""
    now = ctx.clock()
    effects = _Effects()
    values = {**_progress_values(moved.progress), "updated_at": now, **(extra or {})}
    plan = _plan(uow, rec)
    last = len(plan.stages) - 1
    for event in moved.events:
        if event.kind in (core.CAMPAIGN_STARTED, core.STAGE_ADVANCED):
            effects.opened_stage = moved.progress.stage_index
            if moved.progress.stage_index == last:
                effects.reached_last = True
        if event.kind in (core.CAMPAIGN_STARTED, core.STAGE_ADVANCED, core.CAMPAIGN_RESUMED):
            effects.supersede = True
        if event.kind in (core.CAMPAIGN_HALTED, core.CAMPAIGN_CANCELLED):
            effects.cancel = True
        if event.kind == core.CAMPAIGN_HALTED:
            effects.halted = dict(event.details)
        if event.kind == core.CAMPAIGN_COMPLETED and moved.progress.floor_raised:
            from patchgate.services import releases as release_service

            floor = release_service.raise_floor(
                ctx,
                uow,
                product=plan.release.product,
                security_version=plan.release.security_version,
                actor=actor,
            )
            effects.reached_last = True
            log.info(
                "campaign %s completed: security floor of %s is %s", rec.id, rec.product, floor
            )
        audit.record(
            ctx,
            uow,
            actor=actor,
            action=f"campaign.{event.kind.removeprefix('campaign-')}",
            subject=f"campaign:{rec.id}",
            details={"at": rfc3339(event.at), **_plain(event.details)},
        )
    uow.campaigns.update(rec.id, **values)
    return effects


def _plain(details: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (rfc3339(v) if isinstance(v, datetime) else v) for k, v in details.items()}


def _after(ctx: Context, campaign_id: int, effects: _Effects, *, actor: str) -> None:
    """The effects of a committed transition: wake-ups, cancellations, notices."""
    if effects.opened_stage is not None:
        with ctx.read_uow() as uow:
            rec = _get(uow, campaign_id)
            plan = _plan(uow, rec)
            fleet = _fleet(uow, plan, _product_hardware(ctx, rec.product))
        by_tenant: dict[str, list[str]] = {}
        for device in stage_devices(plan, fleet, effects.opened_stage):
            by_tenant.setdefault(device.tenant, []).append(device.controller_id)
        for tenant, ids in by_tenant.items():
            notify_stage_opened(ctx, campaign_id, ids, tenant=tenant)
    if effects.halted is not None:
        reason = effects.halted.get("reason", "")
        log.error(
            "CAMPAIGN %s HALTED: %s — no device is offered its release again", campaign_id, reason
        )
        notice = {
            "event": "campaign.halted",
            "campaign_id": campaign_id,
            "reason": reason,
            "stage": effects.halted.get("stage"),
            "gate": effects.halted.get("gate"),
            "at": rfc3339(ctx.clock()),
        }
        if ctx.webhooks is not None:
            ctx.webhooks.post(notice)
    if effects.cancel:
        cancel_open_actions(ctx, campaign_id, actor=actor)
    if effects.reached_last:
        _fixes_deployed(ctx, campaign_id)
    if effects.supersede:
        supersede_pending(ctx, campaign_id, actor=actor)


def notify_stage_opened(
    ctx: Context, campaign_id: int, device_ids: Sequence[str], *, tenant: str = DEFAULT_TENANT
) -> None:
    """Tell the push channel (``ctx.wakeups``, the ``Wakeups`` port, when one is wired)
    that these devices may poll now: a stage opened for them. Without one this does
    nothing and devices learn it at their next poll."""
    wakeups = ctx.wakeups
    if wakeups is None or not device_ids:
        return
    try:
        wakeups.wake(tenant, list(device_ids))
    except Exception:  # a push channel is best effort; the poll is the fallback
        log.exception("campaign %s: wake-up of %d devices failed", campaign_id, len(device_ids))


def cancel_open_actions(ctx: Context, campaign_id: int, *, actor: str) -> int:
    """Cancel (DDI ``cancelAction``) every open action of the campaign that has not started
    installing; returns how many. Actions already installing finish and are recorded."""
    with ctx.read_uow() as uow:
        pending = [a.id for a in uow.campaigns.actions(campaign_id) if a.status in NOT_INSTALLING]
    done = _cancel_actions(ctx, pending, reason=f"campaign {campaign_id} halted", actor=actor)
    if done:
        log.warning("campaign %s: cancelled %d open actions", campaign_id, len(done))
    return len(done)


def _cancel_actions(
    ctx: Context, action_ids: Iterable[int], *, reason: str, actor: str
) -> list[ActionRecord]:
    """The sweep: cancel each action (DDI ``cancelAction`` once the device accepted it);
    one closed meanwhile, or whose cancellation another sweep already requested, is
    skipped. Returns the actions this call cancelled."""
    done = []
    for action_id in action_ids:
        try:
            record = action_service.cancel_if_pending(ctx, action_id, reason=reason, actor=actor)
        except PatchgateError:
            continue  # closed meanwhile (the device finished or cancelled it)
        if record is not None:
            done.append(record)
    return done


# The DDI statuses of a pending action as the core's supersession rule names them.
_CORE_STATUS: Mapping[str, str] = {
    action_rules.Status.WAITING_CONFIRMATION.value: ex.S_OFFERED,
    action_rules.Status.OFFERED.value: ex.S_OFFERED,
    action_rules.Status.DOWNLOADING.value: ex.S_DOWNLOADING,
    action_rules.Status.DOWNLOADED.value: ex.S_DOWNLOADING,
}


def supersede_pending(ctx: Context, campaign_id: int, *, actor: str = ACTOR_ENGINE) -> int:
    """Cancel the pending actions this campaign's release supersedes (``decide`` rule 2):
    each open action of another campaign of the product that has not started installing,
    held by a device this campaign would offer to now, for an older release that the rule
    says is superseded. The device gets ``cancelAction`` and, once the cancellation is
    closed, this campaign's release at its next poll. Returns how many were cancelled."""
    now = ctx.clock()
    with ctx.read_uow() as uow:
        rec = _get(uow, campaign_id)
        if rec.state != core.RUNNING:
            return 0
        plan = _plan(uow, rec)
        if plan.release.type not in ("security", "combined") or plan.release.withdrawn:
            return 0
        others = {
            c.id: c
            for c in uow.campaigns.list()
            if c.product == rec.product and c.id != rec.id and c.state != core.DRAFT
        }
        pending = [
            (action, others[cid])
            for cid in others
            for action in uow.campaigns.actions(cid)
            if action.status in NOT_INSTALLING and action.release_id != plan.release.id
        ]
        if not pending:
            return 0
        fleet = {d.id: d for d in _fleet(uow, plan, _product_hardware(ctx, rec.product))}
        floor = uow.releases.security_floor(rec.product)
        chosen: list[tuple[int, int, int, str]] = []  # action, its campaign, device, reason
        for action, other in pending:
            device = fleet.get(action.device_id)
            release = uow.releases.get(action.release_id)
            if device is None or release is None:
                continue
            finished = frozenset(
                a.campaign_id
                for a in uow.actions.for_device(device.id, limit=1000)
                if a.campaign_id is not None and not a.active
            )
            facts = replace(
                _facts(device, rec.product),
                security_floor=floor,
                finished_campaigns=finished,
                open_action=core.OpenAction(
                    action.id,
                    other.id,
                    release.id,
                    release.security_version,
                    _CORE_STATUS[action.status],
                ),
            )
            snapshot = core.Snapshot.build(0, [_plan(uow, other), plan])
            decision = core.decide(facts, snapshot, now)
            if decision.reason == core.CANCEL_SUPERSEDED:
                why = (
                    f"superseded by campaign {rec.id} (release {plan.release.version}, "
                    f"security version {plan.release.security_version} > "
                    f"{release.security_version})"
                )
                chosen.append((action.id, other.id, device.id, why))
    cancelled: list[tuple[ActionRecord, int, str]] = []
    for action_id, other_id, _device_id, why in chosen:
        for record in _cancel_actions(ctx, [action_id], reason=why, actor=actor):
            cancelled.append((record, other_id, why))
    if not cancelled:
        return 0
    with ctx.uow() as uow:
        for record, other_id, why in cancelled:
            audit.record(
                ctx,
                uow,
                actor=actor,
                action="campaign.supersede",
                subject=f"campaign:{campaign_id}",
                details={
                    "action_id": record.id,
                    "superseded_campaign": other_id,
                    "status": record.status,
                    "reason": why,
                },
            )
        uow.commit()
    by_tenant: dict[str, list[str]] = {}
    with ctx.read_uow() as uow:
        for record, _other, _why in cancelled:
            device_rec = uow.devices.get_by_id(record.device_id)
            if device_rec is not None and device_rec.controller_id:
                by_tenant.setdefault(device_rec.tenant, []).append(device_rec.controller_id)
    for tenant, ids in by_tenant.items():
        notify_stage_opened(ctx, campaign_id, ids, tenant=tenant)
    log.warning(
        "campaign %s: cancelled %d pending actions of older releases it supersedes",
        campaign_id,
        len(cancelled),
    )
    return len(cancelled)


def _fixes_deployed(ctx: Context, campaign_id: int) -> None:
    """The last stage is reached: the fixed vulnerabilities count as deployed now."""
    from patchgate.services import vulnerabilities

    with ctx.read_uow() as uow:
        rec = _get(uow, campaign_id)
        release = uow.releases.get(rec.release_id)
    if release is None:
        return
    for vuln_id in release.fixes:
        try:
            vulnerabilities.triage(
                ctx,
                vuln_id,
                status="fix_deployed",
                actor=f"campaign:{campaign_id}",
                product=release.product,
                at=ctx.clock(),
                release_id=release.id,
            )
        except PatchgateError as exc:
            log.info("campaign %s: %s not marked fix_deployed: %s", campaign_id, vuln_id, exc)


def _command(
    ctx: Context,
    campaign_id: int,
    command: core.Command,
    *,
    actor: str,
    prepare: Callable[[UnitOfWork, CampaignRecord], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    now = ctx.clock()
    with ctx.uow() as uow:
        rec = _get(uow, campaign_id, lock=True)
        moved = core.transition(_progress(rec), command, stages=len(rec.stages), now=now)
        extra = prepare(uow, rec) if prepare is not None else {}
        effects = _apply(ctx, uow, rec, moved, actor=actor, extra=extra)
        uow.commit()
    _after(ctx, campaign_id, effects, actor=actor)
    return status(ctx, campaign_id)


def start(ctx: Context, campaign_id: int, *, actor: str) -> dict[str, Any]:
    """``campaign start``: the first stage opens; its cohort cut is fixed now. Refused for
    an unsigned or withdrawn release and for a halted campaign."""
    from patchgate.services import releases as release_service

    def prepare(uow: UnitOfWork, rec: CampaignRecord) -> dict[str, Any]:
        release_service.require_installable(uow, rec.release_id)
        plan = _plan(uow, rec)
        fleet = _fleet(uow, plan, _product_hardware(ctx, rec.product))
        cuts = _cuts(plan.stages, fleet, bool(rec.delivery.get("fill_canary")))
        return {"cuts": [_cut_json(c) for c in cuts]}

    return _command(ctx, campaign_id, core.StartCampaign(), actor=actor, prepare=prepare)


def pause(ctx: Context, campaign_id: int, *, actor: str) -> dict[str, Any]:
    """``campaign pause``: no new offers; open actions continue."""
    return _command(ctx, campaign_id, core.PauseCampaign(), actor=actor)


def resume(ctx: Context, campaign_id: int, *, actor: str) -> dict[str, Any]:
    """``campaign resume``."""
    return _command(ctx, campaign_id, core.ResumeCampaign(), actor=actor)


def approve(ctx: Context, campaign_id: int, *, actor: str) -> dict[str, Any]:
    """``campaign approve``: the stage may advance once its gates pass (evaluated now)."""
    _command(ctx, campaign_id, core.ApproveStage(), actor=actor)
    evaluate(ctx, campaign_id)
    return status(ctx, campaign_id)


def complete(ctx: Context, campaign_id: int, *, actor: str) -> dict[str, Any]:
    """``campaign complete``: at the last stage; a rollout raises the security floor."""
    return _command(ctx, campaign_id, core.CompleteCampaign(), actor=actor)


def halt(ctx: Context, campaign_id: int, *, reason: str, actor: str) -> dict[str, Any]:
    """``campaign halt --reason``: from its commit no device is offered the release."""
    return _command(ctx, campaign_id, core.HaltCampaign(reason), actor=actor)


def cancel(ctx: Context, campaign_id: int, *, reason: str = "", actor: str) -> dict[str, Any]:
    """Cancel a campaign: nothing more is offered and pending actions are cancelled."""
    return _command(ctx, campaign_id, core.CancelCampaign(reason), actor=actor)


def revert(
    ctx: Context, campaign_id: int, *, to_release: int | None = None, actor: str
) -> dict[str, Any]:
    """``campaign revert``: offer the previous known-good release to the devices that
    installed the halted one. Refused when it is below the product's security floor."""

    def prepare(uow: UnitOfWork, rec: CampaignRecord) -> dict[str, Any]:
        bad = uow.releases.get(rec.release_id)
        assert bad is not None
        good = _known_good(uow, rec, bad, to_release)
        floor = uow.releases.security_floor(rec.product)
        core.plan_revert(_release_ref(bad), _release_ref(good), floor=floor)
        if good.state != "signed":
            raise Conflict(f"revert: release {good.id} is not signed ({good.state})")
        return {"revert_to_release_id": good.id}

    return _command(ctx, campaign_id, core.RevertCampaign(), actor=actor, prepare=prepare)


def _known_good(
    uow: UnitOfWork, rec: CampaignRecord, bad: ReleaseRecord, explicit: int | None
) -> ReleaseRecord:
    if explicit is not None:
        good = uow.releases.get(explicit)
        if good is None:
            raise NotFound(f"no release {explicit}")
        return good
    completed = [
        c
        for c in uow.campaigns.list(states=(core.COMPLETED,))
        if c.product == rec.product and c.floor_raised and c.release_id != bad.id
    ]
    if completed:
        good = uow.releases.get(completed[-1].release_id)
        if good is not None and good.state != "withdrawn":
            return good
    older = [
        r
        for r in uow.releases.list(product=rec.product)
        if r.id != bad.id and r.state == "signed" and r.created_at <= bad.created_at
    ]
    if not older:
        raise Conflict(
            f"revert: no earlier known-good release of {rec.product}; name one with --to"
        )
    return max(older, key=lambda r: (r.created_at, r.id))


# ---- evaluation -----------------------------------------------------------------------------

_STEP_EVENT: Mapping[str, str] = {
    "waiting_confirmation": ex.OFFERED,
    "offered": ex.OFFERED,
    "downloading": ex.DOWNLOADING,
    "downloaded": ex.DOWNLOADED,
    "running": ex.INSTALLING,
}


def _execution(
    action: CampaignAction,
    version: str,
    health: Sequence[ex.Event],
    now: datetime,
) -> ex.Execution:
    """An action's execution from its DDI steps and the device's health reports. DDI
    ``closed``/``success`` counts as a confirmed healthy boot (hawkBit clients report it
    after the reboot); a report of another version after installing counts as reverted."""
    events: list[ex.Event] = []
    for step in action.steps:
        status = step.status_after
        if status == "finished":
            events.append(ex.Event(ex.SUCCESS_REPORTED, step.at, confirmed=True))
        elif status == "error":
            events.append(ex.Event(ex.FAILURE_REPORTED, step.at))
        elif status == "canceled":
            events.append(ex.Event(ex.CANCELLED_EVENT, step.at))
        elif status in _STEP_EVENT:
            events.append(ex.Event(_STEP_EVENT[status], step.at))
    events.extend(h for h in health if h.at >= action.created_at)
    events.sort(key=lambda e: e.at)
    return ex.fold(events, version, now, EXECUTION_POLICY)


@dataclass(frozen=True)
class Figures:
    """A campaign's figures at one moment: per-stage counts and the health tallies."""

    stages: tuple[ex.Counts, ...]
    updated: ex.HealthTally
    baseline: ex.HealthTally
    fleet: int

    @property
    def total(self) -> ex.Counts:
        total = ex.Counts()
        for counts in self.stages:
            total = total.plus(counts)
        return total


def figures(
    ctx: Context, uow: UnitOfWork, rec: CampaignRecord, plan: core.CampaignPlan, now: datetime
) -> Figures:
    """Counts from action events and health reports (decision 7)."""
    fleet = _fleet(uow, plan, _product_hardware(ctx, rec.product))
    by_device = {d.id: d for d in fleet}
    version = plan.release.version
    since = rec.started_at or rec.created_at
    health: dict[int, list[ex.Event]] = {}
    updated, baseline = ex.NO_HEALTH, ex.NO_HEALTH
    for sample in uow.campaigns.health_since(since):
        if sample.device_id not in by_device:
            continue
        event = ex.Event(
            ex.HEALTH,
            sample.at,
            version=sample.running_version,
            crashes=sample.crashes,
            exposure_hours=(sample.uptime_s or 0.0) / 3600.0,
        )
        health.setdefault(sample.device_id, []).append(event)
        if sample.running_version == version:
            updated = updated.add(event)
        elif sample.running_version is not None:
            baseline = baseline.add(event)
    latest: dict[int, CampaignAction] = {}
    for action in uow.campaigns.actions(rec.id):
        if action.release_id == plan.release.id:
            latest[action.device_id] = action  # a retried device counts once, as it stands
    pairs = []
    eligible = [0] * len(plan.stages)
    for device_id, action in latest.items():
        stage = plan.stage_of(action.controller_id, frozenset(action.groups))
        if stage is None:
            stage = 0  # a roll-forward priority device, admitted from the first stage
        execution = _execution(action, version, health.get(device_id, ()), now)
        pairs.append((stage, execution.status))
        if device_id not in by_device:
            # Reached, then out of the fleet (removed, or moved out of the targeted
            # versions): it stays in the figures it is counted in (docs/devices.md).
            eligible[stage] += 1
    for device in fleet:
        stage = plan.stage_of(device.controller_id, frozenset(device.groups))
        if stage is not None:
            eligible[stage] += 1
    return Figures(ex.tally_stages(pairs, eligible), updated, baseline, len(fleet))


def evaluate(ctx: Context, campaign_id: int) -> GateResult | None:
    """Evaluate the current stage's gates and apply the verdict (advance, complete, halt)
    under the campaign's row lock; returns the gate result (None when nothing runs). A
    halted or cancelled campaign gets its missed open actions cancelled again."""
    now = ctx.clock()
    with ctx.uow() as uow:
        rec = _get(uow, campaign_id, lock=True)
        stopped = rec.state in (core.HALTED, core.CANCELLED)
        if rec.state not in (core.RUNNING, core.PAUSED):
            judged = None
        else:
            judged = _judge(ctx, uow, rec, now)
            uow.commit()
    if stopped:
        cancel_open_actions(ctx, campaign_id, actor=ACTOR_ENGINE)
    if judged is None:
        return None
    result, effects = judged
    _after(ctx, campaign_id, effects, actor=ACTOR_ENGINE)
    return result


def _judge(
    ctx: Context, uow: UnitOfWork, rec: CampaignRecord, now: datetime
) -> tuple[GateResult, _Effects]:
    """The gate verdict on the current stage, applied in the caller's transaction."""
    plan = _plan(uow, rec)
    found = figures(ctx, uow, rec, plan, now)
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
    moved = core.apply_verdict(_progress(rec), result, stages=len(plan.stages), now=now)
    extra: dict[str, Any] = {"last_gate": {**result.to_json(), "at": rfc3339(now)}}
    if any(e.kind == core.STAGE_ADVANCED for e in moved.events):
        # The new stage's cut is fixed now, from the fleet as it stands (the canary's
        # depends on how many targeted devices opted in).
        fleet = _fleet(uow, plan, _product_hardware(ctx, rec.product))
        cuts = list(plan.cuts)
        to = moved.progress.stage_index
        cuts[to] = _cuts(plan.stages, fleet, bool(rec.delivery.get("fill_canary")))[to]
        extra["cuts"] = [_cut_json(c) for c in cuts]
    if not moved.events:
        uow.campaigns.update(rec.id, **extra)
        return result, _Effects()
    return result, _apply(ctx, uow, rec, moved, actor=ACTOR_ENGINE, extra=extra)


# Halted and cancelled campaigns are swept for missed open actions this long after they
# stopped (an action is cancelled at the halt; the sweep covers a crash right after it).
SWEEP_FOR = timedelta(days=2)


def tick(ctx: Context) -> dict[int, str]:
    """Evaluate every campaign that runs (the timer's job, and ``campaign tick``); returns
    each evaluated campaign's verdict."""
    now = ctx.clock()
    with ctx.read_uow() as uow:
        ids = [
            c.id
            for c in uow.campaigns.list(
                states=(core.RUNNING, core.PAUSED, core.HALTED, core.CANCELLED)
            )
            if c.state in (core.RUNNING, core.PAUSED)
            or now - (c.halted_at or c.finished_at or c.updated_at) < SWEEP_FOR
        ]
    verdicts: dict[int, str] = {}
    for campaign_id in ids:
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
    return verdicts


# ---- status ---------------------------------------------------------------------------------


def _status(ctx: Context, uow: UnitOfWork, rec: CampaignRecord, now: datetime) -> dict[str, Any]:
    plan = _plan(uow, rec)
    found = figures(ctx, uow, rec, plan, now)
    progress = _progress(rec)
    index = rec.stage_index
    sizes = [c.eligible for c in found.stages]
    current = found.stages[index]
    outlook = forecast(
        plan.stages,
        progress,
        sizes=sizes,
        timing=TIMING,
        eligible=current.eligible,
        finished=current.finished,
        now=now,
        deadline=rec.deadline_at,
    )
    at_risk = outlook.deadline_at_risk
    if rec.state == core.DRAFT:
        # Not started: the plan made at create time is the forecast.
        at_risk = rec.deadline_at is not None and not (rec.schedule or {}).get("feasible", False)
    warnings = list(rec.warnings)
    if at_risk and rec.state not in (core.COMPLETED, core.CANCELLED):
        warnings.append(
            f"deadline at risk: the last stage is forecast after {rfc3339(rec.deadline_at)}"
        )
    return {
        "id": rec.id,
        "release_id": rec.release_id,
        "release_version": plan.release.version,
        "product": rec.product,
        "state": rec.state,
        "stage": {"index": index, "name": plan.stages[index].name},
        "counts": found.total.to_json(),
        "stages": [
            {
                "index": i,
                "name": s.name,
                "spec": s.spec(),
                "gates": _gates_json(s.gates),
                "counts": c.to_json(),
                "shortfall": plan.cuts[i].shortfall,
            }
            for i, (s, c) in enumerate(zip(plan.stages, found.stages, strict=True))
        ],
        "stage_spec": rec.stage_spec,
        "last_gate": rec.last_gate,
        "halt_reason": rec.halt_reason,
        "halted_at": rfc3339(rec.halted_at),
        "started_at": rfc3339(rec.started_at),
        "stage_started_at": rfc3339(rec.stage_started_at),
        "finished_at": rfc3339(rec.finished_at),
        "floor_raised": rec.floor_raised,
        "revert_to_release_id": rec.revert_to_release_id,
        "supersedes": rec.supersedes_id,
        "priority_versions": rec.priority_versions,
        "selector": {
            "product": rec.product,
            "hardware": list(rec.selector.get("hardware", ())),
            "groups": list(rec.selector.get("groups", ())),
            "versions": rec.selector.get("versions"),
        },
        "delivery": dict(rec.delivery),
        "forecast_complete_at": rfc3339(
            outlook.complete_at
            if rec.state != core.DRAFT or not rec.schedule
            else parse_rfc3339(rec.schedule["complete_at"])
        ),
        "deadline_at": rfc3339(rec.deadline_at),
        "deadline_at_risk": at_risk,
        "schedule": rec.schedule,
        "warnings": warnings,
        "created_at": rfc3339(rec.created_at),
        "created_by": rec.created_by,
    }


def status(ctx: Context, campaign_id: int) -> dict[str, Any]:
    """``campaign status --json`` (INTERFACES.md fields, and more)."""
    with ctx.read_uow() as uow:
        return _status(ctx, uow, _get(uow, campaign_id), ctx.clock())


def list_campaigns(ctx: Context) -> list[dict[str, Any]]:
    """Every campaign, oldest first, in its short form."""
    with ctx.read_uow() as uow:
        return [
            {
                "id": c.id,
                "release_id": c.release_id,
                "product": c.product,
                "state": c.state,
                "stage": {"index": c.stage_index, "name": c.stages[c.stage_index]["name"]},
                "halt_reason": c.halt_reason,
                "created_at": rfc3339(c.created_at),
            }
            for c in uow.campaigns.list()
        ]


# ---- the poll -------------------------------------------------------------------------------


class PollEngine:
    """What the device poll plugs in (``Poller.plug(engine.decide, engine.load,
    engine.create)``): the snapshot loader, ``decide`` over the poll's one row, and the
    action creator, which checks what the row does not hold (campaigns the device already
    finished, the shared rate-limit bucket) under the device's row lock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._latest = core.EMPTY_SNAPSHOT
        # The (campaign, release) pairs of each device's closed actions, as :meth:`create`
        # last read them. Closed actions never reopen, so ``decide`` can use them as they
        # stand: a device that failed a rollout is then answered without the write path,
        # instead of being offered the release again on every poll and refused under its
        # row lock. A pair closed since is missing until the next refusal reads it again.
        self._finished: dict[int, frozenset[tuple[int, int]]] = {}

    def load(self, version: int) -> core.Snapshot:
        """The snapshot of every non-draft campaign, for state version ``version``."""
        policy = in_force(self.ctx).policy
        products: dict[str, str] = {}
        for product in policy.products:
            for model in product.hardware:
                products.setdefault(model, product.name)
        with self.ctx.read_uow() as uow:
            plans = [_plan(uow, rec) for rec in uow.campaigns.list() if rec.state != core.DRAFT]
            floors = {
                p.selector.product: uow.releases.security_floor(p.selector.product) for p in plans
            }
        snapshot = core.Snapshot.build(version, plans, products=products, floors=floors)
        self._latest = snapshot
        return snapshot

    def facts(
        self,
        row: DeviceAuthRow,
        snapshot: core.Snapshot,
        finished: Iterable[tuple[int, int]] = (),
    ) -> core.DeviceFacts:
        """The device as ``decide`` sees it; ``finished`` holds (campaign, release) pairs of
        the device's closed actions."""
        product = snapshot.products.get(row.hardware or "")
        if product is None and row.hardware is None and len(snapshot.by_product) == 1:
            product = next(iter(snapshot.by_product))  # a device that never named its model
        done = list(finished)
        rollouts = frozenset(
            c for c, r in done if c in snapshot.by_id and snapshot.by_id[c].release.id == r
        )
        reverts = frozenset(c for c, _ in done) - rollouts
        return core.DeviceFacts(
            device_id=row.controller_id or "",
            product=product,
            hardware=row.hardware,
            groups=frozenset(row.groups),
            installed_version=row.installed_version,
            security_floor=snapshot.floors.get(product or "", 0),
            finished_campaigns=rollouts,
            finished_reverts=reverts,
        )

    def decide(
        self, row: DeviceAuthRow, snapshot: core.Snapshot, now: datetime
    ) -> core.Offer | None:
        """``decide`` on the poll's row (no read); the offer is checked again in
        :meth:`create` against what only a read can tell."""
        self._latest = (
            snapshot if snapshot.state_version >= self._latest.state_version else self._latest
        )
        finished = self._finished.get(row.device_id, frozenset()) if row.device_id else ()
        return core.decide(self.facts(row, snapshot, finished), snapshot, now).offer

    def create(self, ctx: Context, row: DeviceAuthRow, offer: core.Offer) -> ActionRecord | None:
        """Create the offered action unless the device finished this campaign already or
        the campaign's shared rate limit has no token left."""
        assert row.device_id is not None
        snapshot = self._latest
        plan = snapshot.by_id.get(offer.campaign_id)
        if plan is None:
            return None
        now = ctx.clock()
        window_start = window_end = None
        window = plan.delivery.window
        if window is not None and offer.kind != "revert":
            window_start = window.latest_start(now)
            window_end = None if window_start is None else window_start + window.duration

        def check(uow: UnitOfWork, device: DeviceRecord) -> bool:
            pairs = frozenset(
                (a.campaign_id, a.release_id)
                for a in uow.actions.for_device(device.id, limit=1000)
                if a.campaign_id is not None and not a.active
            )
            self._finished[device.id] = pairs
            facts = self.facts(row, snapshot, pairs)
            tokens: dict[int, TokenBucket] = {}
            rate = plan.delivery.rate
            rec = None
            if rate is not None:
                rec = _get(uow, plan.id, lock=True)
                tokens[plan.id] = (
                    TokenBucket(rec.rate_tokens or 0.0, rec.rate_at) if rec.rate_at else FULL
                )
            decision = core.decide(facts, snapshot, now, tokens)
            if decision.offer is None or decision.offer.campaign_id != offer.campaign_id:
                return False
            if rate is not None and decision.tokens is not None:
                uow.campaigns.update(
                    plan.id, rate_tokens=decision.tokens.tokens, rate_at=decision.tokens.updated_at
                )
            return True

        new = action_service.from_offer(offer, window_start=window_start, window_end=window_end)
        return action_service.create_from_offer(
            ctx, row.device_id, new, actor=f"campaign:{offer.campaign_id}", check=check
        )
