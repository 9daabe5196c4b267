"""Use cases that change advisories: create a draft, publish it (CSAF 2.0 §3.2.1.12:
tracking status draft → final). Both are audited; nothing is stored when a step fails."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from patchgate.domain import csaf
from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit
from patchgate.services.advisories import inputs, shapes, validation
from patchgate.services.advisories.ports import AdvisoryRecord
from patchgate.services.compliance import sources
from patchgate.services.context import Context
from patchgate.services.vulnerabilities.views import VulnerabilityView

ID_PREFIX = "SA"


def _title(views: Sequence[VulnerabilityView], product_names: Sequence[str]) -> str:
    if len(views) == 1:
        return f"{views[0].title} ({views[0].id}) in {', '.join(product_names)}"
    return f"{len(views)} vulnerabilities in {', '.join(product_names)}"


def _summary(views: Sequence[VulnerabilityView]) -> str:
    lines = []
    for v in views:
        states = "; ".join(f"{p.product}: {p.status.replace('_', ' ')}" for p in v.products)
        lines.append(f"{v.id} ({v.severity}): {v.title}. {states}.")
    return " ".join(lines)


def _views(ctx: Context, vuln_ids: Sequence[str]) -> list[VulnerabilityView]:
    ids = list(dict.fromkeys(i.strip() for i in vuln_ids if i.strip()))
    if not ids:
        raise InvalidInput("name at least one vulnerability of the register")
    views = [sources.vulnerability(ctx, i) for i in ids]
    for v in views:
        if not v.products:
            raise InvalidInput(
                f"vulnerability {v.id} is not recorded for any product of the policy; "
                "run `patchgate vuln affects` first"
            )
    return views


def draft_document(
    ctx: Context,
    tracking_id: str,
    views: Sequence[VulnerabilityView],
    *,
    title: str | None,
    acknowledgments: Sequence[str],
    base_url: str,
    now: datetime,
) -> dict[str, Any]:
    """The draft CSAF security advisory for register views (validated by the caller)."""
    policy = sources.policy(ctx)
    releases = sources.releases(ctx)
    names = list(dict.fromkeys(p.product for v in views for p in v.products))
    tracking = inputs.first_tracking(tracking_id, "draft", now, "Initial version.")
    return csaf.build(
        csaf.DocumentInput(
            category=csaf.ADVISORY,
            title=title or _title(views, names),
            publisher=inputs.publisher(policy, base_url),
            tracking=tracking,
            products=inputs.products(policy, releases, names),
            vulnerabilities=tuple(inputs.vulnerability(v, releases, base_url) for v in views),
            policy_url=f"{base_url.rstrip('/')}/policy",
            acknowledgments=tuple(a for a in acknowledgments if a.strip()),
            summary=_summary(views),
        )
    )


def create(
    ctx: Context,
    vuln_ids: Sequence[str],
    *,
    title: str | None = None,
    acknowledgments: Sequence[str] = (),
    base_url: str,
    actor: str,
) -> str:
    """Draft an advisory for register vulnerabilities; its tracking ID. Refused when one is
    unknown or the document would not pass the CSAF 2.0 schema and mandatory tests."""
    if title is not None and not title.strip():
        raise InvalidInput("--title must not be empty")
    views = _views(ctx, vuln_ids)
    now = ctx.clock()
    with ctx.uow() as uow:
        prefix = f"{ID_PREFIX}-{now.year}-"
        tracking_id = f"{prefix}{uow.advisories.count_with_prefix(prefix) + 1:04d}"
        document = draft_document(
            ctx,
            tracking_id,
            views,
            title=title,
            acknowledgments=acknowledgments,
            base_url=base_url,
            now=now,
        )
        validation.require_valid(document, "the advisory would not be a valid CSAF 2.0 document")
        record = AdvisoryRecord(
            id=tracking_id,
            state="draft",
            title=document["document"]["title"],
            vulnerability_ids=tuple(v.id for v in views),
            document=document,
            created_at=now,
            created_by=actor,
        )
        uow.advisories.save(record)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="advisory.create",
            subject=f"advisory:{tracking_id}",
            details={"vulnerabilities": list(record.vulnerability_ids)},
        )
        uow.commit()
    return tracking_id


def serialise(document: Mapping[str, Any]) -> str:
    """The exact text served for a published document."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def publish(ctx: Context, advisory_id: str, *, base_url: str, actor: str) -> str:
    """Make a draft final: dated now, validated again (an invalid document is refused and
    stays a draft), serialised once, and signed with the provider's OpenPGP key. Returns
    the document's path below the provider's folder."""
    key = ctx.openpgp
    if key is None or not key.exists():
        raise Conflict("the CSAF OpenPGP key does not exist; run `patchgate init`")
    now = ctx.clock()
    with ctx.uow() as uow:
        record = uow.advisories.get(advisory_id, for_update=True)
        if record is None:
            raise NotFound(f"no advisory {advisory_id!r}")
        if record.state == "final":
            raise Conflict(f"advisory {advisory_id} is already published")
        path = f"{now.year}/{csaf.file_name(record.id)}"
        document = csaf.finalised(record.document, now, shapes.document_url(base_url, path))
        validation.require_valid(
            document, f"advisory {advisory_id} is not a valid CSAF 2.0 document; not published"
        )
        text = serialise(document)
        published = AdvisoryRecord(
            **{
                **record.__dict__,
                "state": "final",
                "document": document,
                "published_at": now,
                "published_by": actor,
                "path": path,
                "text": text,
                "signature": key.sign(text.encode()),
            }
        )
        uow.advisories.save(published)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="advisory.publish",
            subject=f"advisory:{advisory_id}",
            details={"path": path, "sha256": validation.sha256_hex(text.encode())},
        )
        uow.commit()
    return path
