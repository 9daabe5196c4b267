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
from patchgate.services.unit_of_work import UnitOfWork

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

    def applied(self, current: Mapping[str, str], *, what: str) -> dict[str, str]:
        """``current`` with this change made (refused past the bounds or for no such key)."""
        if self.value is None:
            return rules.without_entry(current, self.key, what=what)
        return rules.with_entry(current, self.key, self.value)

    def audit(
        self,
        ctx: Context,
        uow: UnitOfWork,
        current: Mapping[str, str],
        *,
        kind: str,
        subject: str,
        actor: str,
    ) -> None:
        verb = "unset" if self.value is None else "set"
        audit.record(
            ctx,
            uow,
            actor=actor,
            action=f"{kind}.metadata.{verb}",
            subject=subject,
            details={"key": self.key, "value": self.value, "was": current.get(self.key)},
        )


def _device(
    ctx: Context, controller_id: str, change: _Change, tenant: str, actor: str
) -> DeviceRecord:
    with ctx.uow() as uow:
        device = uow.devices.get(tenant, controller_id, lock=True)
        if device is None or device.removed_at is not None:
            raise NotFound(f"no device {controller_id!r}")
        new = change.applied(device.metadata, what=f"device {controller_id}")
        uow.targeting.set_device_metadata(device.id, new)
        subject = f"device:{tenant}/{controller_id}"
        change.audit(ctx, uow, device.metadata, kind="device", subject=subject, actor=actor)
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
        new = change.applied(release.metadata, what=f"release {release_id}")
        uow.targeting.set_release_metadata(release.id, new)
        subject = f"release:{release_id}"
        change.audit(ctx, uow, release.metadata, kind="release", subject=subject, actor=actor)
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
