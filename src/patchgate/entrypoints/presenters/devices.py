"""The fleet as JSON (the management API and ``--json`` alike) and as text.

The JSON fields are part of the contract scripts rely on (docs/cli.md): ``device show
--json`` and ``GET /api/v1/devices/{id}`` print the same object."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.entrypoints.presenters.text import NONE, cell, fields, table
from patchgate.services.device_ports import (
    ActionEventRecord,
    ActionRecord,
    DeviceRecord,
    HealthRecord,
)
from patchgate.services.devices.views import DeviceDetail, DevicePage

__all__ = [
    "DEVICE_COLUMNS",
    "action_detail_json",
    "action_json",
    "action_text",
    "device_detail_json",
    "device_detail_text",
    "device_json",
    "device_page_json",
    "device_rows_text",
    "event_json",
    "health_json",
    "imported_json",
    "provisioned_json",
    "removed_json",
]

DEVICE_COLUMNS = ("ID", "HARDWARE", "VERSION", "GROUPS", "LAST SEEN")


def device_json(device: DeviceRecord) -> dict[str, Any]:
    """A device: ``id``, ``tenant``, ``groups``, ``hardware``, ``installed_version``,
    ``last_seen``, ``registered_at``, ``attributes``, ``open_action``, ``auto_confirm``,
    ``removed_at`` (null unless the device was removed), ``metadata`` (the operator's
    key/value pairs)."""
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
        "removed_at": rfc3339(device.removed_at),
        "metadata": dict(device.metadata),
    }


def provisioned_json(device: DeviceRecord, token: str) -> dict[str, Any]:
    """A device just provisioned, with its target token (shown this once)."""
    return {**device_json(device), "token": token}


def removed_json(device: DeviceRecord, cancelled_actions: Sequence[int]) -> dict[str, Any]:
    """A device just removed, with the actions closed as cancelled with it."""
    return {**device_json(device), "cancelled_actions": list(cancelled_actions)}


def imported_json(made: Iterable[tuple[DeviceRecord, str]]) -> dict[str, Any]:
    """``device import``: ``{"devices": [{"id", "token"}, …]}``."""
    return {"devices": [{"id": d.controller_id, "token": token} for d, token in made]}


def device_page_json(page: DevicePage) -> dict[str, Any]:
    """A page of devices; ``next_after`` is the ``after`` of the next page (null: the end)."""
    return {"devices": [device_json(d) for d in page.devices], "next_after": page.next_after}


def action_json(action: ActionRecord) -> dict[str, Any]:
    """An action (a release offered to a device) and where it stands."""
    window = (
        {"start": rfc3339(action.window_start), "end": rfc3339(action.window_end)}
        if action.window_start
        else None
    )
    return {
        "id": action.id,
        "release_id": action.release_id,
        "campaign_id": action.campaign_id,
        "source": action.source,
        "status": action.status,
        "active": action.active,
        "download": action.download_type,
        "update": action.update_type,
        "maintenance_window": window,
        "result": action.result,
        "last_execution": action.last_execution,
        "progress": {"cnt": action.progress_cnt, "of": action.progress_of},
        "created_at": rfc3339(action.created_at),
        "updated_at": rfc3339(action.updated_at),
        "closed_at": rfc3339(action.closed_at),
        "created_by": action.created_by,
    }


def event_json(event: ActionEventRecord) -> dict[str, Any]:
    """One entry of an action's history."""
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


def action_detail_json(action: ActionRecord, events: Sequence[ActionEventRecord]) -> dict[str, Any]:
    """An action with its history, oldest entry first."""
    return {**action_json(action), "events": [event_json(e) for e in events]}


def health_json(report: HealthRecord) -> dict[str, Any]:
    """One health report of a device."""
    return {
        "at": rfc3339(report.at),
        "release_id": report.release_id,
        "running_version": report.running_version,
        "boot_count": report.boot_count,
        "uptime_s": report.uptime_s,
        "crash_count": report.crash_count,
        "watchdog_count": report.watchdog_count,
        "metrics": report.metrics,
    }


def device_detail_json(detail: DeviceDetail) -> dict[str, Any]:
    """``device show --json`` and ``GET /api/v1/devices/{id}``: the device, its actions and
    its newest health reports."""
    body = device_json(detail.device)
    body["actions"] = [action_json(a) for a in detail.actions]
    body["health"] = [health_json(h) for h in detail.health]
    return body


def device_rows_text(
    devices: Iterable[DeviceRecord], *, widths: list[int], header: bool
) -> list[str]:
    """Lines of the ``device list`` table for one page (``widths`` carries the alignment
    from page to page)."""
    rows = [
        (d.controller_id, d.hardware, d.installed_version, d.groups, d.last_seen or "never")
        for d in devices
    ]
    return table(DEVICE_COLUMNS, rows, widths=widths, header=header)


def action_text(action: ActionRecord) -> str:
    """One line about an action."""
    line = f"action {action.id}: release {action.release_id} {action.status}"
    if action.campaign_id is not None:
        line += f" (campaign {action.campaign_id})"
    return line


def device_detail_text(detail: DeviceDetail) -> list[str]:
    """``device show``: the device's fields, then its actions and newest health report."""
    d = detail.device
    lines = fields(
        [
            ("id", d.controller_id),
            ("tenant", d.tenant),
            ("groups", d.groups),
            ("hardware", d.hardware),
            ("installed version", d.installed_version),
            ("last seen", d.last_seen or "never"),
            ("registered", d.registered_at),
            ("open action", d.open_action_id),
            ("auto-confirm", d.auto_confirm),
            ("attributes", d.attributes),
            ("metadata", dict(d.metadata)),
            *([("removed", d.removed_at)] if d.removed_at else []),
        ]
    )
    if detail.actions:
        lines.append("actions:")
        rows = [(a.id, a.release_id, a.campaign_id, a.status, a.updated_at) for a in detail.actions]
        lines += [
            "  " + row for row in table(("ID", "RELEASE", "CAMPAIGN", "STATUS", "UPDATED"), rows)
        ]
    else:
        lines.append("actions: none")
    if detail.health:
        h = detail.health[0]
        lines.append(
            f"newest health report: {cell(h.at)} running {h.running_version or NONE}, "
            f"boots {cell(h.boot_count)}, crashes {cell(h.crash_count)}, "
            f"watchdog resets {cell(h.watchdog_count)}"
        )
    return lines
