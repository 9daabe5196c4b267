"""The guide's compliance checklist judged from live data (docs/compliance.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from patchgate.domain import checklist as rules
from patchgate.domain.clock import parse_rfc3339
from patchgate.domain.policy import Policy
from patchgate.services.compliance import sources, support
from patchgate.services.compliance.views import ChecklistView
from patchgate.services.context import Context
from patchgate.services.fleet_ports import Census

TECHFILE_ACTION = "techfile.export"
AB_VALUES = ("a", "b", "ab", "a/b", "dual", "dual-copy", "symmetric")
AB_KEYS = ("slot", "update_scheme")
AB_SUFFIX = "_slot"


def _file_in_force(ctx: Context) -> bool | None:
    """Whether ``policy.toml`` in the data folder is the policy in force (None: no file)."""
    path = ctx.data_dir / "policy.toml"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(data).hexdigest() == sources.policy_in_force(ctx).sha256


def _products(policy: Policy, only: str | None) -> list[str]:
    return [p.name for p in policy.products if only is None or p.name == only]


def _outcomes(ctx: Context, names: Sequence[str], now: datetime) -> list[rules.Outcome]:
    out = []
    for v in sources.register(ctx):
        if not v.due_at or not any(p in names for p in v.products):
            continue
        if now - v.due_at > rules.YEAR:
            continue
        out.append(rules.Outcome(v.id, v.sla_state))
    return out


def _gated(stage: dict[str, Any]) -> bool:
    g = stage["gates"]
    return (
        bool(g["manual"] or g["crash_test"] or g["min_finished"] or g["min_finished_fraction"])
        or float(g["max_failure_rate"]) < 1
    )


def _rollouts(ctx: Context, names: Sequence[str], now: datetime) -> list[rules.Rollout]:
    out = []
    for c in sources.campaign_plans(ctx):
        if c.product not in names or now - c.created_at > rules.YEAR:
            continue
        gated = sum(1 for s in c.stages[:-1] if _gated(s))
        out.append(rules.Rollout(c.id, len(c.stages), gated))
    return out


def reports_ab(attributes: dict[str, Any]) -> bool:
    """A device reports an A/B scheme when the agent's ``slot`` attribute (or a client's
    ``*_slot`` / ``update_scheme`` attribute) names one."""
    for key, value in attributes.items():
        name = str(key).lower()
        if (name in AB_KEYS or name.endswith(AB_SUFFIX)) and str(value).lower() in AB_VALUES:
            return True
    return False


def _hardware(policy: Policy, names: Sequence[str]) -> dict[str, str]:
    return {h: p.name for p in policy.products if p.name in names for h in p.hardware}


def fleet(ctx: Context, *, max_age: float = 0.0) -> Census:
    """The read of the fleet the checklist's A/B item takes for every product: the
    dashboard's counts of devices in service and seen come from it too (``max_age``: as
    in ``view``)."""
    policy = sources.policy(ctx)
    hardware = list(_hardware(policy, _products(policy, None)))
    return sources.census(ctx, hardware, AB_KEYS, AB_SUFFIX, AB_VALUES, max_age=max_age)


def _fleets(
    ctx: Context, policy: Policy, names: Sequence[str], max_age: float
) -> list[rules.Fleet]:
    """Per product: devices in service, and those reporting an A/B scheme (``reports_ab``,
    counted by one aggregate over the devices' attributes)."""
    product_of = _hardware(policy, names)
    counts = {n: [0, 0] for n in names}
    found = sources.census(
        ctx, list(product_of), AB_KEYS, AB_SUFFIX, AB_VALUES, max_age=max_age
    ).schemes
    for hardware, (total, ab) in found.items():
        product = product_of.get(hardware)
        if product is not None:
            counts[product][0] += total
            counts[product][1] += ab
    return [rules.Fleet(n, total, ab) for n, (total, ab) in counts.items()]


def _support(ctx: Context, policy: Policy, names: Sequence[str], now: datetime) -> list[Any]:
    sent = support.sent_notices(ctx)
    out = []
    for p in policy.products:
        if p.name not in names:
            continue
        due = rules.notice_due(p.support_end, now)
        out.append(
            rules.Support(
                p.name,
                rules.support_ends_at(p.support_end),
                p.on_sale,
                (due,) if due else (),
                tuple(sorted(sent.get(p.name, ()))),
            )
        )
    return out


def _last_export(ctx: Context, product: str | None) -> datetime | None:
    for entry in sources.audit_entries(ctx, TECHFILE_ACTION):
        scope = entry.details.get("product")
        # An export of the whole file covers every product; one of a product, that product.
        if scope is None or scope == product:
            return parse_rfc3339(str(entry.at))
    return None


def view(
    ctx: Context, *, base_url: str, product: str | None = None, fleet_max_age: float = 0.0
) -> ChecklistView:
    """The six items judged from live data. ``fleet_max_age``: seconds a count of the
    devices' update schemes may be reused."""
    in_force = sources.policy_in_force(ctx)
    policy = in_force.policy
    if product is not None:
        support.view(ctx, product)  # refuses an unknown or malformed name
    names = _products(policy, product)
    now = ctx.clock()
    base = base_url.rstrip("/")
    items = [
        rules.public_policy(
            contacts=len(policy.contact.uris()),
            products=len(policy.products),
            disclosure=bool(policy.disclosure.strip()),
            file_in_force=_file_in_force(ctx),
            base=base,
        ),
        rules.defined_cadence(
            severities=list(policy.cadence), outcomes=_outcomes(ctx, names, now), base=base
        ),
        rules.phased_rollouts(rollouts=_rollouts(ctx, names, now)),
        rules.atomic_updates(fleets=_fleets(ctx, policy, names, fleet_max_age)),
        rules.eol_communication(products=_support(ctx, policy, names, now), now=now, base=base),
        rules.process_documentation(
            exported_at=_last_export(ctx, product),
            policy_applied_at=in_force.applied_at,
            now=now,
        ),
    ]
    return ChecklistView(tuple(items), product)
