"""Use cases that change the register: add, tie to a product, triage, override the
severity, record exploitation, an upstream report or an Art. 14 submission.

Each runs in one unit of work, audits what it changed, and returns the vulnerability's
ID (the record's own, also when it was named by an alias); read the result with
``views.show``. Every text field is checked before anything is written
(``rules.check_text``), so bad input is refused the same way from the CLI and the API.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain import vulnerabilities as domain
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.domain.vulnerabilities import ScoreCandidate
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.cvss_scoring import score_vector
from patchgate.services.policy import in_force
from patchgate.services.unit_of_work import UnitOfWork
from patchgate.services.vulnerabilities.art14 import draft_record, draft_report
from patchgate.services.vulnerabilities.rules import (
    MAX_DESCRIPTION,
    MAX_NAME,
    UNASSIGNED,
    VULN_ID,
    check_products,
    check_ranges,
    check_text,
    cvss_severity,
    deadline,
    severity,
    when,
)
from patchgate.services.vulnerability_ports import (
    ProductAnalysis,
    Submission,
    UpstreamReport,
    VulnerabilityRecord,
)

__all__ = [
    "add",
    "mark_exploited",
    "override_severity",
    "record_upstream",
    "set_affected",
    "submit_report",
    "triage",
]

MAX_TITLE = 500


def _load(uow: UnitOfWork, vuln_id: str) -> VulnerabilityRecord:
    check_text(vuln_id, "the vulnerability ID", limit=MAX_NAME)
    record = uow.vulnerabilities.resolve(vuln_id, for_update=True)
    if record is None:
        raise NotFound(f"no vulnerability {vuln_id!r} in the register")
    return record


@dataclass
class _Edit:
    """One change to a register record inside its unit of work (``_editing``)."""

    ctx: Context
    uow: UnitOfWork
    record: VulnerabilityRecord
    now: datetime
    actor: str

    def save(self, action: str, details: dict[str, Any]) -> str:
        """Stamp and store the changed record, audit the change, commit; the record's ID."""
        self.record.updated_at = self.now
        self.uow.vulnerabilities.save(self.record)
        return self.audited(action, details)

    def audited(self, action: str, details: dict[str, Any]) -> str:
        """Audit the change, commit; the record's ID."""
        subject = f"vuln:{self.record.id}"
        audit.record(
            self.ctx, self.uow, actor=self.actor, action=action, subject=subject, details=details
        )
        self.uow.commit()
        return self.record.id


@contextmanager
def _editing(ctx: Context, vuln_id: str, *, now: datetime, actor: str) -> Iterator[_Edit]:
    """The record ``vuln_id`` names (by its ID or an alias), locked for a change."""
    with ctx.uow() as uow:
        yield _Edit(ctx, uow, _load(uow, vuln_id), now, actor)


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
) -> str:
    """Register a vulnerability assessed by the manufacturer (``affected``: the ranges of
    every named product). Refuses a duplicate ID, unstorable text, a vector the ``cvss``
    library rejects, an unknown product or an unreadable range, before anything is
    written."""
    if not VULN_ID.match(vuln_id):
        raise InvalidInput(f"{vuln_id!r} is not a usable ID (letters, digits, . _ : -)")
    check_text(title, "the title", limit=MAX_TITLE)
    if not title.strip():
        raise InvalidInput("a title is required")
    check_text(description, "the description", limit=MAX_DESCRIPTION)
    scored = score_vector(check_text(cvss, "the CVSS vector"))
    state = in_force(ctx)
    policy = state.policy
    check_products(policy, products)
    ranges = check_ranges(affected)
    now = ctx.clock()
    aware = when(aware_at, now, "awareness")
    with ctx.uow() as uow:
        if uow.vulnerabilities.get(vuln_id) is not None:
            raise Conflict(f"{vuln_id} is already in the register (use `vuln show {vuln_id}`)")
        own = ScoreCandidate(
            "manufacturer", policy.organisation, scored.version, scored.vector, scored.score
        )
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
            scores=[own],
            exploited_at=aware if exploited else None,
            products=[
                ProductAnalysis(product=p, ranges=list(ranges), updated_at=now)
                for p in dict.fromkeys(products)
            ]
            or [ProductAnalysis(product=UNASSIGNED, updated_at=now)],
        )
        applied, due_at = deadline(record, policy)
        return _Edit(ctx, uow, record, now, actor).save(
            "vuln.add",
            {
                "cvss_vector": scored.vector,
                "score": scored.score,
                "severity": applied,
                "due_at": rfc3339(due_at),
                "products": list(products),
                "affected": ranges,
                "exploited": exploited,
                "policy_sha256": state.sha256,
            },
        )


def set_affected(
    ctx: Context, vuln_id: str, *, product: str, affected: Sequence[str], actor: str
) -> str:
    """Record that ``product`` is affected (in the versions ``affected``; none means every
    version before its fixing release). A new product starts at ``new``; for a product
    already recorded only the ranges change. An imported advisory known under no product
    until now takes over its unassigned analysis."""
    check_products(in_force(ctx).policy, [product])
    ranges = check_ranges(affected)
    now = ctx.clock()
    with _editing(ctx, vuln_id, now=now, actor=actor) as edit:
        record = edit.record
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
        return edit.save(
            "vuln.affects",
            {"product": product, "from": before, "to": ranges},
        )


def _targets(record: VulnerabilityRecord, product: str | None) -> list[ProductAnalysis]:
    if product is None:
        return list(record.products)
    targets = [a for a in record.products if a.product == product]
    if not targets:
        shown = [a.product for a in record.products if a.product != UNASSIGNED]
        raise InvalidInput(
            f"{record.id} is not recorded for product {product!r} "
            f"(its products: {', '.join(shown) or 'none'})"
        )
    return targets


def _step(analysis: ProductAnalysis, status: str, stored: str | None, at: datetime) -> None:
    """Move one analysis to ``status``, dating the step where the lifecycle keeps a time."""
    analysis.status = status
    analysis.justification = stored
    if status == "fix_released":
        analysis.released_at = at
    elif status == "fix_deployed":
        analysis.deployed_at = at
        analysis.released_at = analysis.released_at or at
    elif status == "closed":
        analysis.closed_at = at


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
) -> str:
    """Move the analysis of one product (or of every product) to ``status``.

    The lifecycle refuses unknown steps naming the allowed ones. ``at`` dates a
    ``fix_released`` / ``fix_deployed`` / ``closed`` step (default: now); ``release_id``
    names the fixing release.
    """
    if justification is not None:
        check_text(justification, "the justification")
    now = ctx.clock()
    moment = when(at, now, "a transition")
    with _editing(ctx, vuln_id, now=now, actor=actor) as edit:
        record = edit.record
        targets = _targets(record, product)
        if release_id is not None and edit.uow.releases.get(release_id) is None:
            raise InvalidInput(f"no release {release_id}")
        changes: list[dict[str, Any]] = []
        for analysis in targets:
            stored = domain.check_transition(analysis.status, status, justification=justification)
            changes.append({"product": analysis.product, "from": analysis.status, "to": status})
            _step(analysis, status, stored, moment)
            analysis.updated_at = now
            if release_id is not None:
                analysis.fixing_release_id = release_id
        return edit.save(
            "vuln.triage",
            {
                "changes": changes,
                "justification": justification,
                "at": rfc3339(moment),
                "release_id": release_id,
            },
        )


def override_severity(
    ctx: Context, vuln_id: str, *, severity_name: str | None, justification: str, actor: str
) -> str:
    """Set (or with ``None`` clear) a severity override; a written justification is
    required either way, and the change is audited with the severity it replaces."""
    if severity_name is not None and severity_name not in domain.SEVERITY_ORDER:
        raise InvalidInput(
            f"unknown severity {severity_name!r} (known: {', '.join(domain.SEVERITY_ORDER)})"
        )
    check_text(justification, "the justification")
    if len(justification.strip()) < 10:
        raise InvalidInput("a severity override needs a written justification (10+ characters)")
    policy = in_force(ctx).policy
    now = ctx.clock()
    with _editing(ctx, vuln_id, now=now, actor=actor) as edit:
        record = edit.record
        before = severity(record, policy)
        record.severity_override = severity_name
        record.override_justification = justification.strip() if severity_name else None
        return edit.save(
            "vuln.override" if severity_name else "vuln.override.clear",
            {
                "from": before,
                "to": severity(record, policy),
                "cvss_severity": cvss_severity(record, policy),
                "justification": justification.strip(),
            },
        )


def mark_exploited(
    ctx: Context, vuln_id: str, *, actor: str, at: datetime | None = None, severe: bool = False
) -> str:
    """Record that the vulnerability is actively exploited (``severe``: that a severe
    incident affects the product's security, Art. 14(3)). ``at`` is when the manufacturer
    became aware, which starts the Art. 14 clocks; the policy's escalation applies."""
    now = ctx.clock()
    moment = when(at, now, "awareness")
    with _editing(ctx, vuln_id, now=now, actor=actor) as edit:
        record = edit.record
        if severe:
            if record.severe_incident_at is not None:
                raise Conflict(f"{record.id}: a severe incident is already recorded")
            record.severe_incident_at = moment
        else:
            if record.exploited_at is not None:
                raise Conflict(f"{record.id} is already recorded as actively exploited")
            record.exploited_at = moment
        return edit.save(
            "vuln.incident" if severe else "vuln.exploited",
            {"aware_at": rfc3339(moment)},
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
) -> str:
    """Record that a vulnerability in a third-party component was reported to the person
    or body maintaining it (CRA Art. 13(6))."""
    check_text(component, "the component")
    check_text(reported_to, "whom it was reported to")
    check_text(reference, "the reference")
    if not component.strip() or not reported_to.strip():
        raise InvalidInput("name the component and whom it was reported to")
    now = ctx.clock()
    moment = when(at, now, "a report upstream")
    with _editing(ctx, vuln_id, now=now, actor=actor) as edit:
        record = edit.record
        record.upstream = UpstreamReport(component.strip(), reported_to.strip(), moment, reference)
        return edit.save(
            "vuln.upstream",
            {
                "component": component.strip(),
                "reported_to": reported_to.strip(),
                "reported_at": rfc3339(moment),
                "reference": reference,
            },
        )


def submit_report(
    ctx: Context,
    vuln_id: str,
    kind: str,
    *,
    actor: str,
    at: datetime | None = None,
    reference: str = "",
) -> str:
    """Record that an Art. 14 report was submitted (to the CSIRT coordinator / ENISA
    single reporting platform), storing the draft as it stood."""
    check_text(reference, "the reference")
    report = draft_record(draft_report(ctx, vuln_id, kind))
    now = ctx.clock()
    moment = when(at, now, "a submission")
    with _editing(ctx, vuln_id, now=now, actor=actor) as edit:
        record = edit.record
        edit.uow.vulnerabilities.add_submission(
            Submission(record.id, kind, moment, actor, reference, report)
        )
        details = {"report": kind, "submitted_at": rfc3339(moment), "reference": reference}
        return edit.audited("vuln.art14.submit", details)
