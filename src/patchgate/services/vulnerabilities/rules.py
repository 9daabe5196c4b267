"""The register's rules that need the policy in force: severity, deadline, Member States,
and the checks every command applies to what it is given (docs/vulnerability-register.md).

The pure rules (bands, escalation, SLA state, lifecycle, Art. 14 clocks) live in
``domain/vulnerabilities.py``; these bind them to a ``Policy`` and to a stored record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from patchgate.domain import versions
from patchgate.domain import vulnerabilities as domain
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Policy
from patchgate.services.vulnerability_ports import VulnerabilityRecord

# Product key of the analysis of a vulnerability not (yet) tied to any product of the
# policy, as imported third-party advisories are; it is never shown as a product.
UNASSIGNED = ""
VULN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Longest free text a command stores (titles are shorter, descriptions longer).
MAX_TEXT = 2000
MAX_DESCRIPTION = 20_000
MAX_NAME = 200  # an ID or alias looked up


def cvss_severity(record: VulnerabilityRecord, policy: Policy) -> str:
    """The severity from the record's score alone (``none`` when it has no score)."""
    if record.score is None:
        return "none"
    return domain.severity_for(record.score, policy.cadence.values())


def severity(record: VulnerabilityRecord, policy: Policy) -> str:
    """The severity in force: the override when one is recorded, else the score's band."""
    return record.severity_override or cvss_severity(record, policy)


def deadline(record: VulnerabilityRecord, policy: Policy) -> tuple[str, datetime | None]:
    """(severity whose cadence applies, due time) with exploited escalation applied."""
    applied = domain.effective_severity(
        severity(record, policy),
        exploited=record.exploited_at is not None,
        exploited_severity=policy.exploited_severity,
    )
    hours = {s: r.deadline_hours for s, r in policy.cadence.items()}
    return applied, domain.patch_deadline(record.aware_at, applied, hours)


def member_states(record: VulnerabilityRecord, policy: Policy) -> tuple[str, ...]:
    """Member States where an affected product is made available (CRA Art. 14(2)(a))."""
    states: set[str] = set()
    for analysis in record.products:
        product = policy.product(analysis.product)
        if product is not None:
            states.update(product.member_states)
    return tuple(sorted(states))


def check_products(policy: Policy, products: Sequence[str]) -> None:
    """Refuse a product the policy does not know, naming the products it does."""
    for name in products:
        if policy.product(name) is None:
            known = ", ".join(p.name for p in policy.products) or "none"
            raise InvalidInput(f"product {name!r} is not in the policy (products: {known})")


def check_ranges(ranges: Sequence[str]) -> list[str]:
    """Affected ranges in their stored ``vers:`` form; an unreadable one is refused."""
    for text in ranges:
        check_text(text, "an affected range", limit=MAX_TEXT)
    return [versions.parse_range(r).to_vers() for r in ranges]


def check_text(value: str, field: str, *, limit: int = MAX_TEXT) -> str:
    """``value`` if it can be stored and shown everywhere: valid Unicode (no lone
    surrogate, which no UTF-8 database or JSON encoder accepts), no NUL (PostgreSQL text
    refuses it) and at most ``limit`` characters; else ``InvalidInput`` naming ``field``
    without echoing the offending character."""
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{field} is not valid Unicode (a lone surrogate at character {exc.start + 1})"
        ) from exc
    if len(value) > limit:
        raise InvalidInput(f"{field} is {len(value)} characters long; at most {limit} allowed")
    return value


def when(at: datetime | None, now: datetime, what: str) -> datetime:
    """``at``, or now without one; a time in the future is refused, naming ``what``."""
    moment = at or now
    if moment > now:
        raise InvalidInput(f"{what} cannot be dated in the future")
    return moment
