"""The six checks of the patch management guide's compliance checklist, judged from plain
facts (pure, standard library only). Each gives ``pass``, ``warn`` or ``fail``, a one-line
summary and the evidence it rests on (docs/compliance.md explains each rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from patchgate.domain.policy import SEVERITIES, Month

PASS, WARN, FAIL = "pass", "warn", "fail"
ITEMS = (
    "public_policy",
    "defined_cadence",
    "phased_rollouts",
    "atomic_updates",
    "eol_communication",
    "process_documentation",
)
YEAR = timedelta(days=365)
TECHFILE_MAX_AGE = timedelta(days=90)
MIN_STAGES = 3
MIN_MET_SHARE = 0.5


@dataclass(frozen=True)
class Evidence:
    label: str
    url: str | None = None


@dataclass(frozen=True)
class Item:
    id: str
    state: str
    summary: str
    evidence: tuple[Evidence, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "state": self.state,
            "summary": self.summary,
            "evidence": [{"label": e.label, "url": e.url} for e in self.evidence],
        }


def public_policy(
    *, contacts: int, products: int, disclosure: bool, file_in_force: bool | None, base: str
) -> Item:
    """Pass: the published policy is the policy file the operator keeps (``policy.toml``),
    it names a security contact (security.txt needs one), products and a disclosure
    statement; warn: products or the disclosure statement are missing; fail: no contact,
    or the policy file differs from the published policy (it was edited but not applied)."""
    evidence = (
        Evidence("Published policy", f"{base}/policy"),
        Evidence("security.txt", f"{base}/.well-known/security.txt"),
    )
    if contacts == 0:
        return Item(ITEMS[0], FAIL, "the policy names no security contact", evidence)
    if file_in_force is False:
        return Item(
            ITEMS[0], FAIL, "policy.toml differs from the published policy (not applied)", evidence
        )
    missing = [w for w, ok in (("products", products > 0), ("disclosure", disclosure)) if not ok]
    if missing:
        return Item(ITEMS[0], WARN, f"the published policy lacks {' and '.join(missing)}", evidence)
    return Item(ITEMS[0], PASS, "the policy in force and security.txt are published", evidence)


@dataclass(frozen=True)
class Outcome:
    """A vulnerability whose deadline fell in the period: met, missed or overdue."""

    vuln_id: str
    sla_state: str


def defined_cadence(*, severities: Sequence[str], outcomes: Sequence[Outcome], base: str) -> Item:
    """Pass: a deadline for each of the four severities, and every vulnerability due in the
    last 12 months fixed in time; warn: some were late; fail: fewer than half were in time,
    or a severity has no deadline."""
    evidence = [Evidence("Patch cadence", f"{base}/policy#cadence")]
    missing = [s for s in SEVERITIES if s not in severities]
    if missing:
        return Item(ITEMS[1], FAIL, f"no deadline for {', '.join(missing)}", tuple(evidence))
    judged = [o for o in outcomes if o.sla_state in ("met", "missed", "overdue")]
    late = [o for o in judged if o.sla_state != "met"]
    evidence += [Evidence(f"{o.vuln_id}: {o.sla_state}") for o in late]
    if not judged:
        return Item(ITEMS[1], PASS, "deadlines set; none fell due in 12 months", tuple(evidence))
    share = (len(judged) - len(late)) / len(judged)
    summary = f"{share:.0%} of {len(judged)} vulnerabilities fixed within their deadline"
    state = PASS if not late else WARN if share >= MIN_MET_SHARE else FAIL
    return Item(ITEMS[1], state, summary, tuple(evidence))


@dataclass(frozen=True)
class Rollout:
    """A campaign of the period: its stages, and how many of them (but the last) have a
    gate."""

    campaign_id: int
    stages: int
    gated_stages: int


def phased_rollouts(*, rollouts: Sequence[Rollout]) -> Item:
    """Pass: every campaign of the last 12 months had ≥ 3 stages, each but the last gated;
    warn: some did not; fail: no release went out through a campaign."""
    if not rollouts:
        return Item(ITEMS[2], FAIL, "no phased rollout in the last 12 months")
    weak = [r for r in rollouts if r.stages < MIN_STAGES or r.gated_stages < r.stages - 1]
    evidence = tuple(
        Evidence(f"campaign {r.campaign_id}: {r.stages} stages, {r.gated_stages} gated")
        for r in weak or rollouts
    )
    if weak:
        names = ", ".join(str(r.campaign_id) for r in weak)
        return Item(ITEMS[2], WARN, f"campaigns without ≥ 3 gated stages: {names}", evidence)
    return Item(ITEMS[2], PASS, f"{len(rollouts)} campaigns, all phased and gated", evidence)


@dataclass(frozen=True)
class Fleet:
    product: str
    devices: int
    ab_devices: int


def atomic_updates(*, fleets: Sequence[Fleet]) -> Item:
    """Pass: every device reports an A/B scheme; warn: some do, or there are no devices;
    fail: devices exist and none reports one."""
    evidence = tuple(
        Evidence(f"{f.product}: {f.ab_devices} of {f.devices} devices report A/B") for f in fleets
    )
    total = sum(f.devices for f in fleets)
    ab = sum(f.ab_devices for f in fleets)
    if total == 0:
        return Item(ITEMS[3], WARN, "no devices registered yet", evidence)
    summary = f"{ab / total:.0%} of {total} devices report an A/B update scheme"
    if ab == 0:
        return Item(ITEMS[3], FAIL, summary, evidence)
    return Item(ITEMS[3], PASS if ab == total else WARN, summary, evidence)


@dataclass(frozen=True)
class Support:
    product: str
    support_end: datetime  # the first instant after support ends
    on_sale: bool
    notices_due: tuple[str, ...] = ()
    notices_sent: tuple[str, ...] = field(default=())


def eol_communication(*, products: Sequence[Support], now: datetime, base: str) -> Item:
    """Pass: every product states its end of support on its page and every notice due was
    sent; warn: a notice is due and unsent; fail: no product, or one still on sale past its
    end of support."""
    evidence = tuple(
        Evidence(f"{p.product} support statement", p_url(base, p.product)) for p in products
    )
    if not products:
        return Item(ITEMS[4], FAIL, "the policy states no product and support period", evidence)
    expired = [p.product for p in products if p.on_sale and p.support_end <= now]
    if expired:
        return Item(ITEMS[4], FAIL, f"on sale past end of support: {', '.join(expired)}", evidence)
    unsent = [
        f"{p.product} ({n})" for p in products for n in p.notices_due if n not in p.notices_sent
    ]
    if unsent:
        return Item(
            ITEMS[4], WARN, f"end-of-support notices not sent: {', '.join(unsent)}", evidence
        )
    return Item(ITEMS[4], PASS, f"support period stated for {len(products)} products", evidence)


def p_url(base: str, product: str) -> str:
    """The public support statement page of a product."""
    return f"{base}/products/{quote(product, safe='')}"


def process_documentation(
    *, exported_at: datetime | None, policy_applied_at: datetime, now: datetime
) -> Item:
    """Pass: the technical file was exported within 90 days and the policy has not changed
    since; warn: older, or the policy changed since; fail: never exported."""
    if exported_at is None:
        return Item(ITEMS[5], FAIL, "the technical file was never exported")
    evidence = (Evidence(f"technical file exported {exported_at:%Y-%m-%d}"),)
    if policy_applied_at > exported_at:
        return Item(ITEMS[5], WARN, "the policy changed after the last technical file", evidence)
    if now - exported_at > TECHFILE_MAX_AGE:
        return Item(ITEMS[5], WARN, "the technical file is older than 90 days", evidence)
    return Item(ITEMS[5], PASS, "technical file exported in the last 90 days", evidence)


# --- end-of-support notices (CRA Art. 13(8), (19)) -------------------------------------------

NOTICES = (("12 months", 12), ("6 months", 6), ("1 month", 1), ("end of support", 0))


def _month_start(year: int, month: int) -> datetime:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def support_ends_at(end: Month) -> datetime:
    """The first instant without support: support runs to the end of its stated month."""
    return _month_start(end.year, end.month + 1)


def notice_times(end: Month) -> list[tuple[str, datetime]]:
    """When each notice falls due: 12, 6 and 1 months before the end, and on its last day."""
    out = []
    for name, months in NOTICES:
        if months:
            out.append((name, _month_start(end.year, end.month + 1 - months)))
        else:
            last = end.last_day()
            out.append((name, datetime(last.year, last.month, last.day, tzinfo=UTC)))
    return out


def notice_due(end: Month, now: datetime) -> str | None:
    """The latest notice whose time has come (an earlier one it supersedes is not sent
    late), or None before the first."""
    due = [name for name, at in notice_times(end) if at <= now]
    return due[-1] if due else None


# --- update retention (CRA Art. 13(9)) -------------------------------------------------------

RETENTION_YEARS = 10


def retained_until(released_at: datetime, support_end: Month | None) -> datetime:
    """How long the artifacts of a release offered to devices must stay available: ten
    years after the release or until the end of the support period, whichever is later."""
    try:
        ten_years = released_at.replace(year=released_at.year + RETENTION_YEARS)
    except ValueError:  # 29 February
        ten_years = released_at.replace(year=released_at.year + RETENTION_YEARS, day=28)
    if support_end is None:
        return ten_years
    return max(ten_years, support_ends_at(support_end))
