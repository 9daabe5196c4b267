"""A campaign's figures: per-stage counts from its actions' DDI steps, and the health
tallies of the updated and the baseline cohorts (docs/campaign-core.md "Feedback, counts
and gates"). Read by the gate evaluation and by the status view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from patchgate.domain import actions as action_rules
from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.services.campaign_ports import CampaignAction, CampaignRecord
from patchgate.services.campaigns.plans import product_hardware, targeted_fleet
from patchgate.services.context import Context
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


def figures(
    ctx: Context, uow: UnitOfWork, rec: CampaignRecord, plan: core.CampaignPlan, now: datetime
) -> Figures:
    """Counts from action events and health reports (docs/architecture.md)."""
    fleet = targeted_fleet(uow, plan, product_hardware(ctx, rec.product))
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
    tries: dict[int, int] = {}
    for action in uow.campaigns.actions(rec.id):
        if action.release_id == plan.release.id:
            latest[action.device_id] = action  # a retried device counts once, as it stands
            tries[action.device_id] = tries.get(action.device_id, 0) + 1
    pairs = []
    eligible = [0] * len(plan.stages)
    policy = plan.timing.policy(EXECUTION_POLICY)  # the campaign's timeout and retries
    for device_id, action in latest.items():
        stage = plan.stage_of(action.controller_id, frozenset(action.groups))
        if stage is None:
            stage = 0  # a roll-forward priority device, admitted from the first stage
        before = tries[device_id] - 1
        execution = execution_of(
            action,
            version,
            health.get(device_id, ()),
            now,
            attempts=before,
            policy=policy,
            kinds=ctx.client_kinds,
        )
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
