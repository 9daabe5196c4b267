"""End of support (CRA Art. 13(8), (19)): the public support statement of each product and
the notices to operators 12, 6 and 1 months before a product's end of support and on the
day, each sent once (webhooks; recorded in the audit log, which is how "once" is known)."""

from __future__ import annotations

from typing import Any

from patchgate.domain import checklist
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import NotFound
from patchgate.domain.policy import Product
from patchgate.services import audit
from patchgate.services.advisories.views import check_product_name
from patchgate.services.compliance import sources
from patchgate.services.context import Context

NOTICE_ACTION = "support.notice"
ACTOR = "patchgate:support"


def sent_notices(ctx: Context) -> dict[str, set[str]]:
    """{product: names of the notices already sent}."""
    out: dict[str, set[str]] = {}
    for entry in sources.audit_entries(ctx, NOTICE_ACTION, limit=100_000):
        out.setdefault(entry.subject.removeprefix("product:"), set()).add(
            str(entry.details.get("notice"))
        )
    return out


def statement(ctx: Context, name: str) -> dict[str, Any]:
    """The support statement of one product (``NotFound`` for an unknown one)."""
    check_product_name(name)
    policy = sources.policy(ctx)
    product = policy.product(name)
    if product is None:
        raise NotFound(f"no product {name!r} in the policy")
    return _statement(product, ctx)


def _statement(product: Product, ctx: Context) -> dict[str, Any]:
    now = ctx.clock()
    ends = checklist.support_ends_at(product.support_end)
    releases = [r for r in sources.releases(ctx, product.name) if r.state != "withdrawn"]
    latest = max(releases, key=lambda r: r.created_at) if releases else None
    return {
        "product": product.name,
        "description": product.description,
        "support_start": str(product.support_start),
        "support_end": str(product.support_end),
        "support_end_human": product.support_end.human(),
        "supported": now < ends,
        "ends_at": rfc3339(ends),
        "on_sale": product.on_sale,
        "member_states": list(product.member_states),
        "update_types": list(product.update_types),
        "hardware": list(product.hardware),
        "short_support_reason": product.short_support_reason,
        "latest_release": latest.version if latest else None,
        "notices": [
            {"notice": n, "at": rfc3339(at)}
            for n, at in checklist.notice_times(product.support_end)
        ],
    }


def send_notices(ctx: Context) -> list[dict[str, Any]]:
    """Send each product's end-of-support notice that has fallen due and was not sent yet;
    returns what was sent. Without a webhook endpoint nothing is sent (nor recorded).

    Several server processes may run this at once: each notice is decided and recorded
    under the audit log's head lock, so only one of them records (and then posts) it."""
    if ctx.webhooks is None:
        return []
    now = ctx.clock()
    out: list[dict[str, Any]] = []
    for product in sources.policy(ctx).products:
        due = checklist.notice_due(product.support_end, now)
        if due is None:
            continue
        notice = {
            "event": "support.ending" if due != "end of support" else "support.ended",
            "product": product.name,
            "notice": due,
            "support_end": str(product.support_end),
            "ends_at": rfc3339(checklist.support_ends_at(product.support_end)),
            "at": rfc3339(now),
        }
        with ctx.uow() as uow:
            uow.audit.lock_head()
            if due in sent_notices(ctx).get(product.name, set()):
                continue
            audit.record(
                ctx, uow, actor=ACTOR, action=NOTICE_ACTION, subject=f"product:{product.name}",
                details={"notice": due},
            )  # fmt: skip
            uow.commit()
        ctx.webhooks.post(notice)
        out.append(notice)
    return out
