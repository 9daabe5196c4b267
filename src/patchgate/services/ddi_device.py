"""What a device tells about itself through DDI (``configData``, ``PUT installedBase``,
patchgate's health report) and the artifacts it may download (docs/ddi.md).

A version the device names in any of these is also evidence for the campaign gates: it
is kept as a bare health sample of that version, which is how a client that reports
success before it reboots is confirmed once it comes back on the new release
(docs/campaigns.md, "What counts as success")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from patchgate.domain import actions as rules
from patchgate.domain.errors import InvalidInput, NotFound
from patchgate.services import actions
from patchgate.services.context import Context
from patchgate.services.ddi_auth import Caller
from patchgate.services.device_ports import (
    ActionRecord,
    ArtifactView,
    DeviceChanges,
    DeviceRecord,
    HealthRecord,
    NewActionRow,
    NewHealthReport,
    ReleaseView,
)

# configData keys that also set a device's hardware model, installed version, slot scheme.
HARDWARE_KEYS = ("hardware", "hw_model", "hwModel", "hardware_model", "model", "board")
VERSION_KEYS = ("version", "sw_version", "swVersion", "fw_version", "installed_version")
MAX_ATTRIBUTES = 100
MAX_KEY = 128
MAX_VALUE = 512


def _attributes(
    current: Mapping[str, str], data: Mapping[str, str | None], mode: str
) -> dict[str, str]:
    """hawkBit's update modes; in ``merge`` and ``replace`` a ``null`` value removes the
    key, in ``remove`` only the keys count."""
    if mode == "remove":
        return {k: v for k, v in current.items() if k not in data}
    result = dict(current) if mode == "merge" else {}
    for key, value in data.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def config_data(ctx: Context, caller: Caller, data: Mapping[str, str | None], mode: str) -> None:
    """``configData``: merge (default), replace or remove the device's attributes; known
    keys also set its hardware model and installed version."""
    if mode not in ("merge", "replace", "remove"):
        raise InvalidInput(f"unknown mode {mode!r} (merge, replace, remove)")
    for key, value in data.items():
        if not key or len(key) > MAX_KEY:
            raise InvalidInput(f"attribute names must be 1–{MAX_KEY} characters")
        if value is not None and len(value) > MAX_VALUE:
            raise InvalidInput(f"attribute {key!r} is over {MAX_VALUE} characters")
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id, lock=True)
        assert device is not None
        attributes = _attributes(device.attributes, data, mode)
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidInput(f"a device keeps at most {MAX_ATTRIBUTES} attributes")
        changes = DeviceChanges(attributes=attributes, config_requested=False)
        if mode != "remove":
            hardware = next((data[k] for k in HARDWARE_KEYS if data.get(k)), None)
            version = next((data[k] for k in VERSION_KEYS if data.get(k)), None)
            if hardware:
                changes = replace(changes, hardware=hardware[:128])
            if version:
                changes = replace(changes, installed_version=version[:128])
                _seen(uow, device, version[:128], now, "configData")
        uow.devices.update(device.id, changes)
        uow.commit()


def _releases_for(
    uow: Any, device: DeviceRecord, name: str | None, version: str
) -> list[ReleaseView]:
    """Releases of ``version`` (of product ``name``, if given) that fit the device's
    hardware (a release or device without hardware fits any)."""
    return [
        r
        for r in uow.catalog.find(name, version)
        if not r.hardware or not device.hardware or device.hardware in r.hardware
    ]


def _seen(uow: Any, device: DeviceRecord, version: str, now: datetime, source: str) -> None:
    """Keep "the device runs ``version`` now" as a bare health sample (no telemetry)."""
    candidates = _releases_for(uow, device, None, version)
    uow.health.add(
        NewHealthReport(
            device_id=device.id,
            release_id=candidates[0].id if len(candidates) == 1 else None,
            at=now,
            running_version=version,
            boot_count=None,
            uptime_s=None,
            crash_count=None,
            watchdog_count=None,
            metrics={"reported_by": source},
        )
    )


@dataclass(frozen=True)
class OfflineInstall:
    """``PUT installedBase``'s outcome: the action that records it, and whether this
    call created it (hawkBit answers 201 then, 200 when it was already recorded)."""

    action: ActionRecord
    created: bool


def installed_version(
    ctx: Context, caller: Caller, name: str | None, version: str
) -> OfflineInstall:
    """``PUT installedBase``: the device installed a release offline; record it as a
    closed, successful action, unless the device already runs that release by a recorded
    action. 404 when no such release is known."""
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id, lock=True)
        assert device is not None
        releases = _releases_for(uow, device, name, version)
        if not releases:
            raise NotFound(f"no release {name + ' ' if name else ''}{version}")
        release = releases[0]
        _seen(uow, device, release.version, now, "installedBase")
        current = (
            uow.actions.get(device.installed_action_id) if device.installed_action_id else None
        )
        if current is not None and current.release_id == release.id:
            uow.commit()
            return OfflineInstall(current, created=False)
        action = actions.add_with_event(
            uow,
            NewActionRow(
                tenant_id=actions.tenant_id(uow, device),
                device_id=device.id,
                release_id=release.id,
                source="offline",
                status=rules.Status.FINISHED.value,
                active=False,
                download_type=rules.HandlingType.SKIP.value,
                update_type=rules.HandlingType.SKIP.value,
                result="success",
                created_at=now,
                updated_at=now,
                closed_at=now,
                created_by=f"device:{device.controller_id}",
                from_version=device.installed_version,
            ),
            "installed offline, reported through installedBase",
        )
        uow.devices.update(
            device.id,
            DeviceChanges(installed_version=release.version, installed_action_id=action.id),
        )
        uow.commit()
    return OfflineInstall(action, created=True)


@dataclass(frozen=True)
class Health:
    """One health report, validated by the entrypoint."""

    running_version: str | None = None
    boot_count: int | None = None
    uptime_s: float | None = None
    crash_count: int | None = None
    watchdog_count: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def report_health(ctx: Context, caller: Caller, report: Health) -> int | None:
    """Store a health report, tied to the release the device runs (by the running version,
    else the installed one); returns that release's id, if known."""
    now = ctx.clock()
    with ctx.uow() as uow:
        device = uow.devices.get_by_id(caller.device_id)
        assert device is not None
        version = report.running_version or device.installed_version
        release_id: int | None = None
        if device.installed_action_id is not None:
            last = uow.actions.get(device.installed_action_id)
            release = uow.catalog.get(last.release_id) if last else None
            if release is not None and release.version == version:
                release_id = release.id
        if release_id is None and version:
            candidates = _releases_for(uow, device, None, version)
            release_id = candidates[0].id if len(candidates) == 1 else None
        uow.health.add(
            NewHealthReport(
                device_id=device.id,
                release_id=release_id,
                at=now,
                running_version=report.running_version,
                boot_count=report.boot_count,
                uptime_s=report.uptime_s,
                crash_count=report.crash_count,
                watchdog_count=report.watchdog_count,
                metrics=dict(report.metrics),
            )
        )
        uow.commit()
    return release_id


def release_health(
    ctx: Context, release_id: int, *, since: datetime | None = None
) -> list[HealthRecord]:
    """Health reports of devices running a release (input to the campaign gates)."""
    with ctx.read_uow() as uow:
        return list(uow.health.for_release(release_id, since=since))


def device_health(ctx: Context, device_id: int) -> list[HealthRecord]:
    """A device's newest health reports."""
    with ctx.read_uow() as uow:
        return list(uow.health.for_device(device_id))


def module_artifacts(ctx: Context, caller: Caller, module_id: int) -> ReleaseView:
    """``softwaremodules/{id}/artifacts``: the release (patchgate's one software module
    per release) when the device was offered it; else ``NotFound``, exactly as for a
    module that does not exist, so a device learns nothing about other releases."""
    with ctx.read_uow() as uow:
        release: ReleaseView | None = uow.catalog.get(module_id)
        offered = release is not None and any(
            a.release_id == module_id for a in uow.actions.for_device(caller.device_id, limit=1000)
        )
    if release is None or not offered:
        raise NotFound("no such software module")
    return release


def artifact_for(ctx: Context, caller: Caller, module_id: int, filename: str) -> ArtifactView:
    """An artifact the device may download: one of a release it was offered."""
    release = module_artifacts(ctx, caller, module_id)
    for artifact in release.artifacts:
        if artifact.filename == filename:
            return artifact
    raise NotFound("no such artifact")
