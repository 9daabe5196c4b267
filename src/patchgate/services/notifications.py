"""Notices to people, through a durable outbox (docs/notifications.md).

``collect`` derives the notices the current state calls for (``domain.notices``) from the
register, the campaigns and the policy; ``enqueue`` stores those whose event key is new,
with one delivery per configured e-mail address and webhook, in one transaction; ``deliver``
sends what is due, each delivery claimed first so no two processes send it, and records
success or the error with the next attempt (30 s, doubling, at most an hour; never given
up). ``run_once`` does the three; the server runs it on its notice timer and the CLI after
a command that may have caused a notice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from patchgate.domain import notices as rules
from patchgate.domain.gates import AWAIT_APPROVAL
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.notice_ports import (
    Channels,
    DeliveryFailed,
    NoticeView,
    PendingDelivery,
)
from patchgate.services.vulnerabilities.views import VulnerabilityView

log = logging.getLogger("patchgate.notifications")

CLAIM = timedelta(minutes=2)
BATCH = 100
OPEN_SLA_STATES = frozenset({"on_track", "due_soon", "overdue"})


@dataclass(frozen=True)
class RunResult:
    stored: int
    sent: int
    failed: int


# ---- what the state calls for -------------------------------------------------------------


def _vulnerability_facts(views: Iterable[VulnerabilityView]) -> list[rules.VulnerabilityFacts]:
    out = []
    for v in views:
        reports: tuple[rules.ReportClock, ...] = ()
        if v.art14 is not None and v.art14.required:
            reports = tuple(
                rules.ReportClock(c.kind, c.due_at, c.submitted_at is not None)
                for c in v.art14.reports
            )
        out.append(
            rules.VulnerabilityFacts(
                id=v.id,
                title=v.title,
                severity=v.severity,
                due_at=v.due_at,
                resolved=v.sla_state not in OPEN_SLA_STATES,
                reports=reports,
            )
        )
    return out


def _campaign_facts(ctx: Context) -> list[rules.CampaignFacts]:
    from patchgate.services.campaigns import views

    out = []
    for c in views.all_campaigns(ctx):
        if c.state in ("draft", "cancelled"):
            continue
        s = views.status(ctx, c.id)
        gate = dict(s.last_gate or {})
        out.append(
            rules.CampaignFacts(
                id=s.id,
                product=s.product,
                release=s.release_version,
                state=s.state,
                stage_index=s.stage_index,
                stage_name=s.stage_name,
                halted_at=s.halted_at,
                halt_reason=s.halt_reason,
                last_gate=gate,
                awaiting_approval=gate.get("verdict") == AWAIT_APPROVAL,
                deadline_at=s.deadline_at,
                deadline_at_risk=s.deadline_at_risk,
                finished_at=s.finished_at,
            )
        )
    return out


def _product_facts(ctx: Context) -> list[rules.ProductFacts]:
    from patchgate.services.policy import in_force

    policy = in_force(ctx).policy
    return [rules.ProductFacts(p.name, p.support_end) for p in policy.products]


def collect(ctx: Context, now: datetime) -> list[rules.Notice]:
    """Every notice the current state calls for."""
    from patchgate.services.vulnerabilities import views

    return rules.derive(
        _vulnerability_facts(views.list_vulnerabilities(ctx).items),
        _campaign_facts(ctx),
        _product_facts(ctx),
        now,
    )


# ---- the outbox ---------------------------------------------------------------------------


def enqueue(ctx: Context, channels: Channels | None, found: Iterable[rules.Notice]) -> int:
    """Store the notices whose key is new, with their deliveries; the number stored."""
    notices = list(found)
    if not notices:
        return 0
    now = ctx.clock()
    stored = 0
    with ctx.uow() as uow:
        known = uow.notices.known([n.key for n in notices])
        for notice in notices:
            if notice.key in known:
                continue
            deliveries = channels.deliveries(notice) if channels is not None else []
            if uow.notices.add(notice, deliveries, now):
                stored += 1
                log.info("notice %s: %s", notice.key, notice.subject)
        uow.commit()
    return stored


def _send(channels: Channels, d: PendingDelivery) -> None:
    link = channels.base_url.rstrip("/") + d.link
    if d.channel == "email":
        if channels.mailer is None:
            raise DeliveryFailed("no SMTP server is configured (PATCHGATE_SMTP_URL)")
        channels.mailer.send([d.target], d.subject, f"{d.body}\n\n{link}\n")
        return
    if channels.webhooks is None:
        raise DeliveryFailed("webhooks are not configured (PATCHGATE_WEBHOOKS)")
    channels.webhooks.send(
        d.target, rules.webhook_payload(d.kind, d.key, d.subject, link, d.at, d.facts)
    )


def deliver(ctx: Context, channels: Channels | None, *, quick_retries: int = 0) -> tuple[int, int]:
    """Send every delivery that is due; (sent, failed). ``quick_retries``: tries again within
    this call, 0.5 s apart and doubling, before leaving a failure to a later run (the CLI,
    which has no later run of its own)."""
    if channels is None:
        return 0, 0
    sent = failed = 0
    while True:
        now = ctx.clock()
        with ctx.uow() as uow:
            batch = uow.notices.claim_due(now, now + CLAIM, BATCH)
            uow.commit()
        if not batch:
            return sent, failed
        for d in batch:
            error = _attempt(channels, d, quick_retries)
            with ctx.uow() as uow:
                if error is None:
                    uow.notices.sent(d.id, ctx.clock())
                    sent += 1
                else:
                    retry_at = rules.next_attempt(d.attempts + 1, ctx.clock())
                    uow.notices.failed(d.id, error, retry_at)
                    failed += 1
                    log.warning(
                        "notice %s to %s: %s; next try %s", d.key, d.target, error, retry_at
                    )
                uow.commit()
        if failed:
            # What failed waits for its next attempt; do not spin on it in this call.
            return sent, failed


def _attempt(channels: Channels, d: PendingDelivery, quick_retries: int) -> str | None:
    delay = 0.5
    error: str | None = None
    for attempt in range(quick_retries + 1):
        try:
            _send(channels, d)
            return None
        except DeliveryFailed as exc:
            error = str(exc)
        if attempt < quick_retries:
            time.sleep(delay)
            delay *= 2
    return error


def run_once(ctx: Context, channels: Channels | None, *, quick_retries: int = 0) -> RunResult:
    """Derive, store and send: what the notice timer does on each tick."""
    stored = enqueue(ctx, channels, collect(ctx, ctx.clock()))
    sent, failed = deliver(ctx, channels, quick_retries=quick_retries)
    return RunResult(stored, sent, failed)


def page(ctx: Context, *, limit: int = 50, before_id: int | None = None) -> list[NoticeView]:
    """Notices newest first, with each delivery's state (API and console)."""
    with ctx.read_uow() as uow:
        return uow.notices.page(limit=limit, before_id=before_id)


def run_for(ctx: Context, channels: Channels | None, *, actor: str) -> RunResult:
    """``run_once`` asked for by a person (the console's "Deliver now"): the same pass,
    recorded in the audit log with what it stored, sent and failed."""
    result = run_once(ctx, channels)
    with ctx.uow() as uow:
        details = {"stored": result.stored, "sent": result.sent, "failed": result.failed}
        audit.record(ctx, uow, actor=actor, action="notify.run", subject="notices", details=details)
        uow.commit()
    return result
