"""Keeping a campaign's stored figures current (docs/campaigns.md, "Figures"): what
changed after the stored marks — action events of its actions, health reports, device
registrations — is folded into them, and nothing else is read. The per-stage counts are
the stored executions' one indexed aggregate, corrected for the devices re-folded now.

Ids of a table are handed out before their rows commit, so a row can appear after a
higher id is already visible. A mark therefore moves only over ids without a gap, or
past a gap once the row after it is older than :data:`GRACE` (a transaction of the
server's lasts far less); re-folding a device twice is harmless, counting a health
report twice is not, so health reports past the mark are never added."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.services.campaign_ports import CampaignRecord, FleetDevice
from patchgate.services.campaigns.figures import (
    Built,
    Figures,
    build,
    executions_of,
    health_event,
    settled,
    since_of,
    tallied,
)
from patchgate.services.campaigns.plans import targeted
from patchgate.services.context import Context
from patchgate.services.figure_ports import Marks, StoredExecution, StoredFigures
from patchgate.services.unit_of_work import UnitOfWork

GRACE = timedelta(seconds=60)
PAGE = 20_000


class _Row(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def at(self) -> datetime: ...


R = TypeVar("R", bound=_Row)


def advance(rows: Iterable[_Row], mark: int, now: datetime) -> int:
    """The mark after ``rows`` (ids above ``mark``, in order): over every id that follows
    without a gap, and past a gap whose next row is older than :data:`GRACE`."""
    for row in rows:
        if row.id != mark + 1 and row.at > now - GRACE:
            break
        mark = row.id
    return mark


def _after(read: Callable[[int], Sequence[R]], mark: int) -> list[R]:
    """Every row above ``mark``, read a page at a time."""
    out: list[R] = []
    while True:
        page = read(mark)
        out.extend(page)
        if len(page) < PAGE:
            return out
        mark = page[-1].id


def _members(
    uow: UnitOfWork, plan: core.CampaignPlan, device_ids: Iterable[int]
) -> dict[int, FleetDevice]:
    """Of these devices, those the campaign targets now, by id."""
    found = uow.campaigns.fleet_devices(set(device_ids))
    return {d.id: d for d in found if targeted(plan, d)}


def _counts(
    stored: Mapping[tuple[int, str], int],
    old: Mapping[int, StoredExecution],
    new: Mapping[int, StoredExecution],
    eligible: Sequence[int],
    now: datetime,
) -> tuple[ex.Counts, ...]:
    """Per-stage counts: the stored aggregate, with the re-folded devices' old statuses
    taken out and their new ones put in."""
    numbers = dict(stored)
    for sign, executions in ((-1, old), (1, new)):
        for e in executions.values():
            key = (e.stage, settled(e, now))
            numbers[key] = numbers.get(key, 0) + sign
    stages = [dict[str, int]() for _ in eligible]
    for (stage, status), n in numbers.items():
        if status != ex.NONE and n and 0 <= stage < len(stages):
            stages[stage][status] = stages[stage].get(status, 0) + n
    return tuple(ex.Counts(eligible=e, **s) for e, s in zip(eligible, stages, strict=True))


def catch_up(
    ctx: Context,
    uow: UnitOfWork,
    rec: CampaignRecord,
    plan: core.CampaignPlan,
    stored: StoredFigures,
    now: datetime,
) -> Built:
    """``stored`` with everything after its marks folded in (reads only; the caller stores
    the result or not). A campaign on a device query is built again instead: any change to
    a device (its groups, attributes, metadata) can bring it into the query or out of it,
    and no mark follows those changes, so its figures cost a scan of the devices the
    query's SQL selects (docs/campaigns.md, "Figures")."""
    if plan.selector.query is not None:
        return build(ctx, uow, rec, plan, now)
    repo = uow.campaigns
    marks = stored.marks
    events = _after(lambda m: repo.events_after(rec.id, m, limit=PAGE), marks.event)
    health = _after(lambda m: repo.health_after(m, limit=PAGE), marks.health)
    devices = _after(lambda m: repo.devices_after(m, limit=PAGE), marks.device)
    new_marks = Marks(
        advance(events, marks.event, now),
        advance(health, marks.health, now),
        advance(devices, marks.device, now),
    )
    # Health reports up to the new mark go into the tallies, once.
    since = since_of(rec)
    counted = [h for h in health if h.id <= new_marks.health and h.at >= since]
    members = _members(uow, plan, {h.device_id for h in counted})
    tallies = (
        ex.HealthTally(stored.updated_crashes, stored.updated_hours),
        ex.HealthTally(stored.baseline_crashes, stored.baseline_hours),
    )
    for sample in counted:
        if sample.device_id in members:
            tallies = tallied(tallies, sample, plan.release.version)
    # Devices registered after the mark join the eligible counts of their stage.
    eligible = list(stored.eligible)
    joined = _members(uow, plan, (d.id for d in devices if d.id <= new_marks.device))
    for device in joined.values():
        stage = plan.stage_of(device.controller_id, frozenset(device.groups))
        if stage is not None and stage < len(eligible):
            eligible[stage] += 1
    # Devices whose action moved or who reported health are folded again.
    changed = {e.device_id for e in events if e.device_id} | {h.device_id for h in health}
    refolded = _refold(ctx, uow, rec, plan, changed, now)
    old = repo.stored_executions(rec.id, list(refolded))
    counts = _counts(repo.execution_counts(rec.id, now), old, refolded, eligible, now)
    fleet = stored.fleet + len(joined)
    new_stored = replace(
        stored,
        marks=new_marks,
        eligible=tuple(eligible),
        fleet=fleet,
        updated_crashes=tallies[0].crashes,
        updated_hours=tallies[0].exposure_hours,
        baseline_crashes=tallies[1].crashes,
        baseline_hours=tallies[1].exposure_hours,
    )
    found = Figures(counts, tallies[0], tallies[1], fleet)
    return Built(found, new_stored, tuple(refolded.values()))


def _refold(
    ctx: Context,
    uow: UnitOfWork,
    rec: CampaignRecord,
    plan: core.CampaignPlan,
    changed: set[int],
    now: datetime,
) -> dict[int, StoredExecution]:
    """The executions of the changed devices that have an action in the campaign, folded
    from all their steps and health reports (as the full build folds them)."""
    if not changed:
        return {}
    actions = uow.campaigns.actions_of_devices(rec.id, changed)
    reached = {a.device_id for a in actions}
    if not reached:
        return {}
    members = _members(uow, plan, reached)
    health: dict[int, list[ex.Event]] = {}
    since = since_of(rec)
    for sample in uow.campaigns.health_of_devices(list(members), since, upto=2**62):
        health.setdefault(sample.device_id, []).append(health_event(sample))
    return executions_of(ctx, plan, actions, health, now)
