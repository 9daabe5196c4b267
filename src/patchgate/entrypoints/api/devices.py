"""Management API of the fleet: devices, their groups, actions (assign, cancel), health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from patchgate.domain.clock import rfc3339
from patchgate.entrypoints.api.deps import Admin, ReleaseManager, Viewer
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.services import actions as action_service
from patchgate.services import ddi
from patchgate.services import devices as device_service
from patchgate.services.context import Context
from patchgate.services.device_ports import ActionEventRecord, ActionRecord, DeviceRecord

router = APIRouter(tags=["devices"], route_class=StrictRoute)


def device_json(device: DeviceRecord) -> dict[str, Any]:
    """The ``device show --json`` shape (INTERFACES.md), with more fields."""
    return {
        "id": device.controller_id,
        "tenant": device.tenant,
        "groups": list(device.groups),
        "hardware": device.hardware,
        "installed_version": device.installed_version,
        "last_seen": rfc3339(device.last_seen),
        "registered_at": rfc3339(device.registered_at),
        "attributes": device.attributes,
        "open_action": device.open_action_id,
        "auto_confirm": device.auto_confirm,
    }


def action_json(action: ActionRecord) -> dict[str, Any]:
    return {
        "id": action.id,
        "release_id": action.release_id,
        "campaign_id": action.campaign_id,
        "source": action.source,
        "status": action.status,
        "active": action.active,
        "download": action.download_type,
        "update": action.update_type,
        "maintenance_window": {
            "start": rfc3339(action.window_start),
            "end": rfc3339(action.window_end),
        }
        if action.window_start
        else None,
        "result": action.result,
        "last_execution": action.last_execution,
        "progress": {"cnt": action.progress_cnt, "of": action.progress_of},
        "created_at": rfc3339(action.created_at),
        "updated_at": rfc3339(action.updated_at),
        "closed_at": rfc3339(action.closed_at),
        "created_by": action.created_by,
    }


def event_json(event: ActionEventRecord) -> dict[str, Any]:
    return {
        "at": rfc3339(event.at),
        "channel": event.channel,
        "execution": event.execution,
        "finished": event.finished,
        "progress": {"cnt": event.progress_cnt, "of": event.progress_of},
        "code": event.code,
        "details": list(event.details),
        "status": event.status_after,
    }


class NewDeviceBody(BaseModel):
    id: str = Field(description="The DDI controllerId")
    groups: list[str] = Field(default_factory=list)
    hardware: str | None = None
    version: str | None = None


@router.get("/devices")
def list_devices(caller: Viewer, group: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """Devices of the default tenant, by ID."""
    found = device_service.list_devices(caller.ctx, group=group, limit=min(max(limit, 1), 10_000))
    return {"devices": [device_json(d) for d in found]}


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
    return {**device_json(made.device), "token": made.token}


@router.post("/devices/import", status_code=201)
def import_devices(
    caller: ReleaseManager,
    source: str = Body(..., media_type="text/csv", description="CSV id,groups,hardware,version"),
) -> dict[str, Any]:
    """Provision many devices in one transaction (all or none)."""
    made = device_service.import_devices(
        caller.ctx, device_service.parse_csv(source), actor=caller.actor
    )
    return {"devices": [{"id": m.device.controller_id, "token": m.token} for m in made]}


def device_detail_json(
    ctx: Context, controller_id: str, tenant: str = device_service.DEFAULT_TENANT
) -> dict[str, Any]:
    """``device show --json`` and ``GET /devices/{id}``: the device, its actions and its
    newest health reports."""
    device = device_service.show_device(ctx, controller_id, tenant=tenant)
    body = device_json(device)
    body["actions"] = [
        action_json(a) for a in action_service.device_actions(ctx, controller_id, tenant=tenant)
    ]
    body["health"] = [
        {
            "at": rfc3339(h.at),
            "release_id": h.release_id,
            "running_version": h.running_version,
            "boot_count": h.boot_count,
            "uptime_s": h.uptime_s,
            "crash_count": h.crash_count,
            "watchdog_count": h.watchdog_count,
            "metrics": h.metrics,
        }
        for h in ddi.device_health(ctx, device.id)
    ]
    return body


@router.get("/devices/{controller_id}")
def show_device(caller: Viewer, controller_id: str) -> dict[str, Any]:
    return device_detail_json(caller.ctx, controller_id)


class TagBody(BaseModel):
    groups: list[str]
    remove: bool = False


@router.post("/devices/{controller_id}/groups")
def tag_device(caller: ReleaseManager, controller_id: str, body: TagBody) -> dict[str, Any]:
    """Add the device to groups (or take it out with ``remove``)."""
    device = device_service.tag_device(
        caller.ctx, controller_id, body.groups, remove=body.remove, actor=caller.actor
    )
    return device_json(device)


class AssignBody(BaseModel):
    release_id: int
    type: str = Field("forced", description="forced | soft | downloadonly")
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
    return action_json(action)


@router.get("/devices/{controller_id}/actions")
def device_actions(caller: Viewer, controller_id: str) -> dict[str, Any]:
    return {
        "actions": [
            action_json(a) for a in action_service.device_actions(caller.ctx, controller_id)
        ]
    }


@router.get("/actions/{action_id}")
def show_action(caller: Viewer, action_id: int) -> dict[str, Any]:
    detail = action_service.get_action(caller.ctx, action_id)
    return {**action_json(detail.action), "events": [event_json(e) for e in detail.events]}


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
    return action_json(action)


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
