"""Where compliance evidence reads the other capabilities: the one place that calls their
public service functions, so a move of those functions changes only this module."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchgate.domain.audit import AuditRecord, Checkpoint, Finding
from patchgate.domain.errors import PatchgateError
from patchgate.domain.policy import Policy
from patchgate.services import audit as audit_service
from patchgate.services import policy as policy_service
from patchgate.services import releases as release_service
from patchgate.services.context import Context
from patchgate.services.device_ports import DeviceRecord
from patchgate.services.fleet_ports import Census
from patchgate.services.release_ports import ReleaseRecord
from patchgate.services.releases import shapes as release_shapes
from patchgate.services.releases import views as release_views
from patchgate.services.releases.views import TrustView
from patchgate.services.vulnerabilities import register as vuln_register
from patchgate.services.vulnerabilities import views as vuln_views
from patchgate.services.vulnerabilities.register import RegisterRow
from patchgate.services.vulnerabilities.views import SlaReport, VulnerabilityView

if TYPE_CHECKING:
    from patchgate.services.campaigns.views import CampaignStatus

PLAN_PAGE = 200


def policy(ctx: Context) -> Policy:
    """The policy in force."""
    return policy_service.in_force(ctx).policy


def policy_in_force(ctx: Context) -> policy_service.PolicyInForce:
    """The policy in force with its digest and since when."""
    return policy_service.in_force(ctx)


def vulnerability(ctx: Context, vuln_id: str) -> VulnerabilityView:
    """The register's view of one vulnerability (``NotFound`` for an unknown ID)."""
    return vuln_views.show(ctx, vuln_id)


def vulnerabilities(ctx: Context) -> Sequence[VulnerabilityView]:
    """The register's view of every vulnerability."""
    return vuln_views.list_vulnerabilities(ctx).items


def register(ctx: Context) -> list[RegisterRow]:
    """Every vulnerability as a row of the register (deadline, SLA state, products),
    without the per-vulnerability reads of the full view."""
    return vuln_register.register_rows(ctx)


def releases(ctx: Context, product: str | None = None) -> Sequence[ReleaseRecord]:
    """Every release (of ``product``), withdrawn ones included."""
    return release_service.list_releases(ctx, product=product)


def campaigns(ctx: Context) -> list[CampaignStatus]:
    """Every campaign's full status (stages with their gates, counts, halts)."""
    from patchgate.services.campaigns import views

    return [views.status(ctx, c.id) for c in views.all_campaigns(ctx)]


@dataclass(frozen=True)
class CampaignPlan:
    """A campaign's stages with their gates, as created."""

    id: int
    product: str
    created_at: datetime
    stages: Sequence[dict[str, Any]]


def campaign_plans(ctx: Context) -> list[CampaignPlan]:
    """Every campaign's plan, read a page of stored campaigns at a time (no figures)."""
    out: list[CampaignPlan] = []
    after = 0
    with ctx.read_uow() as uow:
        while True:
            page = uow.campaigns.page(after_id=after, limit=PLAN_PAGE)
            out.extend(CampaignPlan(c.id, c.product, c.created_at, c.stages) for c in page)
            if len(page) < PLAN_PAGE:
                return out
            after = page[-1].id


# How recently a device polled to count as seen on the dashboard.
SEEN_WITHIN = timedelta(days=1)
_census: dict[tuple[int, tuple[str, ...]], tuple[float, Census]] = {}


def census(
    ctx: Context, hardware: Sequence[str], keys: Sequence[str], suffix: str,
    values: Sequence[str], *, max_age: float = 0.0,
) -> Census:  # fmt: skip
    """The devices in service, those seen within ``SEEN_WITHIN``, and per hardware model:
    devices in service and those reporting an update scheme. The count reads every
    device's attributes; with ``max_age`` this process reuses a count that young (the
    console: the share of A/B devices moves slowly, and the dashboard asks for it and for
    the devices seen on every load, from this one read)."""
    from patchgate.services.devices import DEFAULT_TENANT

    key = (id(ctx), tuple(hardware))
    kept = _census.get(key)
    if kept is not None and time.monotonic() - kept[0] < max_age:
        return kept[1]
    since = ctx.clock() - SEEN_WITHIN
    with ctx.read_uow() as uow:
        found = uow.fleet.census(DEFAULT_TENANT, since, hardware, keys, suffix, values)
    _census[key] = (time.monotonic(), found)
    return found


def devices(ctx: Context) -> Sequence[DeviceRecord]:
    """Every device of the default tenant."""
    from patchgate.services import devices as device_service

    return list(device_service.iter_devices(ctx))


def audit_entries(ctx: Context, action: str, *, limit: int = 1000) -> Sequence[AuditRecord]:
    """The newest audit entries whose action starts with ``action``."""
    return audit_service.entries(ctx, action_prefix=action, limit=limit)


def audit_head(ctx: Context) -> tuple[int, Finding | None]:
    """The audit chain's length and the first problem ``audit verify`` finds (None: intact)."""
    return audit_service.verify(ctx)


def sla_report(ctx: Context) -> SlaReport:
    """The register's SLA figures (``report sla``)."""
    return vuln_views.sla_report(ctx)


@dataclass(frozen=True)
class Trust:
    """The TUF trust status (None: no repository yet) with, from the published root
    metadata, each top-level role's threshold and key count and the root's expiry
    (``roles`` None: the root metadata could not be read)."""

    status: TrustView | None
    roles: Mapping[str, tuple[int, int]] | None  # role: (threshold, keys)
    root_expires: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The technical file's ``data/distribution.json``."""
        status = release_shapes.trust_json(self.status) if self.status is not None else {}
        if self.roles is None:
            return {**status, "roles": {}}
        roles = {n: {"threshold": t, "keys": k} for n, (t, k) in self.roles.items()}
        return {**status, "roles": roles, "root_expires": self.root_expires}


def trust(ctx: Context) -> Trust:
    """The TUF trust status, with each top-level role's threshold, key count and expiry
    from the published root metadata."""
    view = release_views.trust_status(ctx)
    try:
        signed = json.loads(ctx.trust.metadata_bytes("root.json"))["signed"]
    except (PatchgateError, ValueError, KeyError):
        return Trust(view, None)
    roles = {
        name: (role["threshold"], len(role["keyids"])) for name, role in signed["roles"].items()
    }
    return Trust(view, roles, signed.get("expires"))


def sbom(ctx: Context, release: ReleaseRecord) -> Path | None:
    """The local file of a release's SBOM, or None."""
    if release.sbom_sha256 is None:
        return None
    return release_service.sbom_blob(ctx, release.id)[1]


def checkpoints(ctx: Context) -> Sequence[Checkpoint]:
    """The audit log's signed checkpoints, as journalled."""
    return ctx.checkpoint_journal.read().checkpoints
