"""The register as a paged, filtered table (docs/console.md, "Performance"): what the
console's vulnerability list, its dashboard and the compliance checklist read.

``list_vulnerabilities`` (views.py) builds every vulnerability's full view, with its
rollout and Art. 14 clocks, a few queries each: right for ``vuln list --json``, too dear for
a page read many times a minute. ``register_page`` reads the register's
columns it needs in two queries (the records, then every product analysis), derives each
row's severity, deadline and SLA state from the policy in force (the same rules as the full
view), filters and sorts, and only then counts the exposure of the rows on the page: the
fleet's census (one aggregate over the hardware/version index) and the page's fixing
releases (one query). So a page costs the same with 100 devices or a million, and grows
with the register only by the in-memory derivation of its rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from patchgate.domain import vulnerabilities as domain
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Policy
from patchgate.services.context import Context
from patchgate.services.policy import in_force
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


def _sort_key(sort: str) -> object:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    keys = {
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


def register_page(
    ctx: Context, where: RegisterFilter | None = None, *, offset: int = 0, limit: int = 50
) -> RegisterPage:
    """One page of the register as table rows, filtered and sorted (see the module)."""
    where = where or RegisterFilter()
    where.check()
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"offset is 0 or more and limit between 1 and {MAX_PAGE}")
    policy = in_force(ctx).policy
    now = ctx.clock()
    with ctx.read_uow() as uow:
        records = {r.id: r for r in uow.vulnerabilities.list_for_table()}
        rows = [_row(r, policy, now) for r in records.values()]
        states: dict[str, int] = {}
        for row in rows:
            if not row.withdrawn:
                states[row.sla_state] = states.get(row.sla_state, 0) + 1
        kept = [r for r in rows if where.keeps(r)]
        if where.sort == "exposure":  # every row's count is needed to order them
            kept = _with_exposure(uow, policy, kept, records)
        kept.sort(key=_sort_key(where.sort))  # type: ignore[arg-type]
        shown = kept[offset : offset + limit]
        if where.sort != "exposure":
            shown = _with_exposure(uow, policy, shown, records)
    return RegisterPage(tuple(shown), len(kept), offset, limit, states)


def register_rows(ctx: Context) -> list[RegisterRow]:
    """Every row of the register without exposure (the compliance checklist's outcomes)."""
    policy = in_force(ctx).policy
    now = ctx.clock()
    with ctx.read_uow() as uow:
        return [_row(r, policy, now) for r in uow.vulnerabilities.list_for_table()]
