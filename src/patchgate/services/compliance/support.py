"""End of support (CRA Art. 13(8), (19)): the public support statement of each product and
the notices to operators 12, 6 and 1 months before a product's end of support and on the
day, each sent once by the notice outbox (``services.notifications``, e-mail and webhooks)."""

from __future__ import annotations

from patchgate.domain import checklist
from patchgate.domain.errors import NotFound
from patchgate.domain.notices import Kind
from patchgate.domain.policy import Product
from patchgate.services.advisories.views import check_product_name
from patchgate.services.compliance import sources
from patchgate.services.compliance.views import SupportView
from patchgate.services.context import Context


def sent_notices(ctx: Context) -> dict[str, set[str]]:
    """{product: names of the end-of-support notices that reached someone}. The notices
    themselves go out through the notice outbox (docs/notifications.md)."""
    out: dict[str, set[str]] = {}
    with ctx.read_uow() as uow:
        for facts in uow.notices.delivered(Kind.END_OF_SUPPORT.value):
            out.setdefault(str(facts.get("product")), set()).add(str(facts.get("notice")))
    return out


def view(ctx: Context, name: str) -> SupportView:
    """The support statement of one product (``NotFound`` for an unknown one)."""
    check_product_name(name)
    policy = sources.policy(ctx)
    product = policy.product(name)
    if product is None:
        raise NotFound(f"no product {name!r} in the policy")
    return _view(product, ctx)


def _view(product: Product, ctx: Context) -> SupportView:
    now = ctx.clock()
    ends = checklist.support_ends_at(product.support_end)
    releases = [r for r in sources.releases(ctx, product.name) if r.state != "withdrawn"]
    latest = max(releases, key=lambda r: r.created_at) if releases else None
    return SupportView(
        product=product.name,
        description=product.description,
        support_start=str(product.support_start),
        support_end=str(product.support_end),
        support_end_human=product.support_end.human(),
        supported=now < ends,
        ends_at=ends,
        on_sale=product.on_sale,
        member_states=tuple(product.member_states),
        update_types=tuple(product.update_types),
        hardware=tuple(product.hardware),
        short_support_reason=product.short_support_reason,
        latest_release=latest.version if latest else None,
        notices=tuple(checklist.notice_times(product.support_end)),
    )
