"""``patchgate init``: the data folder, the default tenant, the policy and the admin token.

Idempotent: running it again creates only what is missing and never replaces a key or a
token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from patchgate.services import access, audit, policy
from patchgate.services.context import Context

DEFAULT_TENANT = "DEFAULT"
ADMIN_TOKEN_NAME = "admin"  # noqa: S105  # the name of a token, not a token

DEMO_PRODUCT = """
[[products]]
name = "Demo Gateway"
description = "A demonstration industrial IoT gateway"
support_start = "2026-01"
support_end = "2031-12"
on_sale = true
member_states = ["DE", "FR", "NL"]
update_types = ["security", "feature", "combined"]
hardware = ["demo-gw-1"]
"""


def default_policy_source() -> str:
    """The default policy shipped with patchgate (the guide's cadence)."""
    return resources.files("patchgate").joinpath("default_policy.toml").read_text()


def demo_policy_source() -> str:
    """The default policy with the demo product added."""
    return default_policy_source().rstrip() + "\n" + DEMO_PRODUCT


@dataclass
class InitResult:
    """What ``init`` created this time (``admin_token`` only when it was new)."""

    created: list[str] = field(default_factory=list)
    admin_token: str | None = None


def initialise(ctx: Context, *, demo: bool, actor: str) -> InitResult:
    """Create what is missing: tenant, policy, admin token (schema must be at head)."""
    result = InitResult()
    now = ctx.clock()
    with ctx.uow() as uow:
        if uow.tenants.get(DEFAULT_TENANT) is None:
            uow.tenants.add(DEFAULT_TENANT, now)
            audit.record(
                ctx, uow, actor=actor, action="tenant.create", subject=f"tenant:{DEFAULT_TENANT}"
            )
            result.created.append(f"tenant {DEFAULT_TENANT}")
        has_policy = uow.policies.current() is not None
        has_admin = uow.tokens.by_name(ADMIN_TOKEN_NAME) is not None
        uow.commit()
    if not has_policy:
        source = demo_policy_source() if demo else default_policy_source()
        policy.apply(ctx, source, actor=actor)
        result.created.append("policy" + (" with the demo product" if demo else ""))
    if not has_admin:
        _, token = access.create_token(ctx, name=ADMIN_TOKEN_NAME, role="admin", actor=actor)
        result.admin_token = token
        result.created.append("admin token")
    return result
