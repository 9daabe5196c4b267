"""The register as a paged, filtered table (docs/console.md, "Performance"): what the
console's vulnerability list, its dashboard and the compliance checklist read.

``list_vulnerabilities`` (views.py) builds every vulnerability's full view, with its
rollout and Art. 14 clocks, a few queries each: right for ``vuln list --json``, too dear for
a page read many times a minute. ``register_page`` works from the register's derived rows
(severity, deadline, SLA state, status, products), which this process keeps (``_Kept``)
for as long as three things stand: the register's version (a counter every write to the
register raises in its own transaction), the policy in force, and the SLA states (the
rows also keep the first moment one of them changes with time: a window's due-soon part
opening or its deadline passing). A page then reads the version (one row), filters, sorts
and pages the kept rows, and counts the exposure of the rows on the page only: the fleet's
census (one aggregate over the hardware/version index) and the page's fixing releases (one
query). So a page costs the same with 100 devices or a million, and the register is read
again (two queries, the records and every product analysis) only after it changed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from patchgate.domain import vulnerabilities as domain
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Policy
from patchgate.services.context import Context
from patchgate.services.policy import PolicyInForce, in_force
from patchgate.services.unit_of_work import UnitOfWork
from patchgate.services.vulnerabilities import facts as fx
from patchgate.services.vulnerabilities.rules import UNASSIGNED, deadline, severity
from patchgate.services.vulnerability_ports import FixingRelease, VulnerabilityRecord

SORTS = ("due", "score", "severity", "exposure", "id")
SEVERITIES = ("critical", "high", "medium", "low", "none")
OPEN_STATES = frozenset({"on_track", "due_soon", "overdue"})
URGENT_STATES = frozenset({"due_soon", "overdue"})
MAX_PAGE = 500


@dataclass(frozen=True)
class RegisterRow:
    """One vulnerability as a row of the register's table."""

    id: str
    title: str
    score: float | None
    severity: str
    sla_state: str
    status: str
    due_at: datetime | None
    exploited: bool
    withdrawn: bool
    products: tuple[str, ...]
    # Devices on an affected version (None: not counted, or no product's devices known).
    exposed_devices: int | None = None


@dataclass(frozen=True)
class RegisterFilter:
    """What the table shows: each field narrows it; ``sort`` orders it."""

    severity: str | None = None
    state: str | None = None
    product: str | None = None
    overdue: bool = False
    open_only: bool = False
    urgent: bool = False  # overdue or due soon
    sort: str = "due"

    def check(self) -> None:
        if self.sort not in SORTS:
            raise InvalidInput(f"unknown sort {self.sort!r} (known: {', '.join(SORTS)})")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise InvalidInput(
                f"unknown severity {self.severity!r} (known: {', '.join(SEVERITIES)})"
            )
        if self.state is not None and self.state not in domain.SLA_SEVERITY:
            known = ", ".join(domain.SLA_SEVERITY)
            raise InvalidInput(f"unknown SLA state {self.state!r} (known: {known})")

    def keeps(self, row: RegisterRow) -> bool:
        return (
            (self.severity is None or row.severity == self.severity)
            and (self.state is None or row.sla_state == self.state)
            and (self.product is None or self.product in row.products)
            and (not self.overdue or row.sla_state == "overdue")
            and (not self.open_only or row.sla_state in OPEN_STATES)
            and (not self.urgent or row.sla_state in URGENT_STATES)
        )


@dataclass(frozen=True)
class RegisterPage:
    rows: tuple[RegisterRow, ...]
    total: int  # rows that match the filter
    offset: int
    limit: int
    states: Mapping[str, int]  # the whole register (withdrawn aside) by SLA state

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.rows)
        return end if end < self.total else None


def _row(record: VulnerabilityRecord, policy: Policy, now: datetime) -> RegisterRow:
    _applied, due_at = deadline(record, policy)
    states = [
        domain.sla_state(
            now=now,
            aware_at=record.aware_at,
            due_at=due_at,
            resolved_at=fx.resolved_at(a),
            due_soon_fraction=policy.due_soon_fraction,
            applicable=a.status not in domain.SIDE_STATES,
        )
        for a in record.products
    ]
    return RegisterRow(
        id=record.id,
        title=record.title,
        score=record.score,
        severity=severity(record, policy),
        sla_state=domain.worst_sla_state(states),
        status=domain.least_advanced([a.status for a in record.products]),
        due_at=due_at,
        exploited=record.exploited_at is not None,
        withdrawn=record.withdrawn_at is not None,
        products=tuple(a.product for a in record.products if a.product != UNASSIGNED),
    )


def _exposure(
    record: VulnerabilityRecord,
    policy: Policy,
    releases: Sequence[FixingRelease],
    census: Mapping[tuple[str | None, str | None], int],
) -> int | None:
    """Devices on an affected version, over the products whose devices can be known: the
    rule of ``facts.exposure``, counted from the census instead of a query per product."""
    total: int | None = None
    for analysis in record.products:
        product = policy.product(analysis.product)
        if analysis.product == UNASSIGNED or product is None or not product.hardware:
            continue
        rng = fx.affected_range(analysis, releases)
        exposed = 0
        if rng is not None:
            exposed = sum(
                n
                for (hardware, version), n in census.items()
                if hardware in product.hardware and (rng.everything or rng.contains(version))
            )
        total = (total or 0) + exposed
    return total


def _sort_key(sort: str) -> Callable[[RegisterRow], Any]:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    keys: dict[str, Callable[[RegisterRow], Any]] = {
        "due": lambda r: (r.due_at is None, r.due_at.timestamp() if r.due_at else 0.0, r.id),
        "score": lambda r: (-(r.score or 0.0), r.id),
        "severity": lambda r: (rank.get(r.severity, 9), -(r.score or 0.0), r.id),
        "exposure": lambda r: (-(r.exposed_devices or 0), r.id),
        "id": lambda r: r.id,
    }
    return keys[sort]


def _with_exposure(
    uow: UnitOfWork,
    policy: Policy,
    rows: Sequence[RegisterRow],
    records: Mapping[str, VulnerabilityRecord],
) -> list[RegisterRow]:
    census = uow.devices.census()
    names = [n for r in rows for n in (r.id, *records[r.id].aliases)]
    fixes = uow.vulnerabilities.fixing_releases_of(names)
    out = []
    for row in rows:
        record = records[row.id]
        found = {
            f.release_id: f for n in (record.id, *record.aliases) for f in fixes.get(n.upper(), ())
        }
        exposed = _exposure(record, policy, list(found.values()), census)
        out.append(replace(row, exposed_devices=exposed))
    return out


def _changes_at(record: VulnerabilityRecord, policy: Policy, now: datetime) -> datetime | None:
    """The first moment after ``now`` at which a product's SLA state of ``record`` changes
    by time alone (``domain.sla_state``: due soon from ``due_at - window * fraction`` on,
    overdue after ``due_at``), or None when none will."""
    _applied, due_at = deadline(record, policy)
    if due_at is None:
        return None
    window = due_at - record.aware_at
    soon = due_at - window * policy.due_soon_fraction
    moments = [
        moment
        for a in record.products
        if a.status not in domain.SIDE_STATES and fx.resolved_at(a) is None
        for moment in (soon, due_at)
        if moment >= now
    ]
    return min(moments, default=None)


@dataclass
class _Derived:
    """The register's rows as derived at ``built_at``; good until the register's version or
    the policy in force changes, or until ``until`` (a row's SLA state changes then)."""

    key: tuple[int, int, str]  # register version, policy version, policy digest
    built_at: datetime
    until: datetime | None
    records: Mapping[str, VulnerabilityRecord]
    rows: tuple[RegisterRow, ...]
    states: Mapping[str, int]  # withdrawn rows aside
    sorted_by: dict[str, list[RegisterRow]] = field(default_factory=dict)

    def good(self, key: tuple[int, int, str], now: datetime) -> bool:
        return key == self.key and self.built_at <= now and (self.until is None or now < self.until)

    def ordered(self, sort: str) -> list[RegisterRow]:
        """Every row in ``sort`` order (not ``exposure``, which counts devices per page)."""
        found = self.sorted_by.get(sort)
        if found is None:
            found = sorted(self.rows, key=_sort_key(sort))
            self.sorted_by[sort] = found
        return found


def _derive(uow: UnitOfWork, key: tuple[int, int, str], policy: Policy, now: datetime) -> _Derived:
    records = {r.id: r for r in uow.vulnerabilities.list_for_table()}
    rows = tuple(_row(r, policy, now) for r in records.values())
    states: dict[str, int] = {}
    for row in rows:
        if not row.withdrawn:
            states[row.sla_state] = states.get(row.sla_state, 0) + 1
    moments = [m for r in records.values() if (m := _changes_at(r, policy, now)) is not None]
    return _Derived(key, now, min(moments, default=None), records, rows, states)


class _Kept:
    """The derived rows this process keeps for one context (its database): rebuilt once,
    under a lock, however many requests find them stale at once."""

    def __init__(self, ctx: Context) -> None:
        self.owner: Callable[[], Context | None] = weakref.ref(ctx)
        self.lock = threading.Lock()
        self.derived: _Derived | None = None

    def get(self, uow: UnitOfWork, in_force: PolicyInForce, now: datetime) -> _Derived:
        # The version is read before the rows: a write committed in between makes the next
        # read rebuild again, never keeps rows older than their version.
        key = (uow.vulnerabilities.version(), in_force.version_id, in_force.sha256)
        found = self.derived
        if found is not None and found.good(key, now):
            return found
        with self.lock:
            found = self.derived
            if found is None or not found.good(key, now):
                found = _derive(uow, key, in_force.policy, now)
                self.derived = found
            return found


_kept: dict[int, _Kept] = {}
_kept_lock = threading.Lock()


def _kept_for(ctx: Context) -> _Kept:
    kept = _kept.get(id(ctx))
    if kept is None or kept.owner() is not ctx:  # an id is reused once its context is gone
        with _kept_lock:
            kept = _kept.get(id(ctx))
            if kept is None or kept.owner() is not ctx:
                for gone in [k for k, v in _kept.items() if v.owner() is None]:
                    del _kept[gone]
                kept = _kept[id(ctx)] = _Kept(ctx)
    return kept


def register_page(
    ctx: Context, where: RegisterFilter | None = None, *, offset: int = 0, limit: int = 50
) -> RegisterPage:
    """One page of the register as table rows, filtered and sorted (see the module)."""
    where = where or RegisterFilter()
    where.check()
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"offset is 0 or more and limit between 1 and {MAX_PAGE}")
    current = in_force(ctx)
    policy = current.policy
    now = ctx.clock()
    with ctx.read_uow() as uow:
        derived = _kept_for(ctx).get(uow, current, now)
        records = derived.records
        if where.sort == "exposure":  # every row's count is needed to order them
            kept = [r for r in derived.rows if where.keeps(r)]
            kept = _with_exposure(uow, policy, kept, records)
            kept.sort(key=_sort_key(where.sort))
            shown = kept[offset : offset + limit]
        else:
            kept = [r for r in derived.ordered(where.sort) if where.keeps(r)]
            shown = _with_exposure(uow, policy, kept[offset : offset + limit], records)
    return RegisterPage(tuple(shown), len(kept), offset, limit, dict(derived.states))


def register_rows(ctx: Context) -> list[RegisterRow]:
    """Every row of the register without exposure (the compliance checklist's outcomes)."""
    current = in_force(ctx)
    now = ctx.clock()
    with ctx.read_uow() as uow:
        return list(_kept_for(ctx).get(uow, current, now).rows)
