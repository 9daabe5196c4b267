"""Queries on advisories, and the CSAF VEX of one product (CSAF 2.0 §4.5)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from patchgate.domain import csaf
from patchgate.domain.errors import InvalidInput, NotFound
from patchgate.services.advisories import inputs, validation
from patchgate.services.advisories.ports import AdvisoryRecord
from patchgate.services.advisories.shapes import AdvisoryView, document_url
from patchgate.services.compliance import sources
from patchgate.services.context import Context


def view(record: AdvisoryRecord, base_url: str) -> AdvisoryView:
    """The view of a stored advisory."""
    return AdvisoryView(
        id=record.id,
        state=record.state,
        title=record.title,
        vulnerabilities=tuple(record.vulnerability_ids),
        version=record.document["document"]["tracking"]["version"],
        created_at=record.created_at,
        created_by=record.created_by,
        published_at=record.published_at,
        path=record.path,
        url=document_url(base_url, record.path) if record.path else None,
    )


def advisory(ctx: Context, advisory_id: str, base_url: str) -> AdvisoryView:
    """One advisory's view, or ``NotFound``."""
    return view(get(ctx, advisory_id), base_url)


def advisories(
    ctx: Context, base_url: str, *, published_only: bool = False
) -> tuple[AdvisoryView, ...]:
    """Every advisory's view (or only the published ones'), newest first (a register's few
    documents: not paged)."""
    return tuple(view(r, base_url) for r in list_advisories(ctx, published_only=published_only))


def list_advisories(ctx: Context, *, published_only: bool = False) -> list[AdvisoryRecord]:
    """Every advisory (or only the published ones), newest first."""
    with ctx.read_uow() as uow:
        records = list(uow.advisories.list())
    if published_only:
        records = [r for r in records if r.state == "final"]
        records.sort(key=lambda r: (r.published_at is None, r.published_at), reverse=True)
    return records


def get(ctx: Context, advisory_id: str, *, published_only: bool = False) -> AdvisoryRecord:
    """One advisory by its tracking ID, or ``NotFound``."""
    with ctx.read_uow() as uow:
        record = uow.advisories.get(advisory_id)
    if record is None or (published_only and record.state != "final"):
        raise NotFound(f"no advisory {advisory_id!r}")
    return record


_PRODUCT_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")


def check_product_name(name: str) -> str:
    """Refuse a product name with path or control characters before any lookup."""
    if not _PRODUCT_NAME.match(name) or name in (".", "..") or name != name.strip():
        raise InvalidInput(f"{name!r} is not a product name (no '/', '\\' or control characters)")
    return name


def vex_document(ctx: Context, product: str, *, base_url: str) -> dict[str, Any]:
    """A ``csaf_vex`` document of every vulnerability recorded for ``product`` (not
    withdrawn), as the register has it now; validated before it is returned."""
    check_product_name(product)
    policy = sources.policy(ctx)
    if policy.product(product) is None:
        known = ", ".join(p.name for p in policy.products) or "none"
        raise InvalidInput(f"unknown product {product!r} (products of the policy: {known})")
    releases = sources.releases(ctx, product)
    views = [
        replace(v, products=tuple(p for p in v.products if p.product == product))
        for v in sources.vulnerabilities(ctx)
        if v.withdrawn_at is None and any(p.product == product for p in v.products)
    ]
    if not views:
        raise InvalidInput(f"no vulnerability is recorded for {product!r}; a VEX needs one")
    now = ctx.clock()
    tracking_id = f"VEX-{csaf.slug(product).upper()}-{now.strftime('%Y%m%dT%H%M%SZ')}"
    document = csaf.build(
        csaf.DocumentInput(
            category=csaf.VEX,
            title=f"VEX: {product}",
            publisher=inputs.publisher(policy, base_url),
            tracking=inputs.first_tracking(
                tracking_id, "final", now, "Exported from the vulnerability register."
            ),
            products=inputs.products(policy, releases, [product]),
            vulnerabilities=tuple(inputs.vulnerability(v, releases, base_url) for v in views),
            policy_url=f"{base_url.rstrip('/')}/policy",
            summary=f"The status of every vulnerability recorded for {product}.",
        )
    )
    validation.require_valid(document, "the VEX would not be a valid CSAF 2.0 document")
    return document
