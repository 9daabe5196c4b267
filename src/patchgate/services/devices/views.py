"""Read models of the fleet registry (docs/devices.md): frozen snapshots, each read in one
read-only unit of work; lists are keyset-paged by controllerId, so a fleet of any size is
walked a page at a time without loading the table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from patchgate.domain.errors import NotFound
from patchgate.services.context import Context
from patchgate.services.device_ports import (
    DEFAULT_TENANT,
    ActionRecord,
    DeviceRecord,
    HealthRecord,
)
from patchgate.services.devices import saved_filters

__all__ = [
    "MAX_PAGE",
    "DeviceDetail",
    "DevicePage",
    "device_detail",
    "device_page",
    "iter_devices",
    "show_device",
]

MAX_PAGE = 10_000


@dataclass(frozen=True)
class DevicePage:
    """One page of devices by controllerId; ``next_after`` continues it (None: the end)."""

    devices: tuple[DeviceRecord, ...]
    next_after: str | None


@dataclass(frozen=True)
class DeviceDetail:
    """A device with its newest actions and health reports (newest first)."""

    device: DeviceRecord
    actions: tuple[ActionRecord, ...]
    health: tuple[HealthRecord, ...]


def device_page(
    ctx: Context,
    *,
    tenant: str = DEFAULT_TENANT,
    group: str | None = None,
    after: str | None = None,
    limit: int = 1000,
    query: str | None = None,
) -> DevicePage:
    """Devices of a tenant (optionally of one group, or matching a device query in
    hawkBit's target-filter language, or ``@NAME`` for a saved filter:
    docs/device-filters.md) whose controllerId sorts
    after ``after``, at most ``limit`` (1 to ``MAX_PAGE``) of them. A malformed query is
    ``InvalidInput`` naming the position of the problem."""
    size = min(max(limit, 1), MAX_PAGE)
    resolved = saved_filters.resolve(ctx, query, tenant=tenant) if query else None
    expr = resolved.expression if resolved is not None else None
    with ctx.read_uow() as uow:
        # One more than asked tells whether another page follows, without a count.
        found = uow.devices.list(tenant, group=group, after=after, limit=size + 1, query=expr)
    devices = tuple(found[:size])
    more = len(found) > size
    return DevicePage(devices, devices[-1].controller_id if more and devices else None)


def iter_devices(
    ctx: Context,
    *,
    tenant: str = DEFAULT_TENANT,
    group: str | None = None,
    page_size: int = 1000,
    query: str | None = None,
) -> Iterator[DeviceRecord]:
    """Every device of a tenant (or group, or query) by controllerId, a page per read."""
    after: str | None = None
    while True:
        page = device_page(
            ctx, tenant=tenant, group=group, after=after, limit=page_size, query=query
        )
        yield from page.devices
        if page.next_after is None:
            return
        after = page.next_after


def show_device(ctx: Context, controller_id: str, *, tenant: str = DEFAULT_TENANT) -> DeviceRecord:
    """One device, or ``NotFound``."""
    with ctx.read_uow() as uow:
        device = uow.devices.get(tenant, controller_id)
    if device is None:
        raise NotFound(f"no device {controller_id!r}")
    return device


def device_detail(
    ctx: Context,
    controller_id: str,
    *,
    tenant: str = DEFAULT_TENANT,
    actions: int = 50,
    health: int = 50,
) -> DeviceDetail:
    """A device with its newest ``actions`` actions and ``health`` health reports, read in
    one snapshot; ``NotFound`` if there is no such device."""
    with ctx.read_uow() as uow:
        device = uow.devices.get(tenant, controller_id)
        if device is None:
            raise NotFound(f"no device {controller_id!r}")
        return DeviceDetail(
            device,
            tuple(uow.actions.for_device(device.id, limit=actions)),
            tuple(uow.health.for_device(device.id, limit=health)),
        )
