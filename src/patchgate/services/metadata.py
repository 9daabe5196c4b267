"""Operator metadata on devices and releases (docs/device-filters.md "Metadata"): set and
unset one key at a time under the record's row lock, audited in the same transaction. The
bounds are the domain's (``domain.metadata``). A device's metadata is read by device
queries (``metadata.KEY``) and so by the poll of a campaign that targets a query; it
lives in the device's row, so a change needs no cache to be rebuilt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from patchgate.domain import filters
from patchgate.domain import metadata as rules
from patchgate.domain.errors import NotFound
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.device_ports import DEFAULT_TENANT, DeviceRecord
from patchgate.services.release_ports import ReleaseRecord

__all__ = [
    "release_matches",
    "set_device",
    "set_release",
    "unset_device",
    "unset_release",
]


@dataclass(frozen=True)
class _Change:
    key: str
    value: str | None  # None: unset


def _device(
    ctx: Context, controller_id: str, change: _Change, tenant: str, actor: str
) -> DeviceRecord:
    with ctx.uow() as uow:
        device = uow.devices.get(tenant, controller_id, lock=True)
        if device is None or device.removed_at is not None:
            raise NotFound(f"no device {controller_id!r}")
        what = f"device {controller_id}"
        if change.value is None:
            new = rules.without_entry(device.metadata, change.key, what=what)
        else:
            new = rules.with_entry(device.metadata, change.key, change.value)
        uow.targeting.set_device_metadata(device.id, new)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="device.metadata.unset" if change.value is None else "device.metadata.set",
            subject=f"device:{tenant}/{controller_id}",
            details={
                "key": change.key,
                "value": change.value,
                "was": device.metadata.get(change.key),
            },
        )
        fresh = uow.devices.get(tenant, controller_id)
        uow.commit()
    assert fresh is not None
    return fresh


def set_device(
    ctx: Context,
    controller_id: str,
    key: str,
    value: str,
    *,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> DeviceRecord:
    """Set one metadata key of a device (``device meta set``)."""
    return _device(ctx, controller_id, _Change(rules.check_key(key), value), tenant, actor)


def unset_device(
    ctx: Context, controller_id: str, key: str, *, tenant: str = DEFAULT_TENANT, actor: str
) -> DeviceRecord:
    """Remove one metadata key of a device (``device meta unset``)."""
    return _device(ctx, controller_id, _Change(key, None), tenant, actor)


def _release(ctx: Context, release_id: int, change: _Change, actor: str) -> ReleaseRecord:
    with ctx.uow() as uow:
        release = uow.releases.get(release_id, lock=True)
        if release is None:
            raise NotFound(f"no release {release_id}")
        what = f"release {release_id}"
        if change.value is None:
            new = rules.without_entry(release.metadata, change.key, what=what)
        else:
            new = rules.with_entry(release.metadata, change.key, change.value)
        uow.targeting.set_release_metadata(release.id, new)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="release.metadata.unset" if change.value is None else "release.metadata.set",
            subject=f"release:{release_id}",
            details={
                "key": change.key,
                "value": change.value,
                "was": release.metadata.get(change.key),
            },
        )
        fresh = uow.releases.get(release_id)
        uow.commit()
    assert fresh is not None
    return fresh


def set_release(
    ctx: Context, release_id: int, key: str, value: str, *, actor: str
) -> ReleaseRecord:
    """Set one metadata key of a release (``release meta set``)."""
    return _release(ctx, release_id, _Change(rules.check_key(key), value), actor)


def unset_release(ctx: Context, release_id: int, key: str, *, actor: str) -> ReleaseRecord:
    """Remove one metadata key of a release (``release meta unset``)."""
    return _release(ctx, release_id, _Change(key, None), actor)


def parse_pairs(texts: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` conditions (``release list --metadata``), checked."""
    return tuple(rules.parse_pair(t) for t in texts)


def release_matches(metadata: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> bool:
    """Whether a release's metadata meets every ``(key, value)`` condition; ``*`` in a
    value is a wildcard, as in device queries."""
    return all(
        (have := metadata.get(key)) is not None and filters.wildcard_match(have, want)
        for key, want in pairs
    )
