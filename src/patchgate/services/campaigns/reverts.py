"""Revert plans (docs/campaigns.md "Revert"): per device running a halted release, the
release a reverting campaign offers it, chosen by the domain's rule
(``patchgate.domain.reverts``) from that device's own history.

``plan`` writes the plan when a campaign starts reverting and ``sweep`` keeps it current
while it reverts (devices that reach the halted release later, targets withdrawn or halted
since); both run under the campaign's row lock and raise the state version when the plan
changed, so every server process offers from the new plan at its next poll. ``targets``
is what the poll's snapshot holds; ``summary`` what ``campaign status`` shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from patchgate.domain import campaigns as core
from patchgate.domain import reverts as rule
from patchgate.domain.errors import Conflict, NotFound
from patchgate.services import audit, state
from patchgate.services.campaign_ports import CampaignRecord, FleetDevice
from patchgate.services.campaigns.plans import get_campaign, product_hardware, release_ref, scan
from patchgate.services.context import Context
from patchgate.services.release_ports import ReleaseRecord
from patchgate.services.revert_ports import RanAction
from patchgate.services.unit_of_work import UnitOfWork

ACTOR_SWEEP = "campaign-engine"


@dataclass(frozen=True)
class _Releases:
    """The product's releases as the rule weighs them, by id and by version."""

    by_id: Mapping[int, rule.Candidate]
    by_version: Mapping[str, rule.Candidate]
    halted: frozenset[int]
    floor: int

    @classmethod
    def of(cls, uow: UnitOfWork, product: str) -> _Releases:
        found = [_candidate(r) for r in uow.releases.list(product=product)]
        campaigns = uow.campaigns.list()
        return cls(
            {c.release.id: c for c in found},
            {c.release.version: c for c in found},
            rule.halted_releases((c.release_id, c.state) for c in campaigns),
            uow.releases.security_floor(product),
        )

    def ran(self, history: Iterable[RanAction]) -> list[rule.Candidate]:
        """The releases a device ran successfully, oldest first: the version it ran when
        each action was created, and each release an action installed successfully."""
        out: list[rule.Candidate] = []
        for action in history:
            before = self.by_version.get(action.from_version or "")
            if before is not None:
                out.append(before)
            installed = self.by_id.get(action.release_id)
            if action.succeeded and installed is not None:
                out.append(installed)
        return out


def _candidate(r: ReleaseRecord) -> rule.Candidate:
    return rule.Candidate(release_ref(r), signed=r.state in ("signed", "withdrawn"))


@dataclass(frozen=True)
class Planned:
    """What one planning pass changed: device id → (release id, reason)."""

    changes: Mapping[int, tuple[int | None, str | None]]

    def counts(self) -> dict[str, int]:
        """Changed devices by target (``release N`` or ``not moved``)."""
        return dict(
            Counter(
                f"release {r}" if r is not None else "not moved" for r, _ in self.changes.values()
            )
        )


def explicit(uow: UnitOfWork, rec: CampaignRecord, release_id: int) -> ReleaseRecord:
    """The release named with ``--to``, or a refusal naming the rule it breaks."""
    good = uow.releases.get(release_id)
    if good is None:
        raise NotFound(f"no release {release_id}")
    bad = uow.releases.get(rec.release_id)
    assert bad is not None
    known = _Releases.of(uow, rec.product)
    halted = known.halted - {bad.id}
    why = rule.explicit_target(_candidate(good), release_ref(bad), halted=halted, floor=known.floor)
    if why is not None:
        raise Conflict(f"revert refused: {why}")
    return good


def _on_release(ctx: Context, uow: UnitOfWork, bad: core.ReleaseRef) -> list[FleetDevice]:
    return [
        d
        for d in scan(uow, product_hardware(ctx, bad.product))
        if d.installed_version == bad.version and (not bad.hardware or d.hardware in bad.hardware)
    ]


def _owners(uow: UnitOfWork, rec: CampaignRecord) -> dict[int, int]:
    """Devices another reverting campaign will move (its plan names a target), by device."""
    others = [
        c.id
        for c in uow.campaigns.list(states=(core.REVERTING,))
        if c.id != rec.id and c.product == rec.product
    ]
    return {
        row.device_id: row.campaign_id
        for row in uow.reverts.plans(others)
        if row.release_id is not None
    }


def plan(ctx: Context, uow: UnitOfWork, rec: CampaignRecord, *, to: int | None) -> Planned:
    """(Re)plan the revert of ``rec`` in the caller's transaction: every device running the
    halted release gets its target (``to`` for all, when named), unless another reverting
    campaign's plan already moves it or this campaign already offered it its revert."""
    bad_record = uow.releases.get(rec.release_id)
    assert bad_record is not None
    bad = release_ref(bad_record)
    known = _Releases.of(uow, rec.product)
    halted = known.halted | {bad.id}
    devices = _on_release(ctx, uow, bad)
    owners = _owners(uow, rec)
    stored = {row.device_id: (row.release_id, row.reason) for row in uow.reverts.plans([rec.id])}
    histories = uow.reverts.histories([d.id for d in devices])
    forced = known.by_id.get(to) if to is not None else None
    changes: dict[int, tuple[int | None, str | None]] = {}
    for device in devices:
        history = histories.get(device.id, ())
        if any(a.campaign_id == rec.id and a.release_id != bad.id for a in history):
            continue  # its revert was offered: the plan row stays as it was
        target = _target(device.id, history, known, bad, halted, owners, forced)
        if stored.get(device.id) != target:
            changes[device.id] = target
    if changes:
        uow.reverts.save(rec.id, changes, ctx.clock())
    return Planned(MappingProxyType(changes))


def _target(
    device_id: int,
    history: Sequence[RanAction],
    known: _Releases,
    bad: core.ReleaseRef,
    halted: frozenset[int],
    owners: Mapping[int, int],
    forced: rule.Candidate | None,
) -> tuple[int | None, str | None]:
    if device_id in owners:
        return None, f"in the revert of campaign {owners[device_id]}"
    if forced is not None:
        return forced.release.id, None
    found = rule.target_for(known.ran(history), bad, halted=halted, floor=known.floor)
    return (found.release.id if found.release else None), found.reason


def record(
    ctx: Context, uow: UnitOfWork, rec: CampaignRecord, planned: Planned, actor: str
) -> None:
    """Audit a plan that changed and raise the state version (the snapshot holds it)."""
    audit.record(
        ctx,
        uow,
        actor=actor,
        action="campaign.revert-planned",
        subject=f"campaign:{rec.id}",
        details={"devices": len(planned.changes), "targets": planned.counts()},
    )
    state.changed(ctx, uow)


def sweep(ctx: Context, *, reverting: Sequence[int] | None = None) -> int:
    """Re-plan every reverting campaign, oldest first (the timer's tick; ``reverting``:
    their ids as the caller just read them); returns how many devices' targets changed."""
    ids = reverting
    if ids is None:
        with ctx.read_uow() as uow:
            ids = [c.id for c in uow.campaigns.list(states=(core.REVERTING,))]
    moved = 0
    for campaign_id in ids:
        with ctx.uow() as uow:
            rec = get_campaign(uow, campaign_id, lock=True)
            if rec.state != core.REVERTING:
                continue
            planned = plan(ctx, uow, rec, to=rec.revert_to_release_id)
            if planned.changes:
                record(ctx, uow, rec, planned, ACTOR_SWEEP)
                uow.commit()
                moved += len(planned.changes)
    return moved


def targets(uow: UnitOfWork, rec: CampaignRecord) -> Mapping[str, core.ReleaseRef]:
    """The plan as the poll's snapshot holds it: controller id → the release to offer,
    leaving out targets withdrawn or halted since they were planned (the sweep re-plans
    those devices)."""
    if rec.state != core.REVERTING:
        return MappingProxyType({})
    known = _Releases.of(uow, rec.product)
    out: dict[str, core.ReleaseRef] = {}
    for row in uow.reverts.plans([rec.id]):
        candidate = known.by_id.get(row.release_id or 0)
        if candidate is None or candidate.release.withdrawn:
            continue
        if candidate.release.id in known.halted:
            continue
        out[row.controller_id] = candidate.release
    return MappingProxyType(out)


def summary(uow: UnitOfWork, rec: CampaignRecord) -> dict[str, Any] | None:
    """The revert's plan for ``campaign status``: devices per target release, and how many
    are not moved, by reason. None for a campaign that never reverted."""
    rows = uow.reverts.plans([rec.id])
    if not rows and rec.state != core.REVERTING:
        return None
    versions = {r.id: r.version for r in uow.releases.list(product=rec.product)}
    per_target = Counter(r.release_id for r in rows if r.release_id is not None)
    reasons = Counter(r.reason or "" for r in rows if r.release_id is None)
    return {
        "to_release_id": rec.revert_to_release_id,
        "devices": len(rows),
        "targets": [
            {"release_id": rid, "version": versions.get(rid, ""), "devices": n}
            for rid, n in sorted(per_target.items(), key=lambda item: (-item[1], item[0]))
        ],
        "not_moved": sum(reasons.values()),
        "not_moved_reasons": dict(sorted(reasons.items())),
    }


def main_target(summary_json: Mapping[str, Any] | None) -> int | None:
    """The release most of the revert's devices are offered (``revert_to_release_id``)."""
    if not summary_json:
        return None
    if summary_json["to_release_id"] is not None:
        return int(summary_json["to_release_id"])
    found = summary_json["targets"]
    return int(found[0]["release_id"]) if found else None
