"""Where compliance evidence reads the other capabilities: the one place that calls their
public service functions, so a move of those functions changes only this module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from patchgate.domain.policy import Policy
from patchgate.services import policy as policy_service
from patchgate.services import releases as release_service
from patchgate.services import vulnerabilities as vulnerability_service
from patchgate.services.context import Context
from patchgate.services.release_ports import ReleaseRecord


def policy(ctx: Context) -> Policy:
    """The policy in force."""
    return policy_service.in_force(ctx).policy


def policy_in_force(ctx: Context) -> policy_service.PolicyInForce:
    """The policy in force with its digest and since when."""
    return policy_service.in_force(ctx)


def vulnerability(ctx: Context, vuln_id: str) -> dict[str, Any]:
    """The register's view of one vulnerability (``NotFound`` for an unknown ID)."""
    return vulnerability_service.show(ctx, vuln_id)


def vulnerabilities(ctx: Context) -> list[dict[str, Any]]:
    """The register's view of every vulnerability."""
    return vulnerability_service.list_all(ctx)


def releases(ctx: Context, product: str | None = None) -> Sequence[ReleaseRecord]:
    """Every release (of ``product``), withdrawn ones included."""
    return release_service.list_releases(ctx, product=product)
