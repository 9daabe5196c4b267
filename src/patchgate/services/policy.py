"""Putting a policy in force and reading the one in force."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from datetime import date, datetime

from patchgate.domain.errors import NotFound
from patchgate.domain.policy import Policy
from patchgate.domain.policy_parse import load_policy, parse_policy
from patchgate.services import audit, state
from patchgate.services.context import Context


@dataclass(frozen=True)
class PolicyInForce:
    """The parsed policy with the version record it came from."""

    policy: Policy
    version_id: int
    sha256: str
    applied_at: datetime


def check(source: str, *, today: datetime) -> Policy:
    """Validate policy text; raises ``PolicyInvalid`` with one problem per line."""
    return load_policy(source, today=today.date())


def apply(ctx: Context, source: str, *, actor: str) -> tuple[Policy, bool]:
    """Validate ``source`` and put it in force; returns (policy, changed).

    Applying the text already in force changes nothing and records nothing. An invalid
    policy raises before any write.
    """
    now = ctx.clock()
    policy = check(source, today=now)
    digest = hashlib.sha256(source.encode()).hexdigest()
    with ctx.uow() as uow:
        current = uow.policies.current()
        if current is not None and current.sha256 == digest:
            return policy, False
        record = uow.policies.add(source=source, sha256=digest, now=now, actor=actor)
        state.changed(ctx, uow)  # cached policy views and the campaign snapshot follow
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="policy.apply",
            subject=f"policy:{record.id}",
            details={
                "sha256": digest,
                "previous_sha256": current.sha256 if current else None,
                "products": [p.name for p in policy.products],
            },
        )
        uow.commit()
    return policy, True


# Parsed policies by (text digest, date applied): parsing is a function of those two alone,
# and a console page asks for the policy in force several times (docs/console.md,
# "Performance"). A handful of versions at most is ever read again.
_parsed: dict[tuple[str, date], Policy] = {}
PARSED_KEPT = 8


def _parse(source: str, sha256: str, applied: date) -> Policy:
    key = (sha256, applied)
    found = _parsed.get(key)
    if found is None or hashlib.sha256(source.encode()).hexdigest() != sha256:
        found = parse_policy(tomllib.loads(source), today=applied)
        if len(_parsed) >= PARSED_KEPT:
            _parsed.clear()
        _parsed[key] = found
    return found


def in_force(ctx: Context) -> PolicyInForce:
    """The policy in force. Its text was validated when applied; it is parsed again here
    with today's date, so a support period that has since ended still parses (the
    compliance checklist, not the parser, reports it)."""
    with ctx.read_uow() as uow:
        record = uow.policies.current()
    if record is None:
        raise NotFound("no policy is in force: run `patchgate init`")
    # Parse with the date it was applied so an end date that has passed since does not
    # make the published policy unreadable.
    policy = _parse(record.source, record.sha256, record.applied_at.date())
    return PolicyInForce(policy, record.id, record.sha256, record.applied_at)
