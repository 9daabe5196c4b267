"""Use cases of the vulnerability register: add, triage, override, exploitation and the CRA
Art. 14 reports, fleet exposure, views and the SLA report.

Deadlines are computed from the policy in force each time they are shown, from the stored
awareness time and severity, so a change of cadence applies to open vulnerabilities at once
(the audit log keeps which policy was in force when).

Product key ``""`` holds the analysis of a vulnerability not (yet) tied to any product of
the policy, as imported third-party advisories are; it is never shown as a product.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain import versions
from patchgate.domain import vulnerabilities as rules
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.domain.policy import Policy
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.cvss_scoring import score_vector
from patchgate.services.policy import in_force
from patchgate.services.unit_of_work import UnitOfWork
from patchgate.services.vulnerability_ports import (
    FixingRelease,
    FixRun,
    ProductAnalysis,
    Submission,
    VulnerabilityRecord,
)

UNASSIGNED = ""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


# --- views ------------------------------------------------------------------------------------


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


def cvss_severity(record: VulnerabilityRecord, policy: Policy) -> str:
    """The severity from the record's score alone (``none`` when it has no score)."""
    if record.score is None:
        return "none"
    return rules.severity_for(record.score, policy.cadence.values())


def severity(record: VulnerabilityRecord, policy: Policy) -> str:
    """The severity in force: the override when one is recorded, else the score's band."""
    return record.severity_override or cvss_severity(record, policy)


def deadline(record: VulnerabilityRecord, policy: Policy) -> tuple[str, datetime | None]:
    """(severity whose cadence applies, due time) with exploited escalation applied."""
    applied = rules.effective_severity(
        severity(record, policy),
        exploited=record.exploited_at is not None,
        exploited_severity=policy.exploited_severity,
    )
    hours = {s: r.deadline_hours for s, r in policy.cadence.items()}
    return applied, rules.patch_deadline(record.aware_at, applied, hours)


def _released_at(analysis: ProductAnalysis, releases: Sequence[FixingRelease]) -> datetime | None:
    """When a fix for this product was released: an explicit ``fix_released`` time, else
    the first fixing release's signature (or creation) time."""
    if analysis.released_at is not None:
        return analysis.released_at
    times = [r.signed_at or r.created_at for r in _fixing(analysis, releases)]
    return min(times) if times else None


def _fixing(analysis: ProductAnalysis, releases: Sequence[FixingRelease]) -> list[FixingRelease]:
    """The releases that fix this analysis: those of its product that name the
    vulnerability among their fixes, and the one triage named; never a withdrawn one."""
    return [
        r
        for r in releases
        if (r.product == analysis.product or r.release_id == analysis.fixing_release_id)
        and r.state != "withdrawn"
    ]


def _fix_shown(analysis: ProductAnalysis, releases: Sequence[FixingRelease]) -> int | None:
    """The release shown as the fix: the one triage named unless it was withdrawn (a named
    release that does not list the fix is not in ``releases`` and is shown as named), else
    the first fixing release of the product."""
    fixing = _fixing(analysis, releases)
    named = analysis.fixing_release_id
    if named is not None and (
        named in {r.release_id for r in fixing} or named not in {r.release_id for r in releases}
    ):
        return named
    return fixing[0].release_id if fixing else None


def _resolved_at(analysis: ProductAnalysis) -> datetime | None:
    if analysis.deployed_at is not None:
        return analysis.deployed_at
    if analysis.status == "closed":
        return analysis.closed_at
    return None


def _pair_sla(
    record: VulnerabilityRecord, analysis: ProductAnalysis, due_at: datetime | None, facts: Facts
) -> str:
    return rules.sla_state(
        now=facts.now,
        aware_at=record.aware_at,
        due_at=due_at,
        resolved_at=_resolved_at(analysis),
        due_soon_fraction=facts.policy.due_soon_fraction,
        applicable=analysis.status not in rules.SIDE_STATES,
    )


def view(record: VulnerabilityRecord, facts: Facts) -> dict[str, Any]:
    """The JSON shape of ``vuln show --json`` (INTERFACES.md names the required fields)."""
    applied, due_at = deadline(record, facts.policy)
    products: list[dict[str, Any]] = []
    states: list[str] = []
    for analysis in record.products:
        state = _pair_sla(record, analysis, due_at, facts)
        states.append(state)
        if analysis.product == UNASSIGNED:
            continue
        released = _released_at(analysis, facts.releases)
        products.append(
            {
                "product": analysis.product,
                "status": analysis.status,
                "justification": analysis.justification,
                "affected": list(analysis.ranges),
                "fixing_release_id": _fix_shown(analysis, facts.releases),
                "due_at": rfc3339(due_at),
                "sla_state": state,
                "released_at": rfc3339(released),
                "deployed_at": rfc3339(analysis.deployed_at),
                "exposed_devices": facts.exposure.get(analysis.product),
                "fleet_devices": facts.fleet.get(analysis.product),
                # Share of the product's registered devices not on an affected version:
                # what "95 % of affected devices run the fix" is measured against.
                "patched_share": _share(
                    facts.exposure.get(analysis.product), facts.fleet.get(analysis.product)
                ),
                **_rollout_view(record, facts.rollout.get(analysis.product)),
            }
        )
    exposed = [n for n in facts.exposure.values() if n is not None]
    rollouts = [
        facts.rollout[a.product]
        for a in record.products
        if a.product in facts.rollout and a.status not in rules.SIDE_STATES
    ]
    reached = [r.reached_at for r in rollouts]
    overall = (
        max(t for t in reached if t is not None)
        if reached and all(t is not None for t in reached)
        else None
    )
    body: dict[str, Any] = {
        "id": record.id,
        "title": record.title,
        "description": record.description,
        "aliases": list(record.aliases),
        "cvss_vector": record.cvss_vector,
        "cvss_version": record.cvss_version,
        "score": record.score,
        "cvss_severity": cvss_severity(record, facts.policy),
        "severity": severity(record, facts.policy),
        "severity_override": (
            {"severity": record.severity_override, "justification": record.override_justification}
            if record.severity_override
            else None
        ),
        "deadline_severity": applied,
        "score_source": record.score_source,
        "scores": list(record.scores),
        "aware_at": rfc3339(record.aware_at),
        "due_at": rfc3339(due_at),
        "sla_state": rules.worst_sla_state(states),
        "status": rules.least_advanced([a.status for a in record.products]),
        "exploited": record.exploited_at is not None,
        "exploited_at": rfc3339(record.exploited_at),
        "products": products,
        # A count, as scripts expect; per product in ``exposure`` and in ``products[]``.
        "exposed_devices": sum(exposed),
        "exposure": {
            "total": sum(exposed),
            "per_product": {k: v for k, v in facts.exposure.items() if k != UNASSIGNED},
        },
        # The moment 95 % of the affected devices of every product ran the fix.
        "fix_95pct_at": rfc3339(overall),
        "time_to_95pct_hours": _hours(record.aware_at, overall),
        "components": list(record.components),
        "upstream": dict(record.upstream),
        "origin": record.origin,
        "notes": list(record.notes),
        "withdrawn_at": rfc3339(record.withdrawn_at),
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
    }
    if record.exploited_at is not None or record.severe_incident_at is not None:
        body["art14"] = art14_view(record, facts)
    return body


def _hours(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds() / 3600, 4)


def _rollout_view(record: VulnerabilityRecord, rollout: Rollout | None) -> dict[str, Any]:
    reached = rollout.reached_at if rollout is not None else None
    return {
        "fix_95pct_at": rfc3339(reached),
        "time_to_95pct_hours": _hours(record.aware_at, reached),
        "fix_affected_devices": rollout.affected if rollout is not None else None,
        "fix_running_devices": rollout.ran_fix if rollout is not None else None,
        "fix_running_share": rollout.share if rollout is not None else None,
    }


def _fix_available_at(record: VulnerabilityRecord, facts: Facts) -> datetime | None:
    times = [t for a in record.products if (t := _released_at(a, facts.releases)) is not None]
    return min(times) if times else None


def art14_view(record: VulnerabilityRecord, facts: Facts) -> dict[str, Any]:
    """The CRA Art. 14 clocks: each report's due time, state and submission."""
    submitted = {s.kind: s.submitted_at for s in facts.submissions}
    clocks = rules.art14_clocks(
        exploited_at=record.exploited_at,
        fix_available_at=_fix_available_at(record, facts),
        severe_incident_at=record.severe_incident_at,
        submitted=submitted,
    )
    body: dict[str, Any] = {
        # Art. 14 concerns vulnerabilities contained in a product: one only known from a
        # feed (no product yet) or not affecting any product has clocks but no duty.
        "required": any(
            a.product != UNASSIGNED and a.status != "not_affected" for a in record.products
        ),
        "member_states": member_states(record, facts.policy),
        "severe_incident_at": rfc3339(record.severe_incident_at),
        "reports": {
            c.kind: {
                "due_at": rfc3339(c.due_at),
                "state": c.state(facts.now),
                "submitted_at": rfc3339(c.submitted_at),
            }
            for c in clocks
        },
    }
    for clock in clocks:
        body[f"{clock.kind}_due"] = rfc3339(clock.due_at)
    return body


def member_states(record: VulnerabilityRecord, policy: Policy) -> list[str]:
    """Member States where an affected product is made available (Art. 14(2)(a))."""
    states: set[str] = set()
    for analysis in record.products:
        product = policy.product(analysis.product)
        if product is not None:
            states.update(product.member_states)
    return sorted(states)


# --- exposure ---------------------------------------------------------------------------------


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
    fixed = [r.version for r in _fixing(analysis, releases) if versions.is_version(r.version)]
    if fixed:
        first = min(fixed, key=versions.version_key)
        return versions.VersionRange(
            (versions.Interval(None, versions.Bound(first, inclusive=False)),)
        )
    return versions.VersionRange((versions.Interval(),))


def _share(exposed: int | None, fleet: int | None) -> float | None:
    if exposed is None or not fleet:
        return None
    return round(1 - exposed / fleet, 4)


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


FIX_SHARE = 0.95


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
    """

    hit: dict[str, bool] = {}  # a fleet has few versions and releases: parse each once

    def affected(version: str) -> bool:
        if version not in hit:
            hit[version] = rng.everything or rng.contains(version)
        return hit[version]

    def fixes_it(run: FixRun) -> bool:
        if run.release_id in fixes:
            return True
        if first_fix is None or not versions.is_version(run.release_version):
            return False
        return versions.version_key(run.release_version) >= versions.version_key(
            first_fix
        ) and not affected(run.release_version)

    first: dict[int, datetime] = {}
    for run in runs:
        if run.installed_version is not None and affected(run.installed_version):
            continue
        if fixes_it(run) and (run.device_id not in first or run.at < first[run.device_id]):
            first[run.device_id] = run.at
    total = exposed + len(first)
    times = sorted(first.values())
    needed = -(-round(FIX_SHARE * 100) * total // 100)  # ceil, exact for integers
    reached = times[needed - 1] if total and len(times) >= needed else None
    return Rollout(affected=total, ran_fix=len(times), reached_at=reached)


def rollouts(
    uow: UnitOfWork,
    record: VulnerabilityRecord,
    policy: Policy,
    releases: Sequence[FixingRelease],
    exposed: Mapping[str, int | None],
) -> dict[str, Rollout]:
    """Per product with a fixing release and known hardware: how far the fix has reached."""
    out: dict[str, Rollout] = {}
    for analysis in record.products:
        product = policy.product(analysis.product)
        count = exposed.get(analysis.product)
        if product is None or not product.hardware or count is None:
            continue
        fixing = _fixing(analysis, releases)
        if not fixing:
            continue
        rng = affected_range(analysis, releases)
        if rng is None:
            continue
        numbered = [r.version for r in fixing if versions.is_version(r.version)]
        first_fix = min(numbered, key=versions.version_key) if numbered else None
        runs = uow.vulnerabilities.fix_runs(product.hardware, analysis.product)
        out[analysis.product] = reach(count, runs, {r.release_id for r in fixing}, rng, first_fix)
    return out


def _facts(uow: UnitOfWork, record: VulnerabilityRecord, policy: Policy, now: datetime) -> Facts:
    releases = uow.vulnerabilities.fixing_releases(record.id)
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


# --- queries ----------------------------------------------------------------------------------


def show(ctx: Context, vuln_id: str) -> dict[str, Any]:
    """The full view of one vulnerability, or ``NotFound``."""
    policy = in_force(ctx).policy
    with ctx.read_uow() as uow:
        record = uow.vulnerabilities.get(vuln_id)
        if record is None:
            raise NotFound(f"no vulnerability {vuln_id!r} in the register")
        return view(record, _facts(uow, record, policy, ctx.clock()))


def list_all(ctx: Context, *, overdue: bool = False) -> list[dict[str, Any]]:
    """Every vulnerability's view, soonest deadline first; ``overdue`` keeps only those
    whose deadline has passed with a fix still not deployed."""
    policy = in_force(ctx).policy
    now = ctx.clock()
    with ctx.read_uow() as uow:
        views = [view(r, _facts(uow, r, policy, now)) for r in uow.vulnerabilities.list()]
    if overdue:
        views = [v for v in views if v["sla_state"] == "overdue"]
    views.sort(key=lambda v: (v["due_at"] is None, v["due_at"] or "", v["id"]))
    return views


# --- commands ---------------------------------------------------------------------------------


def check_products(policy: Policy, products: Sequence[str]) -> None:
    """Refuse a product the policy does not know, naming the products it does."""
    for name in products:
        if policy.product(name) is None:
            known = ", ".join(p.name for p in policy.products) or "none"
            raise InvalidInput(f"product {name!r} is not in the policy (products: {known})")


def _check_ranges(ranges: Sequence[str]) -> list[str]:
    return [versions.parse_range(r).to_vers() for r in ranges]


def add(
    ctx: Context,
    *,
    vuln_id: str,
    title: str,
    cvss: str,
    actor: str,
    aware_at: datetime | None = None,
    products: Sequence[str] = (),
    affected: Sequence[str] = (),
    exploited: bool = False,
    description: str = "",
) -> dict[str, Any]:
    """Register a vulnerability assessed by the manufacturer. Refuses a duplicate ID, a
    vector the ``cvss`` library rejects, an unknown product or an unreadable range, before
    anything is written."""
    if not _ID.match(vuln_id):
        raise InvalidInput(f"{vuln_id!r} is not a usable ID (letters, digits, . _ : -)")
    if not title.strip():
        raise InvalidInput("a title is required")
    scored = score_vector(cvss)
    policy = in_force(ctx).policy
    check_products(policy, products)
    ranges = _check_ranges(affected)
    now = ctx.clock()
    aware = _when(aware_at, now, "awareness")
    with ctx.uow() as uow:
        if uow.vulnerabilities.get(vuln_id) is not None:
            raise Conflict(f"{vuln_id} is already in the register (use `vuln show {vuln_id}`)")
        record = VulnerabilityRecord(
            id=vuln_id,
            title=title.strip(),
            description=description,
            aware_at=aware,
            created_at=now,
            updated_at=now,
            origin="manual",
            cvss_vector=scored.vector,
            cvss_version=scored.version,
            score=scored.score,
            score_source="manufacturer",
            scores=[
                {
                    "source": "manufacturer",
                    "provider": policy.organisation,
                    "version": scored.version,
                    "vector": scored.vector,
                    "score": scored.score,
                }
            ],
            exploited_at=aware if exploited else None,
            products=[
                ProductAnalysis(product=p, ranges=list(ranges), updated_at=now)
                for p in dict.fromkeys(products)
            ]
            or [ProductAnalysis(product=UNASSIGNED, updated_at=now)],
        )
        applied, due_at = deadline(record, policy)
        return _save_audit_view(
            ctx,
            uow,
            record,
            policy=policy,
            now=now,
            actor=actor,
            action="vuln.add",
            details={
                "cvss_vector": scored.vector,
                "score": scored.score,
                "severity": applied,
                "due_at": rfc3339(due_at),
                "products": list(products),
                "affected": ranges,
                "exploited": exploited,
                "policy_sha256": in_force(ctx).sha256,
            },
        )


def _load(uow: UnitOfWork, vuln_id: str) -> VulnerabilityRecord:
    record = uow.vulnerabilities.get(vuln_id, for_update=True)
    if record is None:
        raise NotFound(f"no vulnerability {vuln_id!r} in the register")
    return record


def _when(at: datetime | None, now: datetime, what: str) -> datetime:
    """``at``, or now without one; a time in the future is refused, naming ``what``."""
    when = at or now
    if when > now:
        raise InvalidInput(f"{what} cannot be dated in the future")
    return when


def _save_audit_view(
    ctx: Context,
    uow: UnitOfWork,
    record: VulnerabilityRecord,
    *,
    policy: Policy,
    now: datetime,
    actor: str,
    action: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    """Stamp and store a changed record, audit the change, commit, and return the view."""
    record.updated_at = now
    uow.vulnerabilities.save(record)
    audit.record(ctx, uow, actor=actor, action=action, subject=f"vuln:{record.id}", details=details)
    result = view(record, _facts(uow, record, policy, now))
    uow.commit()
    return result


def set_affected(
    ctx: Context,
    vuln_id: str,
    *,
    product: str,
    affected: Sequence[str],
    actor: str,
) -> dict[str, Any]:
    """Record that ``product`` is affected (in the versions ``affected``; none means every
    version before its fixing release). A new product starts at ``new``; for a product
    already recorded only the ranges change. An imported advisory known under no product
    until now takes over its unassigned analysis."""
    policy = in_force(ctx).policy
    check_products(policy, [product])
    ranges = _check_ranges(affected)
    now = ctx.clock()
    with ctx.uow() as uow:
        record = _load(uow, vuln_id)
        analysis = record.product(product)
        if analysis is None:
            unassigned = record.product(UNASSIGNED)
            analysis = ProductAnalysis(
                product=product,
                status=unassigned.status if unassigned else "new",
                justification=unassigned.justification if unassigned else None,
                updated_at=now,
            )
            record.products = [a for a in record.products if a.product != UNASSIGNED]
            record.products.append(analysis)
        before = list(analysis.ranges)
        analysis.ranges = ranges
        analysis.updated_at = now
        return _save_audit_view(
            ctx,
            uow,
            record,
            policy=policy,
            now=now,
            actor=actor,
            action="vuln.affects",
            details={"product": product, "from": before, "to": ranges},
        )


def triage(
    ctx: Context,
    vuln_id: str,
    *,
    status: str,
    actor: str,
    justification: str | None = None,
    product: str | None = None,
    at: datetime | None = None,
    release_id: int | None = None,
) -> dict[str, Any]:
    """Move the analysis of one product (or of every product) to ``status``.

    The lifecycle refuses unknown steps naming the allowed ones. ``at`` dates a
    ``fix_released`` / ``fix_deployed`` / ``closed`` step (default: now); ``release_id``
    names the fixing release.
    """
    policy = in_force(ctx).policy
    now = ctx.clock()
    when = _when(at, now, "a transition")
    with ctx.uow() as uow:
        record = _load(uow, vuln_id)
        if product is not None:
            targets = [a for a in record.products if a.product == product]
            if not targets:
                shown = [a.product for a in record.products if a.product != UNASSIGNED]
                raise InvalidInput(
                    f"{record.id} is not recorded for product {product!r} "
                    f"(its products: {', '.join(shown) or 'none'})"
                )
        else:
            targets = list(record.products)
        if release_id is not None and uow.releases.get(release_id) is None:
            raise InvalidInput(f"no release {release_id}")
        changes: list[dict[str, Any]] = []
        for analysis in targets:
            stored = rules.check_transition(analysis.status, status, justification=justification)
            changes.append({"product": analysis.product, "from": analysis.status, "to": status})
            analysis.status = status
            analysis.justification = stored
            analysis.updated_at = now
            if status == "fix_released":
                analysis.released_at = when
            elif status == "fix_deployed":
                analysis.deployed_at = when
                analysis.released_at = analysis.released_at or when
            elif status == "closed":
                analysis.closed_at = when
            if release_id is not None:
                analysis.fixing_release_id = release_id
        return _save_audit_view(
            ctx,
            uow,
            record,
            policy=policy,
            now=now,
            actor=actor,
            action="vuln.triage",
            details={
                "changes": changes,
                "justification": justification,
                "at": rfc3339(when),
                "release_id": release_id,
            },
        )


def override_severity(
    ctx: Context, vuln_id: str, *, severity_name: str | None, justification: str, actor: str
) -> dict[str, Any]:
    """Set (or with ``None`` clear) a severity override; a written justification is
    required either way, and the change is audited with the severity it replaces."""
    if severity_name is not None and severity_name not in rules.SEVERITY_ORDER:
        raise InvalidInput(
            f"unknown severity {severity_name!r} (known: {', '.join(rules.SEVERITY_ORDER)})"
        )
    if not justification or len(justification.strip()) < 10:
        raise InvalidInput("a severity override needs a written justification (10+ characters)")
    policy = in_force(ctx).policy
    now = ctx.clock()
    with ctx.uow() as uow:
        record = _load(uow, vuln_id)
        before = severity(record, policy)
        record.severity_override = severity_name
        record.override_justification = justification.strip() if severity_name else None
        return _save_audit_view(
            ctx,
            uow,
            record,
            policy=policy,
            now=now,
            actor=actor,
            action="vuln.override" if severity_name else "vuln.override.clear",
            details={
                "from": before,
                "to": severity(record, policy),
                "cvss_severity": cvss_severity(record, policy),
                "justification": justification.strip(),
            },
        )


def mark_exploited(
    ctx: Context, vuln_id: str, *, actor: str, at: datetime | None = None, severe: bool = False
) -> dict[str, Any]:
    """Record that the vulnerability is actively exploited (``severe``: that a severe
    incident affects the product's security, Art. 14(3)). ``at`` is when the manufacturer
    became aware, which starts the Art. 14 clocks; the policy's escalation applies."""
    policy = in_force(ctx).policy
    now = ctx.clock()
    when = _when(at, now, "awareness")
    with ctx.uow() as uow:
        record = _load(uow, vuln_id)
        if severe:
            if record.severe_incident_at is not None:
                raise Conflict(f"{record.id}: a severe incident is already recorded")
            record.severe_incident_at = when
        else:
            if record.exploited_at is not None:
                raise Conflict(f"{record.id} is already recorded as actively exploited")
            record.exploited_at = when
        return _save_audit_view(
            ctx,
            uow,
            record,
            policy=policy,
            now=now,
            actor=actor,
            action="vuln.incident" if severe else "vuln.exploited",
            details={"aware_at": rfc3339(when)},
        )


def record_upstream(
    ctx: Context,
    vuln_id: str,
    *,
    actor: str,
    component: str,
    reported_to: str,
    at: datetime | None = None,
    reference: str = "",
) -> dict[str, Any]:
    """Record that a vulnerability in a third-party component was reported to the person
    or body maintaining it (CRA Art. 13(6))."""
    if not component.strip() or not reported_to.strip():
        raise InvalidInput("name the component and whom it was reported to")
    policy = in_force(ctx).policy
    now = ctx.clock()
    when = _when(at, now, "a report upstream")
    with ctx.uow() as uow:
        record = _load(uow, vuln_id)
        record.upstream = {
            "component": component.strip(),
            "reported_to": reported_to.strip(),
            "reported_at": rfc3339(when),
            "reference": reference,
        }
        return _save_audit_view(
            ctx,
            uow,
            record,
            policy=policy,
            now=now,
            actor=actor,
            action="vuln.upstream",
            details=dict(record.upstream),
        )


# --- CRA Art. 14 reports ------------------------------------------------------------------------

_REPORT_TITLES = {
    "early_warning": "Early warning of an actively exploited vulnerability (CRA Art. 14(2)(a))",
    "notification": "Vulnerability notification (CRA Art. 14(2)(b))",
    "final_report": "Final report on an actively exploited vulnerability (CRA Art. 14(2)(c))",
    "incident_early_warning": "Early warning of a severe incident (CRA Art. 14(4)(a))",
    "incident_notification": "Incident notification (CRA Art. 14(4)(b))",
    "incident_final_report": "Final report on a severe incident (CRA Art. 14(4)(c))",
}


def draft_report(ctx: Context, vuln_id: str, kind: str) -> dict[str, Any]:
    """A draft of one Art. 14 report with the fields the Article asks for, filled from the
    register; fields patchgate cannot know are present and empty for the author."""
    if kind not in rules.ART14_KINDS:
        raise InvalidInput(f"unknown report {kind!r} (known: {', '.join(rules.ART14_KINDS)})")
    data = show(ctx, vuln_id)
    art14 = data.get("art14")
    if art14 is None or kind not in art14["reports"]:
        raise Conflict(
            f"{data['id']} has no {kind} clock: mark it exploited (or a severe incident) first"
        )
    policy = in_force(ctx).policy
    clock = art14["reports"][kind]
    products = [
        {
            "name": p["product"],
            "status": p["status"],
            "affected_versions": p["affected"],
            "fixing_release_id": p["fixing_release_id"],
            "exposed_devices": p["exposed_devices"],
        }
        for p in data["products"]
    ]
    report: dict[str, Any] = {
        "report": kind,
        "title": _REPORT_TITLES[kind],
        "manufacturer": {"name": policy.organisation, "contact": policy.contact.uris()},
        "vulnerability": {"id": data["id"], "aliases": data["aliases"], "title": data["title"]},
        "due_at": clock["due_at"],
        "member_states": art14["member_states"],
        "products": products,
    }
    if kind in ("early_warning", "incident_early_warning"):
        report["actively_exploited"] = data["exploited"]
        report["suspected_unlawful_or_malicious_act"] = None
    if kind in ("notification", "incident_notification"):
        report["general_nature"] = data["description"] or data["title"]
        report["severity"] = data["severity"]
        report["cvss_vector"] = data["cvss_vector"]
        report["corrective_measures_taken"] = [
            p for p in products if p["fixing_release_id"] is not None
        ]
        report["measures_users_can_take"] = ""
        report["sensitivity"] = ""
        if kind == "incident_notification":
            report["initial_assessment"] = ""
            report["indicators_of_compromise"] = []
    if kind in ("final_report", "incident_final_report"):
        report["description"] = data["description"] or data["title"]
        report["severity"] = data["severity"]
        report["score"] = data["score"]
        report["impact"] = ""
        report["security_update"] = [
            {"product": p["name"], "release_id": p["fixing_release_id"]}
            for p in products
            if p["fixing_release_id"] is not None
        ]
        if kind == "final_report":
            report["malicious_actor"] = ""
        else:
            report["threat_type_or_root_cause"] = ""
            report["mitigating_measures"] = ""
            report["cross_border_impact"] = ""
    return report


def report_markdown(report: Mapping[str, Any]) -> str:
    """The same draft as Markdown, one section per field."""
    lines = [f"# {report['title']}", ""]
    for key, value in report.items():
        if key in ("title",):
            continue
        heading = key.replace("_", " ").capitalize()
        lines.append(f"## {heading}")
        lines.append("")
        if isinstance(value, list):
            lines.extend(f"- {item}" for item in value) if value else lines.append("_none_")
        elif isinstance(value, dict):
            lines.extend(f"- **{k}**: {v}" for k, v in value.items())
        elif value in (None, ""):
            lines.append("_to be completed_")
        else:
            lines.append(str(value))
        lines.append("")
    return "\n".join(lines)


def submit_report(
    ctx: Context,
    vuln_id: str,
    kind: str,
    *,
    actor: str,
    at: datetime | None = None,
    reference: str = "",
) -> dict[str, Any]:
    """Record that an Art. 14 report was submitted (to the CSIRT coordinator / ENISA
    single reporting platform), storing the draft as it stood."""
    report = draft_report(ctx, vuln_id, kind)
    now = ctx.clock()
    when = _when(at, now, "a submission")
    with ctx.uow() as uow:
        record = _load(uow, vuln_id)
        uow.vulnerabilities.add_submission(
            Submission(record.id, kind, when, actor, reference, report)
        )
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="vuln.art14.submit",
            subject=f"vuln:{record.id}",
            details={"report": kind, "submitted_at": rfc3339(when), "reference": reference},
        )
        uow.commit()
    return show(ctx, vuln_id)


def reports_due(ctx: Context) -> list[dict[str, Any]]:
    """Every Art. 14 report not yet submitted whose clock runs, soonest first."""
    out: list[dict[str, Any]] = []
    for item in list_all(ctx):
        if not (item.get("art14") or {}).get("required"):
            continue
        for kind, clock in item["art14"]["reports"].items():
            if clock["state"] in ("due", "overdue"):
                out.append({"id": item["id"], "report": kind, **clock})
    out.sort(key=lambda r: r["due_at"])
    return out


# --- SLA report ---------------------------------------------------------------------------------


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least ``fraction`` at or below)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def sla_report(ctx: Context) -> dict[str, Any]:
    """Per severity: how many, median and p90 hours to release and to deploy a fix, and the
    share of settled (vulnerability, product) pairs that met their deadline."""
    policy = in_force(ctx).policy
    now = ctx.clock()
    rows: dict[str, dict[str, list[float]]] = {}
    outcome: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    with ctx.read_uow() as uow:
        for record in uow.vulnerabilities.list():
            if record.withdrawn_at is not None:
                continue
            facts = _facts(uow, record, policy, now)
            applied, due_at = deadline(record, policy)
            bucket = rows.setdefault(applied, {"release": [], "deploy": []})
            for analysis in record.products:
                if analysis.status in rules.SIDE_STATES:
                    continue
                counts[applied] = counts.get(applied, 0) + 1
                released = _released_at(analysis, facts.releases)
                if released is not None:
                    bucket["release"].append((released - record.aware_at).total_seconds() / 3600)
                # Time to deploy: when 95 % of the affected devices ran the fix (from
                # action events). Only where no device has run it through patchgate (no
                # such evidence at all) does the fix_deployed transition stand in.
                rollout = facts.rollout.get(analysis.product)
                if rollout is not None and rollout.ran_fix:
                    deployed = rollout.reached_at
                else:
                    deployed = analysis.deployed_at
                if deployed is not None:
                    bucket["deploy"].append((deployed - record.aware_at).total_seconds() / 3600)
                state = _pair_sla(record, analysis, due_at, facts)
                outcome.setdefault(applied, []).append(state)
    per: dict[str, Any] = {}
    for sev in rules.SEVERITY_ORDER[::-1]:
        if sev not in counts:
            continue
        states = outcome.get(sev, [])
        settled = [s for s in states if s in ("met", "missed")]
        failed = [s for s in states if s in ("missed", "overdue")]
        judged = len(settled) + len([s for s in states if s == "overdue"])
        release = rows[sev]["release"]
        deploy = rows[sev]["deploy"]
        per[sev] = {
            "count": counts[sev],
            "open": len([s for s in states if s not in ("met", "missed")]),
            "overdue": states.count("overdue"),
            "time_to_release_hours": {
                "median": statistics.median(release) if release else None,
                "p90": _percentile(release, 0.9),
                "n": len(release),
            },
            "time_to_deploy_hours": {
                "median": statistics.median(deploy) if deploy else None,
                "p90": _percentile(deploy, 0.9),
                "n": len(deploy),
            },
            "met": states.count("met"),
            "missed": len(failed),
            "share_met": (states.count("met") / judged) if judged else None,
        }
    return {"generated_at": rfc3339(now), "severities": per}
