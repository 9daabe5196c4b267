"""The policy in force as JSON (``GET``/``PUT /api/v1/policy``) and as the one-line
summaries the CLI prints. The public pages render it in ``entrypoints/web``."""

from __future__ import annotations

from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.domain.policy import Policy
from patchgate.services.policy import PolicyInForce

__all__ = ["applied_json", "in_force_json", "summary_text"]


def in_force_json(current: PolicyInForce) -> dict[str, Any]:
    """The policy in force (the ``/policy.json`` object) with its ``sha256`` and
    ``applied_at``."""
    body = current.policy.to_json()
    body["sha256"] = current.sha256
    body["applied_at"] = rfc3339(current.applied_at)
    return body


def applied_json(policy: Policy, changed: bool) -> dict[str, Any]:
    """The answer to applying a policy: whether it changed anything, and the policy."""
    return {"changed": changed, "policy": policy.to_json()}


def summary_text(policy: Policy) -> str:
    """What ``policy check`` says about a valid policy."""
    products = len(policy.products)
    return (
        f"valid ({products} product{'' if products == 1 else 's'}, cadence for "
        f"{', '.join(policy.cadence)})"
    )
