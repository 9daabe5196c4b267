"""Notices to people: which events deserve one, what it says, and when to retry (pure).

A notice is derived from state, never from a code path that happened to run: a campaign
*is* halted, a vulnerability *is* overdue, a product's end of support *is* six months away.
Each notice has a key naming its event (``campaign_halted:7:2026-11-02T10:00:00Z``), and
the outbox keeps one notice per key, so deriving the same state again after a restart sends
nothing twice, and a state that arose while the server was down is still noticed
(docs/notifications.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from patchgate.domain import checklist
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Month

__all__ = [
    "CampaignFacts",
    "Kind",
    "Notice",
    "ProductFacts",
    "ReportClock",
    "Routes",
    "VulnerabilityFacts",
    "derive",
    "next_attempt",
    "parse_routes",
    "webhook_payload",
]


class Kind(StrEnum):
    """The events people are told about (also the names used in routing)."""

    VULN_DUE_SOON = "vuln_due_soon"
    VULN_OVERDUE = "vuln_overdue"
    ART14_DUE = "art14_due"
    ART14_OVERDUE = "art14_overdue"
    CAMPAIGN_HALTED = "campaign_halted"
    STAGE_AWAITING_APPROVAL = "stage_awaiting_approval"
    CAMPAIGN_DEADLINE_AT_RISK = "campaign_deadline_at_risk"
    CAMPAIGN_COMPLETED = "campaign_completed"
    END_OF_SUPPORT = "end_of_support"


# The ``event`` field of a webhook's JSON, per kind.
EVENTS: Mapping[Kind, str] = {
    Kind.VULN_DUE_SOON: "vulnerability.due_soon",
    Kind.VULN_OVERDUE: "vulnerability.overdue",
    Kind.ART14_DUE: "art14.report_due",
    Kind.ART14_OVERDUE: "art14.report_overdue",
    Kind.CAMPAIGN_HALTED: "campaign.halted",
    Kind.STAGE_AWAITING_APPROVAL: "campaign.awaiting_approval",
    Kind.CAMPAIGN_DEADLINE_AT_RISK: "campaign.deadline_at_risk",
    Kind.CAMPAIGN_COMPLETED: "campaign.completed",
    Kind.END_OF_SUPPORT: "support.ending",
}


def webhook_payload(
    kind: str, key: str, subject: str, link: str, at: datetime, facts: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON a webhook receives: ``event``, the notice's key, subject, link and time,
    and the facts of the event (``campaign_id``, ``reason``…)."""
    return {
        **facts,
        # A notice may name its event more precisely than its kind ("support.ended").
        "event": facts.get("event") or EVENTS.get(Kind(kind), kind),
        "key": key,
        "subject": subject,
        "link": link,
        "at": rfc3339(at),
    }


# A vulnerability "due soon" is due within this long.
DUE_SOON = timedelta(days=1)


@dataclass(frozen=True)
class Notice:
    """One message about one event. ``link`` is a path under the server's public URL."""

    key: str
    kind: Kind
    subject: str
    body: str
    link: str
    at: datetime
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportClock:
    """One CRA Art. 14 report of an actively exploited vulnerability."""

    kind: str  # early_warning | notification | final_report
    due_at: datetime | None
    submitted: bool


@dataclass(frozen=True)
class VulnerabilityFacts:
    id: str
    title: str
    severity: str
    due_at: datetime | None
    resolved: bool
    reports: Sequence[ReportClock] = ()


@dataclass(frozen=True)
class CampaignFacts:
    id: int
    product: str
    release: str
    state: str
    stage_index: int
    stage_name: str
    halted_at: datetime | None = None
    halt_reason: str | None = None
    last_gate: Mapping[str, Any] | None = None
    awaiting_approval: bool = False
    deadline_at: datetime | None = None
    deadline_at_risk: bool = False
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ProductFacts:
    name: str
    support_end: Month


_REPORT_NAMES = {
    "early_warning": "early warning (24 h)",
    "notification": "vulnerability notification (72 h)",
    "final_report": "final report (14 days after a fix)",
}


def _when(at: datetime | None) -> str:
    return rfc3339(at) or "no date"


def _vulnerability(v: VulnerabilityFacts, now: datetime) -> Iterable[Notice]:
    link = f"/console/vulnerabilities/{v.id}"
    facts = {"vulnerability_id": v.id, "severity": v.severity, "due_at": rfc3339(v.due_at)}
    if not v.resolved and v.due_at is not None:
        if now > v.due_at:
            yield Notice(
                f"{Kind.VULN_OVERDUE}:{v.id}:{rfc3339(v.due_at)}",
                Kind.VULN_OVERDUE,
                f"[patchgate] OVERDUE: {v.id} ({v.severity}) was due {_when(v.due_at)}",
                f'{v.id} "{v.title}" ({v.severity}) passed its patch deadline of '
                f"{_when(v.due_at)} without a deployed fix.\n\nRecord the fix or the "
                "decision (triage) in patchgate; the overdue state stays in the SLA report.",
                link,
                v.due_at,
                facts,
            )
        elif v.due_at - now <= DUE_SOON:
            yield Notice(
                f"{Kind.VULN_DUE_SOON}:{v.id}:{rfc3339(v.due_at)}",
                Kind.VULN_DUE_SOON,
                f"[patchgate] Due within a day: {v.id} ({v.severity}) at {_when(v.due_at)}",
                f'{v.id} "{v.title}" ({v.severity}) is due {_when(v.due_at)}, within a day.\n\n'
                "Check that a fixing release is rolling out fast enough to meet it.",
                link,
                v.due_at - DUE_SOON,
                facts,
            )
    for clock in v.reports:
        if clock.submitted or clock.due_at is None:
            continue
        name = _REPORT_NAMES.get(clock.kind, clock.kind)
        report = {**facts, "report": clock.kind, "report_due_at": rfc3339(clock.due_at)}
        overdue = now > clock.due_at
        kind = Kind.ART14_OVERDUE if overdue else Kind.ART14_DUE
        yield Notice(
            f"{kind}:{v.id}:{clock.kind}",
            kind,
            f"[patchgate] {'OVERDUE' if overdue else 'Due'}: CRA Art. 14 {name} for {v.id}, "
            f"{_when(clock.due_at)}",
            f'{v.id} "{v.title}" is actively exploited. Its CRA Art. 14 {name} is '
            f"{'overdue since' if overdue else 'due'} {_when(clock.due_at)}.\n\n"
            f"patchgate drafts it: patchgate vuln exploited {v.id} shows the drafts; record "
            "the submission once sent to the CSIRT and ENISA.",
            link,
            clock.due_at if overdue else now,
            report,
        )


def _campaign(c: CampaignFacts, now: datetime) -> Iterable[Notice]:
    link = f"/console/campaigns/{c.id}"
    facts: dict[str, Any] = {
        "campaign_id": c.id,
        "product": c.product,
        "release": c.release,
        "stage": c.stage_name,
    }
    label = f"campaign {c.id} ({c.product} {c.release})"
    if c.halted_at is not None and c.state in ("halted", "reverting"):
        yield Notice(
            f"{Kind.CAMPAIGN_HALTED}:{c.id}:{rfc3339(c.halted_at)}",
            Kind.CAMPAIGN_HALTED,
            f"[patchgate] HALTED: {label} at stage {c.stage_name}",
            f"{label.capitalize()} halted at stage {c.stage_name}: "
            f"{c.halt_reason or 'no reason given'}.\n\n"
            "No device is offered its release any more and open actions are cancelled. "
            f"Decide between revert and a fixed release: patchgate campaign status {c.id}.",
            link,
            c.halted_at,
            {**facts, "reason": c.halt_reason or "", "gate": dict(c.last_gate or {})},
        )
    if c.state == "running" and c.awaiting_approval:
        yield Notice(
            f"{Kind.STAGE_AWAITING_APPROVAL}:{c.id}:{c.stage_index}",
            Kind.STAGE_AWAITING_APPROVAL,
            f"[patchgate] Approval needed: {label}, stage {c.stage_name}",
            f"The gates of stage {c.stage_name} of {label} passed; the next stage waits for "
            f"your approval: patchgate campaign approve {c.id}.",
            link,
            now,
            facts,
        )
    if c.state == "running" and c.deadline_at_risk and c.deadline_at is not None:
        yield Notice(
            f"{Kind.CAMPAIGN_DEADLINE_AT_RISK}:{c.id}:{rfc3339(c.deadline_at)}",
            Kind.CAMPAIGN_DEADLINE_AT_RISK,
            f"[patchgate] Deadline at risk: {label} due {_when(c.deadline_at)}",
            f"At its observed pace {label} will not reach its last stage before the deadline "
            f"of the vulnerabilities it fixes ({_when(c.deadline_at)}).\n\nShorten soaks, "
            "approve waiting stages, or raise the rate.",
            link,
            c.deadline_at,
            {**facts, "deadline_at": rfc3339(c.deadline_at)},
        )
    if c.state == "completed":
        yield Notice(
            f"{Kind.CAMPAIGN_COMPLETED}:{c.id}",
            Kind.CAMPAIGN_COMPLETED,
            f"[patchgate] Completed: {label}",
            f"{label.capitalize()} completed; its security floor is raised.",
            link,
            c.finished_at or now,
            facts,
        )


def _end_of_support(p: ProductFacts, now: datetime) -> Iterable[Notice]:
    # The thresholds are the compliance checklist's (domain.checklist.NOTICES): only the
    # latest one reached, so a product added six months before its end gets the six-month
    # notice, not a late twelve-month one as well.
    due = checklist.notice_due(p.support_end, now)
    if due is None:
        return
    ended = due == "end of support"
    last_day = p.support_end.last_day().isoformat()
    when = "today" if ended else f"in {due}"
    yield Notice(
        f"{Kind.END_OF_SUPPORT}:{p.name}:{p.support_end}:{due}",
        Kind.END_OF_SUPPORT,
        f"[patchgate] End of support {when}: {p.name} on {last_day}",
        f"The support period of {p.name} ends on {last_day} ({when}). "
        "After it, no security updates are promised (CRA Art. 13(8)); tell its users "
        "(CRA Art. 13(19)) and keep its updates available (Art. 13(9)).",
        f"/products/{p.name}",
        now,
        {
            "event": "support.ended" if ended else "support.ending",
            "product": p.name,
            "notice": due,
            "support_end": str(p.support_end),
            "ends_at": rfc3339(checklist.support_ends_at(p.support_end)),
        },
    )


def derive(
    vulnerabilities: Iterable[VulnerabilityFacts],
    campaigns: Iterable[CampaignFacts],
    products: Iterable[ProductFacts],
    now: datetime,
) -> list[Notice]:
    """Every notice the current state calls for (the outbox drops the ones already sent)."""
    out: list[Notice] = []
    for v in vulnerabilities:
        out.extend(_vulnerability(v, now))
    for c in campaigns:
        out.extend(_campaign(c, now))
    for p in products:
        out.extend(_end_of_support(p, now))
    return out


# ---- delivery -----------------------------------------------------------------------------

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


def next_attempt(attempts: int, now: datetime) -> datetime:
    """When to try again after ``attempts`` failed tries: 30 s, doubling, at most an hour."""
    delay: timedelta = FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 16))
    return now + min(delay, LONGEST_RETRY)


@dataclass(frozen=True)
class Routes:
    """Who gets which notice by e-mail: ``default`` for every kind without its own list."""

    default: tuple[str, ...] = ()
    by_kind: Mapping[Kind, tuple[str, ...]] = field(default_factory=dict)

    def addresses(self, kind: Kind) -> tuple[str, ...]:
        return self.by_kind.get(kind, self.default)


def _addresses(text: str, where: str) -> tuple[str, ...]:
    found = tuple(a.strip() for a in text.replace(";", ",").split(",") if a.strip())
    for address in found:
        local, at, domain = address.partition("@")
        if not at or not local or "." not in domain or any(ch.isspace() for ch in address):
            raise InvalidInput(f"{where}: '{address}' is not an e-mail address")
    return found


def parse_routes(default: str | None, routes: str | None) -> Routes:
    """``PATCHGATE_NOTIFY_EMAIL`` (addresses for every notice) and
    ``PATCHGATE_NOTIFY_ROUTES`` (``kind=addr,addr;kind=addr``; an empty list silences a
    kind)."""
    base = _addresses(default or "", "PATCHGATE_NOTIFY_EMAIL")
    by_kind: dict[Kind, tuple[str, ...]] = {}
    for part in (routes or "").split(";"):
        if not part.strip():
            continue
        name, eq, addresses = part.partition("=")
        try:
            kind = Kind(name.strip())
        except ValueError:
            known = ", ".join(k.value for k in Kind)
            raise InvalidInput(
                f"PATCHGATE_NOTIFY_ROUTES: unknown notice '{name.strip()}' (known: {known})"
            ) from None
        if not eq:
            raise InvalidInput(f"PATCHGATE_NOTIFY_ROUTES: '{part.strip()}' needs kind=addresses")
        by_kind[kind] = _addresses(addresses, "PATCHGATE_NOTIFY_ROUTES")
    return Routes(base, by_kind)
