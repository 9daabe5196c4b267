"""The console's reads, each through the service that owns the area, in the same JSON
shapes the API and the CLI's ``--json`` print, so the three never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from patchgate.services import audit as audit_service
from patchgate.services.campaigns import views as campaign_views
from patchgate.services.context import Context
from patchgate.services.releases import shapes as release_shapes
from patchgate.services.releases import views as release_views
from patchgate.services.vulnerabilities import shapes as vuln_shapes
from patchgate.services.vulnerabilities import views as vuln_views


def vulnerability(ctx: Context, vuln_id: str) -> dict[str, Any]:
    return vuln_shapes.vulnerability_json(vuln_views.show(ctx, vuln_id))


def campaigns(ctx: Context) -> list[dict[str, Any]]:
    return [c.to_json() for c in campaign_views.all_campaigns(ctx)]


def campaign(ctx: Context, campaign_id: int) -> dict[str, Any]:
    return campaign_views.status(ctx, campaign_id).to_json()


def releases(ctx: Context) -> list[dict[str, Any]]:
    listing = release_views.release_list(ctx)
    return list(release_shapes.release_list_json(listing)["releases"])


def release(ctx: Context, release_id: int) -> dict[str, Any]:
    return release_shapes.release_json(release_views.release_detail(ctx, release_id))


def audit_page(ctx: Context, *, limit: int, before_seq: int | None) -> Sequence[Any]:
    return audit_service.entries(ctx, limit=limit, before_seq=before_seq)


def audit_verify(ctx: Context) -> tuple[int, Any]:
    return audit_service.verify(ctx)


def device(ctx: Context, controller_id: str) -> dict[str, Any]:
    from patchgate.entrypoints.presenters.devices import device_detail_json
    from patchgate.services.devices import device_detail

    return device_detail_json(device_detail(ctx, controller_id))
