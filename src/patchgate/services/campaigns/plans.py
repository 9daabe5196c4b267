"""How a stored campaign becomes the campaign core's plan, and the fleet as the engine
sees it (docs/campaign-core.md). Shared by the commands, the views and the poll."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from datetime import timedelta
from typing import Any

from patchgate.domain import campaigns as core
from patchgate.domain import filters
from patchgate.domain.campaign_timing import timing_from
from patchgate.domain.cohorts import CANARY_OPTIN_GROUP, CohortCut
from patchgate.domain.durations import format_duration
from patchgate.domain.errors import NotFound
from patchgate.domain.gates import CrashTest, StageGates
from patchgate.domain.planning import FleetTiming
from patchgate.domain.ratelimit import RateLimit
from patchgate.domain.stages import Stage
from patchgate.domain.versions import parse_range
from patchgate.domain.windows import MaintenanceWindow
from patchgate.services.campaign_ports import CampaignChanges, CampaignRecord, FleetDevice
from patchgate.services.context import Context
from patchgate.services.policy import in_force
from patchgate.services.release_ports import ReleaseRecord
from patchgate.services.unit_of_work import UnitOfWork

ACTOR_ENGINE = "campaign-engine"
SCAN_BATCH = 10_000  # a million devices: 100 reads
TIMING = FleetTiming()


def gates_json(g: StageGates) -> dict[str, Any]:
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


def gates_from(d: Mapping[str, Any]) -> StageGates:
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


def stage_json(s: Stage) -> dict[str, Any]:
    return {
        "name": s.name,
        "groups": list(s.groups),
        "percent": s.percent,
        "canary": s.canary,
        "gates": gates_json(s.gates),
    }


def stage_from(d: Mapping[str, Any]) -> Stage:
    return Stage(
        name=d["name"],
        groups=tuple(d["groups"]),
        percent=d["percent"],
        canary=bool(d["canary"]),
        gates=gates_from(d["gates"]),
    )


def cut_json(c: CohortCut) -> dict[str, Any]:
    return {
        "groups": sorted(c.groups),
        "cutoff": c.cutoff,
        "optin_group": c.optin_group,
        "optin_cutoff": c.optin_cutoff,
        "shortfall": c.shortfall,
    }


def cut_from(d: Mapping[str, Any]) -> CohortCut:
    return CohortCut(
        frozenset(d["groups"]), d["cutoff"], d["optin_group"], d["optin_cutoff"], d["shortfall"]
    )


def release_ref(r: ReleaseRecord) -> core.ReleaseRef:
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


def progress_of(rec: CampaignRecord) -> core.Progress:
    return core.Progress(**{name: getattr(rec, name) for name in _PROGRESS_FIELDS})


def with_progress(changes: CampaignChanges, p: core.Progress) -> CampaignChanges:
    """``changes`` with the columns that hold ``p`` set too."""
    return replace(
        changes,
        state=p.state,
        stage_index=p.stage_index,
        stage_started_at=p.stage_started_at,
        approved=p.approved,
        started_at=p.started_at,
        halted_at=p.halted_at,
        halt_reason=p.halt_reason,
        finished_at=p.finished_at,
        floor_raised=p.floor_raised,
    )


def delivery_of(d: Mapping[str, Any]) -> core.Delivery:
    return core.Delivery(
        forced=bool(d.get("forced")),
        download_only=bool(d.get("download_only")),
        confirm_required=bool(d.get("confirm_required")),
        window=MaintenanceWindow.parse(d["window"]) if d.get("window") else None,
        rate=RateLimit.parse(d["rate"]) if d.get("rate") else None,
    )


def plan_of(uow: UnitOfWork, rec: CampaignRecord) -> core.CampaignPlan:
    # The revert plan's loader builds on this module (docs/campaigns.md "Revert").
    from patchgate.services.campaigns.reverts import targets

    release = uow.releases.get(rec.release_id)
    assert release is not None
    revert_to = None
    if rec.revert_to_release_id is not None:
        good = uow.releases.get(rec.revert_to_release_id)
        revert_to = None if good is None else release_ref(good)
    selector = rec.selector
    return core.CampaignPlan(
        id=rec.id,
        salt=rec.salt,
        release=release_ref(release),
        selector=core.Selector(
            product=rec.product,
            hardware=frozenset(selector.get("hardware", ())),
            groups=frozenset(selector.get("groups", ())),
            versions=parse_range(selector["versions"]) if selector.get("versions") else None,
            query=filters.parse(selector["filter"]) if selector.get("filter") else None,
        ),
        stages=tuple(stage_from(s) for s in rec.stages),
        cuts=tuple(cut_from(c) for c in rec.cuts),
        progress=progress_of(rec),
        delivery=delivery_of(rec.delivery),
        revert_to=revert_to,
        priority_versions=frozenset(rec.priority_versions),
        timing=timing_from(rec.delivery),
        revert_targets=targets(uow, rec),
    )


def get_campaign(uow: UnitOfWork, campaign_id: int, *, lock: bool = False) -> CampaignRecord:
    rec = uow.campaigns.get(campaign_id, lock=lock)
    if rec is None:
        raise NotFound(f"no campaign {campaign_id}")
    return rec


# ---- the fleet as the engine sees it -------------------------------------------------------


def product_hardware(ctx: Context, product: str) -> tuple[str, ...]:
    found = in_force(ctx).policy.product(product)
    return found.hardware if found is not None else ()


def scan(
    uow: UnitOfWork, hardware: Sequence[str], query: filters.Expression | None = None
) -> Iterator[FleetDevice]:
    """The product's devices in batches (every device when the product names no models);
    with a device query, those its SQL condition selects (docs/device-filters.md)."""
    after = 0
    models = list(hardware) or None
    while True:
        batch = uow.campaigns.scan_devices(
            after_id=after, limit=SCAN_BATCH, hardware=models, query=query
        )
        yield from batch
        if len(batch) < SCAN_BATCH:
            return
        after = batch[-1].id


def fleet_facts(device: FleetDevice, product: str) -> core.DeviceFacts:
    return core.DeviceFacts(
        device.controller_id,
        product,
        device.hardware,
        frozenset(device.groups),
        device.installed_version,
        attributes=device.attributes,
        metadata=device.metadata,
        last_seen=device.last_seen,
    )


def targeted(plan: core.CampaignPlan, device: FleetDevice) -> bool:
    release = plan.release
    if release.hardware and device.hardware not in release.hardware:
        return False
    selector = plan.selector
    plain = selector.versions is None and selector.query is None
    if plain and not selector.hardware and not selector.groups:
        return True  # the product's every device (its facts carry the selector's product)
    return selector.matches(fleet_facts(device, selector.product))


def targeted_fleet(
    uow: UnitOfWork, plan: core.CampaignPlan, hardware: Sequence[str]
) -> list[FleetDevice]:
    return [d for d in scan(uow, hardware, plan.selector.query) if targeted(plan, d)]


def cohort_cuts(
    stages: Sequence[Stage], fleet: Sequence[FleetDevice], fill: bool
) -> list[CohortCut]:
    optin = sum(1 for d in fleet if CANARY_OPTIN_GROUP in d.groups)
    return [s.cut(fleet=len(fleet), optin=optin, fill_from_others=fill) for s in stages]


def stage_devices(
    plan: core.CampaignPlan, fleet: Iterable[FleetDevice], stage: int
) -> list[FleetDevice]:
    """The devices that ``stage`` admits first (its own cohort)."""
    return [d for d in fleet if plan.stage_of(d.controller_id, frozenset(d.groups)) == stage]
