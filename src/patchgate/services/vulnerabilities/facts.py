"""What a view of a vulnerability needs besides the stored record: the fixing releases,
the fleet's exposure and how far a fix has reached it (docs/vulnerability-register.md,
"Exposure" and "Time until 95 % of affected devices run the fix").

``gather`` reads them in one unit of work; the rest are rules over what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from patchgate.domain import versions
from patchgate.domain import vulnerabilities as domain
from patchgate.domain.policy import Policy
from patchgate.services.unit_of_work import UnitOfWork
from patchgate.services.vulnerabilities.rules import UNASSIGNED
from patchgate.services.vulnerability_ports import (
    FixingRelease,
    FixRun,
    FixShare,
    ProductAnalysis,
    Submission,
    VulnerabilityRecord,
)

FIX_SHARE = 0.95


@dataclass(frozen=True)
class Rollout:
    """How far the fix has reached the affected devices of one product, from action events.

    ``affected`` counts the devices the exposure rule counts now plus those that have since
    moved to a fixing release; ``ran_fix`` those of them that finished an action for a fixing
    release (or a later, unaffected release of the product) and still run an unaffected
    version; ``reached_at`` is when the device that made it 95 % finished, or None."""

    affected: int
    ran_fix: int
    reached_at: datetime | None

    @property
    def share(self) -> float | None:
        return round(self.ran_fix / self.affected, 4) if self.affected else None


@dataclass(frozen=True)
class Facts:
    """What a view needs besides the record: the policy, the clock, the fleet, the fixes."""

    policy: Policy
    now: datetime
    releases: Sequence[FixingRelease]
    submissions: Sequence[Submission]
    exposure: Mapping[str, int | None]
    fleet: Mapping[str, int]
    rollout: Mapping[str, Rollout]


def fixing(analysis: ProductAnalysis, releases: Sequence[FixingRelease]) -> list[FixingRelease]:
    """The releases that fix this analysis: those of its product that name the
    vulnerability among their fixes, and the one triage named; never a withdrawn one."""
    return [
        r
        for r in releases
        if (r.product == analysis.product or r.release_id == analysis.fixing_release_id)
        and r.state != "withdrawn"
    ]


def released_at(analysis: ProductAnalysis, releases: Sequence[FixingRelease]) -> datetime | None:
    """When a fix for this product was released: an explicit ``fix_released`` time, else
    the first fixing release's signature (or creation) time."""
    if analysis.released_at is not None:
        return analysis.released_at
    times = [r.signed_at or r.created_at for r in fixing(analysis, releases)]
    return min(times) if times else None


def fix_shown(analysis: ProductAnalysis, releases: Sequence[FixingRelease]) -> int | None:
    """The release shown as the fix: the one triage named unless it was withdrawn (a named
    release that does not list the fix is not in ``releases`` and is shown as named), else
    the first fixing release of the product."""
    fixes = fixing(analysis, releases)
    named = analysis.fixing_release_id
    if named is not None and (
        named in {r.release_id for r in fixes} or named not in {r.release_id for r in releases}
    ):
        return named
    return fixes[0].release_id if fixes else None


def fix_available_at(
    record: VulnerabilityRecord, releases: Sequence[FixingRelease]
) -> datetime | None:
    """The first time a fix was released for any product of the record."""
    times = [t for a in record.products if (t := released_at(a, releases)) is not None]
    return min(times) if times else None


def resolved_at(analysis: ProductAnalysis) -> datetime | None:
    if analysis.deployed_at is not None:
        return analysis.deployed_at
    if analysis.status == "closed":
        return analysis.closed_at
    return None


def pair_sla(
    record: VulnerabilityRecord, analysis: ProductAnalysis, due_at: datetime | None, facts: Facts
) -> str:
    """The SLA state of one (vulnerability, product) pair."""
    return domain.sla_state(
        now=facts.now,
        aware_at=record.aware_at,
        due_at=due_at,
        resolved_at=resolved_at(analysis),
        due_soon_fraction=facts.policy.due_soon_fraction,
        applicable=analysis.status not in domain.SIDE_STATES,
    )


def affected_range(
    analysis: ProductAnalysis, releases: Sequence[FixingRelease]
) -> versions.VersionRange | None:
    """The versions of a product that are affected: its recorded ranges; without any,
    every version before the first fixing release of that product; without a fix either,
    every version. None means nothing is affected (not_affected)."""
    if analysis.status == "not_affected":
        return None
    if analysis.ranges:
        return versions.union(versions.parse_range(r) for r in analysis.ranges)
    fixed = [r.version for r in fixing(analysis, releases) if versions.is_version(r.version)]
    if fixed:
        first = min(fixed, key=versions.version_key)
        return versions.VersionRange(
            (versions.Interval(None, versions.Bound(first, inclusive=False)),)
        )
    return versions.VersionRange((versions.Interval(),))


def exposure(
    uow: UnitOfWork, record: VulnerabilityRecord, policy: Policy, releases: Sequence[FixingRelease]
) -> tuple[dict[str, int | None], dict[str, int]]:
    """Per product of the record, from one count of its devices by version: the
    registered devices running an affected version (``None`` for a product that is not in
    the policy, or lists no hardware, so its devices cannot be known), and the registered
    devices in all (by the product's hardware models)."""
    exposed: dict[str, int | None] = {}
    fleet: dict[str, int] = {}
    for analysis in record.products:
        if analysis.product == UNASSIGNED:
            continue
        product = policy.product(analysis.product)
        if product is None or not product.hardware:
            exposed[analysis.product] = None
            continue
        counts = uow.vulnerabilities.installed_versions(product.hardware)
        fleet[analysis.product] = sum(counts.values())
        rng = affected_range(analysis, releases)
        exposed[analysis.product] = (
            0
            if rng is None
            else sum(n for version, n in counts.items() if rng.everything or rng.contains(version))
        )
    return exposed, fleet


def _fixes(
    fixes: set[int], affected: Callable[[str], bool], first_fix: str | None
) -> Callable[[int, str], bool]:
    """Whether a release (id, version) of the product counts as running the fix: a fixing
    release, or a later release of the product (at or above the first fixing version)
    outside the affected range."""

    def counts(release_id: int, version: str) -> bool:
        if release_id in fixes:
            return True
        if first_fix is None or not versions.is_version(version):
            return False
        return versions.version_key(version) >= versions.version_key(first_fix) and not affected(
            version
        )

    return counts


def _memo(rng: versions.VersionRange) -> Callable[[str], bool]:
    """``rng`` as a test of a version; a fleet has few versions: each is parsed once."""
    hit: dict[str, bool] = {}

    def affected(version: str) -> bool:
        if version not in hit:
            hit[version] = rng.everything or rng.contains(version)
        return hit[version]

    return affected


def needed_for(total: int) -> int:
    """How many of ``total`` devices make :data:`FIX_SHARE` (ceil, exact for integers)."""
    return FixShare(0, round(FIX_SHARE * 100)).needed(total)


def reach(
    exposed: int,
    runs: Sequence[FixRun],
    fixes: set[int],
    rng: versions.VersionRange,
    first_fix: str | None,
) -> Rollout:
    """The rollout of a fix over one product's devices (see ``Rollout``).

    A run counts when its release is a fixing release, or a later release of the product
    (at or above the first fixing version) outside the affected range; per device the first
    such time. Devices still on an affected version are already in ``exposed``; a device
    that ran the fix and then went back to an affected version counts as exposed, not fixed.
    ``rollouts`` applies the same rule in the database (``FixReach``).
    """
    affected = _memo(rng)
    fixes_it = _fixes(fixes, affected, first_fix)
    first: dict[int, datetime] = {}
    for run in runs:
        if run.installed_version is not None and affected(run.installed_version):
            continue
        if fixes_it(run.release_id, run.release_version) and (
            run.device_id not in first or run.at < first[run.device_id]
        ):
            first[run.device_id] = run.at
    total = exposed + len(first)
    times = sorted(first.values())
    needed = needed_for(total)
    reached = times[needed - 1] if total and len(times) >= needed else None
    return Rollout(affected=total, ran_fix=len(times), reached_at=reached)


def rollouts(
    uow: UnitOfWork,
    record: VulnerabilityRecord,
    policy: Policy,
    releases: Sequence[FixingRelease],
    exposed: Mapping[str, int | None],
) -> dict[str, Rollout]:
    """Per product with a fixing release and known hardware: how far the fix has reached
    (the rule of ``reach``). The releases that count and the installed versions that are
    affected are decided here, from the product's releases and the versions its devices
    run (a few each); the database then counts the devices that ran the fix and finds the
    time that made it 95 %, without sending a row per device (docs/console.md,
    "Performance")."""
    out: dict[str, Rollout] = {}
    for analysis in record.products:
        product = policy.product(analysis.product)
        count = exposed.get(analysis.product)
        if product is None or not product.hardware or count is None:
            continue
        fixes = fixing(analysis, releases)
        rng = affected_range(analysis, releases)
        if not fixes or rng is None:
            continue
        numbered = [r.version for r in fixes if versions.is_version(r.version)]
        first_fix = min(numbered, key=versions.version_key) if numbered else None
        affected = _memo(rng)
        counts = _fixes({r.release_id for r in fixes}, affected, first_fix)
        found = uow.vulnerabilities.fix_reach(
            product.hardware,
            release_ids=[r.id for r in uow.releases.list(product=analysis.product)
                         if counts(r.id, r.version)],
            skip_versions=[v for v in uow.vulnerabilities.device_versions(product.hardware)
                           if v is not None and affected(v)],
            share=FixShare(count, round(FIX_SHARE * 100)),
        )  # fmt: skip
        out[analysis.product] = Rollout(count + found.devices, found.devices, found.reached_at)
    return out


def gather(uow: UnitOfWork, record: VulnerabilityRecord, policy: Policy, now: datetime) -> Facts:
    """Read everything a view of ``record`` needs besides the record."""
    releases = uow.vulnerabilities.fixing_releases(record.id, record.aliases)
    exposed, fleet = exposure(uow, record, policy, releases)
    return Facts(
        policy=policy,
        now=now,
        releases=releases,
        submissions=uow.vulnerabilities.submissions(record.id),
        exposure=exposed,
        fleet=fleet,
        rollout=rollouts(uow, record, policy, releases, exposed),
    )
