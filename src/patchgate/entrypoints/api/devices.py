"""Management API of the fleet: devices, their groups, actions (assign, cancel), health.
JSON shapes come from ``entrypoints/presenters/devices``, shared with the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query
from pydantic import BaseModel, Field

from patchgate.domain.errors import InvalidInput
from patchgate.entrypoints.api import constraints as rule
from patchgate.entrypoints.api.deps import Admin, ReleaseManager, Viewer
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import devices as present
from patchgate.services import actions as action_service
from patchgate.services import ddi
from patchgate.services import devices as device_service
from patchgate.services.devices.views import MAX_PAGE

router = APIRouter(tags=["devices"], route_class=StrictRoute)


# A group name, as the document states it.
Group = Annotated[str, Field(json_schema_extra=rule.pattern(rule.GROUP))]


class NewDeviceBody(BaseModel):
    id: str = Field(
        description="The DDI controllerId", json_schema_extra=rule.pattern(rule.CONTROLLER_ID)
    )
    groups: list[Group] = Field(default_factory=list)
    hardware: str | None = Field(
        None,
        description="A hardware model the policy names",
        json_schema_extra=rule.pattern(rule.HARDWARE),
    )
    version: str | None = Field(
        None,
        description="The installed version, e.g. 1.4.2",
        json_schema_extra=rule.pattern(rule.VERSION),
    )


@router.get("/devices")
def list_devices(
    caller: Viewer,
    group: str | None = None,
    after: Annotated[
        str | None, Query(description="Continue after this device ID (``next_after``)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    filter: Annotated[  # hawkBit's own name for the target-filter query
        str | None,
        Query(
            max_length=4096,
            description="A device query in hawkBit's target-filter language, e.g. "
            "``group==qa;version<1.4`` (a malformed one: 422 naming the position)",
        ),
    ] = None,
) -> dict[str, Any]:
    """A page of the default tenant's devices by ID; ``next_after`` continues it."""
    page = device_service.device_page(
        caller.ctx, group=group, after=after, limit=limit, query=filter
    )
    return present.device_page_json(page)


@router.post("/devices", status_code=201)
def add_device(caller: ReleaseManager, body: NewDeviceBody) -> dict[str, Any]:
    """Provision a device; the answer holds its target token, shown this once."""
    made = device_service.add_device(
        caller.ctx,
        body.id,
        groups=body.groups,
        hardware=body.hardware,
        version=body.version,
        actor=caller.actor,
    )
    return present.provisioned_json(made.device, made.token)


@router.post("/devices/import", status_code=201)
def import_devices(
    caller: ReleaseManager,
    source: str = Body(
        ..., media_type="text/csv", description="CSV id,groups,hardware,version", min_length=1
    ),
    content_type: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Provision many devices in one transaction (all or none). The body is CSV, sent as
    ``text/csv``: anything else (JSON such as ``null``, a form) is refused, not read as a
    device list."""
    if (content_type or "").split(";")[0].strip().lower() != "text/csv":
        raise InvalidInput("send the device list as CSV with Content-Type: text/csv")
    made = device_service.import_devices(
        caller.ctx, device_service.parse_csv(source), actor=caller.actor
    )
    return present.imported_json((m.device, m.token) for m in made)


@router.get("/devices/{controller_id}")
def show_device(caller: Viewer, controller_id: str) -> dict[str, Any]:
    """The device, its newest actions and health reports."""
    return present.device_detail_json(device_service.device_detail(caller.ctx, controller_id))


@router.delete("/devices/{controller_id}")
def remove_device(
    caller: ReleaseManager,
    controller_id: str,
    reason: Annotated[str, Query(description="Why (kept in the audit log)")] = "",
) -> dict[str, Any]:
    """Decommission a device: its token stops at once, its open actions are cancelled, its
    history (actions, health, audit) stays; ``removed_at`` says when."""
    done = device_service.remove_device(
        caller.ctx, controller_id, reason=reason, actor=caller.actor
    )
    return present.removed_json(done.device, done.cancelled_actions)


@router.post("/devices/{controller_id}/token")
def rotate_token(caller: ReleaseManager, controller_id: str) -> dict[str, Any]:
    """A new target token for the device, shown this once; the old one stops at once."""
    done = device_service.rotate_token(caller.ctx, controller_id, actor=caller.actor)
    return present.provisioned_json(done.device, done.token)


class TagBody(BaseModel):
    groups: list[Group] = Field(min_length=1)
    remove: bool = False


@router.post("/devices/{controller_id}/groups")
def tag_device(caller: ReleaseManager, controller_id: str, body: TagBody) -> dict[str, Any]:
    """Add the device to groups (or take it out with ``remove``)."""
    device = device_service.tag_device(
        caller.ctx, controller_id, body.groups, remove=body.remove, actor=caller.actor
    )
    return present.device_json(device)


class AssignBody(BaseModel):
    release_id: int
    type: str = Field(
        "forced",
        description="forced | soft | downloadonly",
        json_schema_extra=rule.enum(rule.ACTION_TYPES),
    )
    confirmation_required: bool = False
    maintenance_window_start: datetime | None = None
    maintenance_window_end: datetime | None = None


@router.post("/devices/{controller_id}/actions", status_code=201)
def assign(caller: ReleaseManager, controller_id: str, body: AssignBody) -> dict[str, Any]:
    """Offer a release to one device directly, outside any campaign."""
    action = action_service.assign(
        caller.ctx,
        controller_id,
        body.release_id,
        action_type=body.type,
        confirmation_required=body.confirmation_required,
        window_start=body.maintenance_window_start,
        window_end=body.maintenance_window_end,
        actor=caller.actor,
    )
    return present.action_json(action)


@router.get("/devices/{controller_id}/actions")
def device_actions(caller: Viewer, controller_id: str) -> dict[str, Any]:
    """The device's actions, newest first."""
    found = action_service.device_actions(caller.ctx, controller_id)
    return {"actions": [present.action_json(a) for a in found]}


@router.get("/actions/{action_id}")
def show_action(caller: Viewer, action_id: int) -> dict[str, Any]:
    """An action with its history."""
    detail = action_service.get_action(caller.ctx, action_id)
    return present.action_detail_json(detail.action, detail.events)


class CancelBody(BaseModel):
    reason: str = ""


@router.post("/actions/{action_id}/cancel")
def cancel_action(
    caller: ReleaseManager, action_id: int, body: CancelBody | None = None
) -> dict[str, Any]:
    """Cancel an action (closed at once if never accepted, else through cancelAction)."""
    action = action_service.cancel(
        caller.ctx, action_id, reason=body.reason if body else "", actor=caller.actor
    )
    return present.action_json(action)


@router.get("/releases/{release_id}/health")
def release_health(caller: Viewer, release_id: int) -> dict[str, Any]:
    """Health reports of devices running a release (what the campaign gates read)."""
    reports = ddi.release_health(caller.ctx, release_id)
    return {
        "release_id": release_id,
        "reports": len(reports),
        "devices": len({r.device_id for r in reports}),
        "crash_count": sum(r.crash_count or 0 for r in reports),
        "watchdog_count": sum(r.watchdog_count or 0 for r in reports),
    }


@router.post("/ddi/gateway-token")
def gateway_token(caller: Admin) -> dict[str, Any]:
    """A new gateway token for the default tenant, shown this once."""
    return {
        "tenant": device_service.DEFAULT_TENANT,
        "token": device_service.create_gateway_token(caller.ctx, actor=caller.actor),
    }


@router.delete("/ddi/gateway-token", status_code=204)
def revoke_gateway_token(caller: Admin) -> None:
    """``ddi gateway-token --revoke``: forget the default tenant's gateway token at once."""
    device_service.revoke_gateway_token(caller.ctx, actor=caller.actor)


class AnonymousBody(BaseModel):
    enabled: bool = Field(description="Allow unauthenticated DDI (labs only)")


@router.put("/ddi/anonymous")
def anonymous_ddi(caller: Admin, body: AnonymousBody) -> dict[str, Any]:
    """``ddi anonymous on|off``: allow (labs only) or forbid unauthenticated DDI for the
    default tenant."""
    device_service.set_anonymous(caller.ctx, body.enabled, actor=caller.actor)
    return {"tenant": device_service.DEFAULT_TENANT, "anonymous": body.enabled}
