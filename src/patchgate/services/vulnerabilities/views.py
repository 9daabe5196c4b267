"""Read models of the vulnerability register: frozen dataclasses, each built by one query
function in a read-only unit of work. Nothing here changes state.

- ``show``: one vulnerability with its deadline and SLA state, per-product analysis,
  exposure, fixing releases and rollout, and CRA Art. 14 clocks (``VulnerabilityView``);
- ``list_vulnerabilities``: a page of those, soonest deadline first (``VulnerabilityPage``);
- ``reports_due``: the Art. 14 reports whose clock runs (``DueReport``);
- ``sla_report``: time to release and to deploy per severity (``SlaReport``);
- ``vex_input``: the analysis of every vulnerability recorded for one product, which the
  CycloneDX and CSAF VEX documents are written from (``VexInput``).

Entrypoints render these (JSON, text, Markdown) with ``entrypoints/presenters``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from patchgate.domain import vulnerabilities as domain
from patchgate.domain.errors import InvalidInput, NotFound
from patchgate.domain.vulnerabilities import ScoreCandidate
from patchgate.services.context import Context
from patchgate.services.policy import in_force
from patchgate.services.vulnerabilities import facts as fx
from patchgate.services.vulnerabilities.rules import (
    MAX_NAME,
    UNASSIGNED,
    check_products,
    check_text,
    cvss_severity,
    deadline,
    member_states,
    severity,
)
from patchgate.services.vulnerability_ports import Component, UpstreamReport, VulnerabilityRecord

__all__ = [
    "Art14View",
    "DueReport",
    "DurationStats",
    "FixRollout",
    "ProductView",
    "ReportClock",
    "SeverityOverride",
    "SlaReport",
    "SlaRow",
    "VexEntry",
    "VexInput",
    "VulnerabilityPage",
    "VulnerabilityView",
    "build_view",
    "list_vulnerabilities",
    "reports_due",
    "show",
    "sla_report",
    "vex_input",
]


@dataclass(frozen=True)
class FixRollout:
    """How far a fix has reached the affected devices (all None without a fix)."""

    reached_at: datetime | None  # when 95 % of the affected devices ran it
    hours: float | None  # ``reached_at`` minus the awareness time
    affected_devices: int | None
    running_devices: int | None
    running_share: float | None


@dataclass(frozen=True)
class ProductView:
    """The analysis of one vulnerability for one product of the policy."""

    product: str
    status: str
    justification: str | None
    affected: tuple[str, ...]  # ``vers:`` ranges; none: every version before the fix
    fixing_release_id: int | None
    due_at: datetime | None
    sla_state: str
    released_at: datetime | None
    deployed_at: datetime | None
    exposed_devices: int | None  # None: the product's devices cannot be known
    fleet_devices: int | None
    # Share of the product's registered devices not on an affected version: what "95 %
    # of affected devices run the fix" is measured against.
    patched_share: float | None
    rollout: FixRollout


@dataclass(frozen=True)
class ReportClock:
    """One CRA Art. 14 report: when it is due, its state, when it was submitted."""

    kind: str
    due_at: datetime | None
    state: str  # waiting | due | overdue | submitted
    submitted_at: datetime | None


@dataclass(frozen=True)
class Art14View:
    """The CRA Art. 14 duties of an exploited vulnerability or a severe incident."""

    # Art. 14 concerns vulnerabilities contained in a product: one only known from a feed
    # (no product yet) or not affecting any product has clocks but no duty.
    required: bool
    member_states: tuple[str, ...]
    severe_incident_at: datetime | None
    reports: tuple[ReportClock, ...]

    def clock(self, kind: str) -> ReportClock | None:
        """The clock of report ``kind``, or None when it does not apply."""
        return next((c for c in self.reports if c.kind == kind), None)


@dataclass(frozen=True)
class SeverityOverride:
    severity: str
    justification: str | None


@dataclass(frozen=True)
class Described:
    """What a vulnerability is, as the register states it: its names, text and score. The
    register's view and a VEX entry both start with it (one list, one reading of the
    record: :func:`described`)."""

    id: str
    title: str
    description: str
    aliases: tuple[str, ...]
    cvss_vector: str | None
    cvss_version: str | None
    score: float | None


def described(record: VulnerabilityRecord) -> Described:
    """The ``Described`` part of a stored vulnerability."""
    return Described(
        id=record.id,
        title=record.title,
        description=record.description,
        aliases=tuple(record.aliases),
        cvss_vector=record.cvss_vector,
        cvss_version=record.cvss_version,
        score=record.score,
    )


@dataclass(frozen=True)
class VulnerabilityView(Described):
    """Everything the register knows and derives about one vulnerability."""

    score_source: str | None
    scores: tuple[ScoreCandidate, ...]
    cvss_severity: str  # from the score alone
    severity: str  # the override, else the score's band
    severity_override: SeverityOverride | None
    deadline_severity: str  # whose cadence applies (exploited escalation included)
    aware_at: datetime
    due_at: datetime | None
    sla_state: str  # the worst of its products'
    status: str  # the least advanced of its products'
    exploited_at: datetime | None
    products: tuple[ProductView, ...]
    exposed_devices: int
    exposure_per_product: Mapping[str, int | None]
    fix_95pct_at: datetime | None  # once every product with a fix reached 95 %
    time_to_95pct_hours: float | None
    components: tuple[Component, ...]
    upstream: UpstreamReport | None
    origin: str
    notes: tuple[str, ...]
    withdrawn_at: datetime | None
    created_at: datetime
    updated_at: datetime
    art14: Art14View | None

    @property
    def exploited(self) -> bool:
        return self.exploited_at is not None


@dataclass(frozen=True)
class VulnerabilityPage:
    """A page of the register, soonest deadline first."""

    items: tuple[VulnerabilityView, ...]
    total: int
    offset: int
    limit: int | None


@dataclass(frozen=True)
class DueReport:
    """An Art. 14 report whose clock runs and that is not submitted yet."""

    vulnerability_id: str
    clock: ReportClock


@dataclass(frozen=True)
class DurationStats:
    median: float | None
    p90: float | None  # nearest rank
    n: int


@dataclass(frozen=True)
class SlaRow:
    """The SLA figures of one severity (the deadline's severity)."""

    severity: str
    count: int
    open: int
    overdue: int
    time_to_release_hours: DurationStats
    time_to_deploy_hours: DurationStats
    met: int
    missed: int
    share_met: float | None


@dataclass(frozen=True)
class SlaReport:
    generated_at: datetime
    severities: tuple[SlaRow, ...]  # most severe first


@dataclass(frozen=True)
class VexEntry(Described):
    """The current analysis of one vulnerability for the VEX product."""

    score_provider: str  # who scored it (the organisation for its own assessment)
    cvss_severity: str
    exploited: bool
    status: str
    justification: str | None
    ranges: tuple[str, ...]
    fixing_release_ids: tuple[int, ...]  # not withdrawn
    updated_at: datetime


@dataclass(frozen=True)
class VexInput:
    product: str
    organisation: str
    generated_at: datetime
    entries: tuple[VexEntry, ...]


# --- building a view ------------------------------------------------------------------------


def _hours(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds() / 3600, 4)


def _share(exposed: int | None, fleet: int | None) -> float | None:
    if exposed is None or not fleet:
        return None
    return round(1 - exposed / fleet, 4)


def _rollout(record: VulnerabilityRecord, rollout: fx.Rollout | None) -> FixRollout:
    if rollout is None:
        return FixRollout(None, None, None, None, None)
    return FixRollout(
        reached_at=rollout.reached_at,
        hours=_hours(record.aware_at, rollout.reached_at),
        affected_devices=rollout.affected,
        running_devices=rollout.ran_fix,
        running_share=rollout.share,
    )


def _products(
    record: VulnerabilityRecord, facts: fx.Facts, due_at: datetime | None
) -> tuple[list[ProductView], list[str]]:
    """The shown products and the SLA state of every pair (unassigned included)."""
    products: list[ProductView] = []
    states: list[str] = []
    for analysis in record.products:
        state = fx.pair_sla(record, analysis, due_at, facts)
        states.append(state)
        if analysis.product == UNASSIGNED:
            continue
        exposed = facts.exposure.get(analysis.product)
        fleet = facts.fleet.get(analysis.product)
        products.append(
            ProductView(
                product=analysis.product,
                status=analysis.status,
                justification=analysis.justification,
                affected=tuple(analysis.ranges),
                fixing_release_id=fx.fix_shown(analysis, facts.releases),
                due_at=due_at,
                sla_state=state,
                released_at=fx.released_at(analysis, facts.releases),
                deployed_at=analysis.deployed_at,
                exposed_devices=exposed,
                fleet_devices=fleet,
                patched_share=_share(exposed, fleet),
                rollout=_rollout(record, facts.rollout.get(analysis.product)),
            )
        )
    return products, states


def _overall_fix(record: VulnerabilityRecord, facts: fx.Facts) -> datetime | None:
    """The latest product's 95 % moment, once every product with a fix has one."""
    reached = [
        facts.rollout[a.product].reached_at
        for a in record.products
        if a.product in facts.rollout and a.status not in domain.SIDE_STATES
    ]
    if not reached or any(t is None for t in reached):
        return None
    return max(t for t in reached if t is not None)


def _art14(record: VulnerabilityRecord, facts: fx.Facts) -> Art14View | None:
    if record.exploited_at is None and record.severe_incident_at is None:
        return None
    clocks = domain.art14_clocks(
        exploited_at=record.exploited_at,
        fix_available_at=fx.fix_available_at(record, facts.releases),
        severe_incident_at=record.severe_incident_at,
        submitted={s.kind: s.submitted_at for s in facts.submissions},
    )
    return Art14View(
        required=any(
            a.product != UNASSIGNED and a.status != "not_affected" for a in record.products
        ),
        member_states=member_states(record, facts.policy),
        severe_incident_at=record.severe_incident_at,
        reports=tuple(
            ReportClock(c.kind, c.due_at, c.state(facts.now), c.submitted_at) for c in clocks
        ),
    )


def build_view(record: VulnerabilityRecord, facts: fx.Facts) -> VulnerabilityView:
    """The view of ``record`` given what ``facts.gather`` read about it."""
    policy = facts.policy
    applied, due_at = deadline(record, policy)
    products, states = _products(record, facts, due_at)
    overall = _overall_fix(record, facts)
    override = (
        SeverityOverride(record.severity_override, record.override_justification)
        if record.severity_override
        else None
    )
    return VulnerabilityView(
        **vars(described(record)),
        score_source=record.score_source,
        scores=tuple(record.scores),
        cvss_severity=cvss_severity(record, policy),
        severity=severity(record, policy),
        severity_override=override,
        deadline_severity=applied,
        aware_at=record.aware_at,
        due_at=due_at,
        sla_state=domain.worst_sla_state(states),
        status=domain.least_advanced([a.status for a in record.products]),
        exploited_at=record.exploited_at,
        products=tuple(products),
        exposed_devices=sum(n for n in facts.exposure.values() if n is not None),
        exposure_per_product={k: v for k, v in facts.exposure.items() if k != UNASSIGNED},
        fix_95pct_at=overall,
        time_to_95pct_hours=_hours(record.aware_at, overall),
        components=tuple(record.components),
        upstream=record.upstream,
        origin=record.origin,
        notes=tuple(record.notes),
        withdrawn_at=record.withdrawn_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
        art14=_art14(record, facts),
    )


# --- queries ----------------------------------------------------------------------------------


def show(ctx: Context, vuln_id: str) -> VulnerabilityView:
    """One vulnerability by its ID or by one of its aliases (a GHSA record found by its
    CVE), or ``NotFound``."""
    check_text(vuln_id, "the vulnerability ID", limit=MAX_NAME)
    policy = in_force(ctx).policy
    with ctx.read_uow() as uow:
        record = uow.vulnerabilities.resolve(vuln_id)
        if record is None:
            raise NotFound(f"no vulnerability {vuln_id!r} in the register")
        return build_view(record, fx.gather(uow, record, policy, ctx.clock()))


def _all(ctx: Context) -> list[VulnerabilityView]:
    policy = in_force(ctx).policy
    now = ctx.clock()
    with ctx.read_uow() as uow:
        return [build_view(r, fx.gather(uow, r, policy, now)) for r in uow.vulnerabilities.list()]


def list_vulnerabilities(
    ctx: Context, *, overdue: bool = False, offset: int = 0, limit: int | None = None
) -> VulnerabilityPage:
    """The register, soonest deadline first (no deadline last, then by ID); ``overdue``
    keeps those whose deadline passed with a fix still not deployed. ``offset`` and
    ``limit`` cut one page of the ordered list; ``total`` counts them all."""
    if offset < 0 or (limit is not None and limit < 1):
        raise InvalidInput("offset is 0 or more and limit 1 or more")
    views = _all(ctx)
    if overdue:
        views = [v for v in views if v.sla_state == "overdue"]
    views.sort(key=lambda v: (v.due_at is None, v.due_at.timestamp() if v.due_at else 0, v.id))
    end = None if limit is None else offset + limit
    return VulnerabilityPage(tuple(views[offset:end]), len(views), offset, limit)


def reports_due(ctx: Context) -> tuple[DueReport, ...]:
    """Every Art. 14 report not yet submitted whose clock runs, soonest first."""
    out = [
        DueReport(view.id, clock)
        for view in _all(ctx)
        if view.art14 is not None and view.art14.required
        for clock in view.art14.reports
        if clock.state in ("due", "overdue") and clock.due_at is not None
    ]
    out.sort(key=lambda r: (r.clock.due_at, r.vulnerability_id))
    return tuple(out)


# --- SLA report ---------------------------------------------------------------------------------


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least ``fraction`` at or below)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def _stats(values: Sequence[float]) -> DurationStats:
    return DurationStats(
        median=statistics.median(values) if values else None,
        p90=_percentile(values, 0.9),
        n=len(values),
    )


@dataclass
class _Tally:
    release: list[float]
    deploy: list[float]
    states: list[str]


def _tally_record(record: VulnerabilityRecord, facts: fx.Facts, tally: _Tally) -> None:
    """Add the settled times and SLA states of a record's (non-side) products."""
    _applied, due_at = deadline(record, facts.policy)
    for analysis in record.products:
        if analysis.status in domain.SIDE_STATES:
            continue
        released = fx.released_at(analysis, facts.releases)
        if released is not None:
            tally.release.append((released - record.aware_at).total_seconds() / 3600)
        # Time to deploy: when 95 % of the affected devices ran the fix (from action
        # events). Only where no device has run it through patchgate (no such evidence at
        # all) does the fix_deployed transition stand in.
        rollout = facts.rollout.get(analysis.product)
        deployed = (
            rollout.reached_at if rollout is not None and rollout.ran_fix else analysis.deployed_at
        )
        if deployed is not None:
            tally.deploy.append((deployed - record.aware_at).total_seconds() / 3600)
        tally.states.append(fx.pair_sla(record, analysis, due_at, facts))


def _row(severity_name: str, tally: _Tally) -> SlaRow:
    states = tally.states
    settled = [s for s in states if s in ("met", "missed")]
    judged = len(settled) + states.count("overdue")
    return SlaRow(
        severity=severity_name,
        count=len(states),
        open=len([s for s in states if s not in ("met", "missed")]),
        overdue=states.count("overdue"),
        time_to_release_hours=_stats(tally.release),
        time_to_deploy_hours=_stats(tally.deploy),
        met=states.count("met"),
        missed=states.count("missed") + states.count("overdue"),
        share_met=(states.count("met") / judged) if judged else None,
    )


def sla_report(ctx: Context) -> SlaReport:
    """Per severity: how many, median and p90 hours to release and to deploy a fix, and the
    share of settled (vulnerability, product) pairs that met their deadline."""
    policy = in_force(ctx).policy
    now = ctx.clock()
    tallies: dict[str, _Tally] = {}
    with ctx.read_uow() as uow:
        for record in uow.vulnerabilities.list():
            if record.withdrawn_at is not None:
                continue
            applied, _due = deadline(record, policy)
            tally = tallies.setdefault(applied, _Tally([], [], []))
            _tally_record(record, fx.gather(uow, record, policy, now), tally)
    rows = tuple(
        _row(sev, tallies[sev])
        for sev in domain.SEVERITY_ORDER[::-1]
        if sev in tallies and tallies[sev].states
    )
    return SlaReport(generated_at=now, severities=rows)


# --- VEX ------------------------------------------------------------------------------------------


def vex_input(ctx: Context, product: str) -> VexInput:
    """The current analysis of every (not withdrawn) vulnerability recorded for
    ``product``, by ID: what a VEX document for the product states."""
    policy = in_force(ctx).policy
    check_products(policy, [product])
    entries: list[VexEntry] = []
    with ctx.read_uow() as uow:
        for record in uow.vulnerabilities.list():
            analysis = record.product(product)
            if analysis is None or record.withdrawn_at is not None:
                continue
            releases = uow.vulnerabilities.fixing_releases(record.id, record.aliases)
            entries.append(
                VexEntry(
                    **vars(described(record)),
                    score_provider=(record.score_source or "").partition(":")[2]
                    or policy.organisation,
                    cvss_severity=cvss_severity(record, policy),
                    exploited=record.exploited_at is not None,
                    status=analysis.status,
                    justification=analysis.justification,
                    ranges=tuple(analysis.ranges),
                    fixing_release_ids=tuple(r.release_id for r in fx.fixing(analysis, releases)),
                    updated_at=analysis.updated_at or record.updated_at,
                )
            )
    return VexInput(product, policy.organisation, ctx.clock(), tuple(entries))
