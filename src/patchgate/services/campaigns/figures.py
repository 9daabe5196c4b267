"""A campaign's figures: per-stage counts from its actions' DDI steps, and the health
tallies of the updated and the baseline cohorts (docs/campaign-core.md "Feedback, counts
and gates"). Read by the gate evaluation and by the status view.

The figures are stored (docs/campaigns.md, "Figures"): built once from the whole fleet
when the campaign is created and when a stage opens (the commands scan the fleet then
anyway, for the cohort cut), then kept current from what changed after the stored marks
— action events, health reports, device registrations — so a gate tick and a status
read cost what changed, not the fleet (:mod:`services.campaigns.catchup`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from patchgate.domain import actions as action_rules
from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.services.campaign_ports import CampaignAction, CampaignRecord, FleetDevice
from patchgate.services.campaigns.plans import product_hardware, targeted_fleet
from patchgate.services.context import Context
from patchgate.services.figure_ports import Marks, NumberedHealth, StoredExecution, StoredFigures
from patchgate.services.unit_of_work import UnitOfWork

EXECUTION_POLICY = ex.DEFAULT_EXECUTION_POLICY


def execution_of(
    action: CampaignAction,
    version: str,
    health: Sequence[ex.Event],
    now: datetime,
    *,
    attempts: int = 0,
    policy: ex.ExecutionPolicy = EXECUTION_POLICY,
    kinds: Mapping[str, action_rules.ClientKind] | None = None,
) -> ex.Execution:
    """An action's execution from its DDI steps and the device's health reports. DDI
    ``closed``/``success`` proves a healthy boot only from a client that sends it after
    the reboot (``action_rules.success_proves_boot``, by the device's group or its
    feedback); otherwise the execution is confirming until the device is seen again on
    the new version (health report, configData, installedBase). A report of another
    version after installing counts as reverted. A failure reported before the device
    started installing (a download that broke off: the device still runs its old slot)
    is transient, so retried within the policy's
    budget (docs/campaign-core.md rule 4); ``attempts`` counts the device's earlier
    actions for this release in this campaign."""
    client = action_rules.client_kind(action.groups, kinds or {})
    reports = [(s.at, s.execution, s.finished) for s in action.steps]
    events: list[ex.Event] = []
    installing = False
    for index, step in enumerate(action.steps):
        status = step.status_after
        if status == "finished":
            confirmed = action_rules.success_proves_boot(client, reports, index)
            events.append(ex.Event(ex.SUCCESS_REPORTED, step.at, confirmed=confirmed))
        elif status == "error":
            events.append(ex.Event(ex.FAILURE_REPORTED, step.at, transient=not installing))
        elif status == "canceled":
            events.append(ex.Event(ex.CANCELLED_EVENT, step.at))
        elif status in ex.STEP_EVENT:
            kind = ex.STEP_EVENT[status]
            installing = installing or kind == ex.INSTALLING
            events.append(ex.Event(kind, step.at))
    events.extend(h for h in health if h.at >= action.created_at)
    events.sort(key=lambda e: e.at)
    return ex.fold(events, version, now, policy, attempts=attempts)


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


_FAR = datetime(9999, 1, 1, tzinfo=UTC)


def due_at(execution: ex.Execution) -> datetime | None:
    """When an open execution times out if nothing more arrives (rule 2), else None."""
    if not execution.is_open:
        return None
    later = ex.settle(execution, _FAR, EXECUTION_POLICY)
    return later.finished_at if later.status == ex.TIMED_OUT else None


def health_event(sample: NumberedHealth) -> ex.Event:
    """A health report as the fold reads it."""
    return ex.Event(
        ex.HEALTH,
        sample.at,
        version=sample.running_version,
        crashes=sample.crashes,
        exposure_hours=(sample.uptime_s or 0.0) / 3600.0,
    )


def tallied(
    tallies: tuple[ex.HealthTally, ex.HealthTally], sample: NumberedHealth, version: str
) -> tuple[ex.HealthTally, ex.HealthTally]:
    """The (updated, baseline) tallies with one report of a targeted device added."""
    updated, baseline = tallies
    if sample.running_version == version:
        return updated.add(health_event(sample)), baseline
    if sample.running_version is not None:
        return updated, baseline.add(health_event(sample))
    return updated, baseline


def since_of(rec: CampaignRecord) -> datetime:
    """Health reports count from the campaign's start (its creation while a draft)."""
    return rec.started_at or rec.created_at


def executions_of(
    ctx: Context,
    plan: core.CampaignPlan,
    actions: Sequence[CampaignAction],
    health: Mapping[int, Sequence[ex.Event]],
    now: datetime,
) -> dict[int, StoredExecution]:
    """Each device's execution, folded from its latest action for the release (a
    retried device counts once, as it stands) and its health events."""
    latest: dict[int, CampaignAction] = {}
    tries: dict[int, int] = {}
    for action in actions:
        if action.release_id == plan.release.id:
            latest[action.device_id] = action
            tries[action.device_id] = tries.get(action.device_id, 0) + 1
    out: dict[int, StoredExecution] = {}
    policy = plan.timing.policy(EXECUTION_POLICY)  # the campaign's timeout and retries
    for device_id, action in latest.items():
        stage = plan.stage_of(action.controller_id, frozenset(action.groups))
        if stage is None:
            stage = 0  # a roll-forward priority device, admitted from the first stage
        execution = execution_of(
            action,
            plan.release.version,
            health.get(device_id, ()),
            now,
            attempts=tries[device_id] - 1,
            policy=policy,
            kinds=ctx.client_kinds,
        )
        out[device_id] = StoredExecution(device_id, stage, execution.status, due_at(execution))
    return out


@dataclass(frozen=True)
class Built:
    """Figures as they stand (built from the whole fleet, or the stored ones caught up
    with what changed since, ``catchup.catch_up``), with what to store of them."""

    figures: Figures
    stored: StoredFigures
    executions: tuple[StoredExecution, ...]


def build(
    ctx: Context,
    uow: UnitOfWork,
    rec: CampaignRecord,
    plan: core.CampaignPlan,
    now: datetime,
    *,
    since: datetime | None = None,
    fleet: Sequence[FleetDevice] | None = None,
    marks: Marks | None = None,
) -> Built:
    """The figures from the whole fleet, its actions and health reports up to ``marks``
    (read before ``fleet`` was scanned, when a caller passes both)."""
    if marks is None or fleet is None:
        marks = uow.campaigns.current_marks()
        fleet = targeted_fleet(uow, plan, product_hardware(ctx, rec.product))
    members = {d.id: d for d in fleet if d.id <= marks.device}
    version = plan.release.version
    health: dict[int, list[ex.Event]] = {}
    tallies = (ex.NO_HEALTH, ex.NO_HEALTH)
    for sample in uow.campaigns.health_between(since or since_of(rec), marks.health):
        if sample.device_id in members:
            health.setdefault(sample.device_id, []).append(health_event(sample))
            tallies = tallied(tallies, sample, version)
    executions = executions_of(ctx, plan, uow.campaigns.actions(rec.id), health, now)
    eligible = [0] * len(plan.stages)
    for device_id, execution in executions.items():
        if device_id not in members:
            # Reached, then out of the fleet (removed, or moved out of the targeted
            # versions): it stays in the figures it is counted in (docs/devices.md).
            eligible[execution.stage] += 1
    for device in members.values():
        stage = plan.stage_of(device.controller_id, frozenset(device.groups))
        if stage is not None:
            eligible[stage] += 1
    pairs = [(e.stage, settled(e, now)) for e in executions.values()]
    stored = StoredFigures(
        rec.id,
        marks,
        tuple(eligible),
        len(members),
        tallies[0].crashes,
        tallies[0].exposure_hours,
        tallies[1].crashes,
        tallies[1].exposure_hours,
    )
    found = Figures(ex.tally_stages(pairs, eligible), tallies[0], tallies[1], len(members))
    return Built(found, stored, tuple(executions.values()))


def settled(execution: StoredExecution, now: datetime) -> str:
    """A stored execution's status at ``now`` (an open one past its timeout timed out)."""
    if execution.due_at is not None and execution.due_at <= now:
        return ex.TIMED_OUT
    return execution.status


def store(uow: UnitOfWork, built: Built, now: datetime, *, replace: bool = True) -> None:
    """Store built figures (``replace``: the executions too)."""
    if replace:
        uow.campaigns.save_executions(built.stored.campaign_id, built.executions)
    uow.campaigns.save_figures(built.stored, now)


def figures(
    ctx: Context, uow: UnitOfWork, rec: CampaignRecord, plan: core.CampaignPlan, now: datetime
) -> Figures:
    """The figures as they stand, read without writing: the stored ones with what changed
    since folded in (docs/campaigns.md, "Figures"); built from the fleet only for a
    campaign whose figures were never stored."""
    from patchgate.services.campaigns.catchup import catch_up

    stored = uow.campaigns.stored_figures(rec.id)
    if stored is None:
        return build(ctx, uow, rec, plan, now).figures
    return catch_up(ctx, uow, rec, plan, stored, now).figures


def refresh(
    ctx: Context, uow: UnitOfWork, rec: CampaignRecord, plan: core.CampaignPlan, now: datetime
) -> Figures:
    """The figures as they stand, stored in the caller's transaction (the gate tick, under
    the campaign's row lock)."""
    from patchgate.services.campaigns.catchup import catch_up

    stored = uow.campaigns.stored_figures(rec.id)
    if stored is None:
        found = build(ctx, uow, rec, plan, now)
    else:
        found = catch_up(ctx, uow, rec, plan, stored, now)
    store(uow, found, now)
    return found.figures


def reseed(
    ctx: Context,
    uow: UnitOfWork,
    rec: CampaignRecord,
    plan: core.CampaignPlan,
    now: datetime,
    *,
    fleet: Sequence[FleetDevice],
    marks: Marks,
    since: datetime | None = None,
) -> None:
    """Store figures built from ``fleet`` (scanned after ``marks`` were read): at create,
    at start and when a stage opens with a new cohort cut."""
    store(uow, build(ctx, uow, rec, plan, now, since=since, fleet=fleet, marks=marks), now)


__all__ = ["Figures", "build", "figures", "refresh", "reseed"]
