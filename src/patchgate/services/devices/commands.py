"""The fleet registry's commands (docs/devices.md): provisioning devices with target
tokens, groups and tags, gateway tokens and the anonymous lab mode of a tenant. Each
changes state in one unit of work, audits it, and returns what it made."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit
from patchgate.services import policy as policy_service
from patchgate.services.access import hash_token
from patchgate.services.context import Context
from patchgate.services.device_ports import DEFAULT_TENANT, DeviceRecord, NewDevice
from patchgate.services.devices.rows import DeviceRow, check_groups, check_row

__all__ = [
    "Provisioned",
    "add_device",
    "create_gateway_token",
    "import_devices",
    "new_target_token",
    "new_target_tokens",
    "revoke_gateway_token",
    "set_anonymous",
    "tag_device",
]


def new_target_token() -> str:
    """A fresh per-device token (128 random bits, hex, safe in any client config file)."""
    return secrets.token_hex(16)


def new_target_tokens(count: int) -> list[str]:
    """``count`` fresh tokens like :func:`new_target_token`, from one draw of random bytes
    (an import draws them a batch at a time)."""
    drawn = secrets.token_hex(16 * count)
    return [drawn[i : i + 32] for i in range(0, 32 * count, 32)]


@dataclass(frozen=True)
class Provisioned:
    """A device just provisioned, with its target token (shown once)."""

    device: DeviceRecord
    token: str


def add_device(
    ctx: Context,
    controller_id: str,
    *,
    groups: Sequence[str] = (),
    hardware: str | None = None,
    version: str | None = None,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> Provisioned:
    """Register a device in advance with a generated target token (stored hashed)."""
    row = DeviceRow(controller_id, tuple(groups), hardware, version)
    return import_devices(ctx, [row], tenant=tenant, actor=actor)[0]


def known_hardware(ctx: Context) -> frozenset[str]:
    """Hardware models the policy in force names (none: any model is accepted)."""
    try:
        policy = policy_service.in_force(ctx).policy
    except NotFound:
        return frozenset()
    return frozenset(model for product in policy.products for model in product.hardware)


def _checked(
    rows: Sequence[DeviceRow], known_hardware: frozenset[str]
) -> tuple[list[DeviceRow], list[str]]:
    """The rows that pass the checks, and one problem per row that does not (named by its
    CSV line, else by its position in a batch; a single device needs no name)."""
    problems: list[str] = []
    checked: list[DeviceRow] = []
    seen: set[str] = set()
    for index, row in enumerate(rows, start=1):
        if row.line is not None:
            where = f"line {row.line}: "
        else:
            where = f"device {index}: " if len(rows) > 1 else ""
        try:
            good = check_row(row, known_hardware)
        except InvalidInput as exc:
            problems.append(f"{where}{exc.message}")
            continue
        if good.controller_id in seen:
            problems.append(f"{where}device ID {good.controller_id!r} appears twice")
            continue
        seen.add(good.controller_id)
        checked.append(good)
    if not rows:
        problems.append("no devices given")
    return checked, problems


def _exists(controller_id: str, device: DeviceRecord) -> str:
    if device.removed_at is not None:
        return f"device {controller_id!r} was removed; a removed device's ID is not reused"
    return f"device {controller_id!r} already exists"


def import_devices(
    ctx: Context,
    rows: Sequence[DeviceRow],
    *,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> list[Provisioned]:
    """Provision many devices in one transaction: all of them, or (on any problem) none.
    Every problem is reported at once."""
    checked, problems = _checked(rows, known_hardware(ctx))
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    tokens = [new_target_token() for _ in checked]
    new = [
        NewDevice(r.controller_id, hash_token(t), r.hardware, r.version, r.groups)
        for r, t in zip(checked, tokens, strict=True)
    ]
    now = ctx.clock()
    out: list[Provisioned] = []
    with ctx.uow() as uow:
        record = uow.tenants.get(tenant)
        if record is None:
            raise NotFound(f"no tenant called {tenant!r}")
        found = [(d.controller_id, uow.devices.get(tenant, d.controller_id)) for d in new]
        existing = [_exists(cid, f) for cid, f in found if f is not None]
        if existing:
            raise Conflict(existing[0], problems=existing)
        ids = [uow.devices.add(record.id, d, now) for d in new]
        single = len(new) == 1
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="device.add" if single else "device.import",
            subject=f"device:{new[0].controller_id}" if single else f"tenant:{tenant}",
            details={"devices": [d.controller_id for d in new][:1000], "count": len(ids)},
        )
        for device_id, token in zip(ids, tokens, strict=True):
            device = uow.devices.get_by_id(device_id)
            assert device is not None
            out.append(Provisioned(device, token))
        uow.commit()
    return out


def tag_device(
    ctx: Context,
    controller_id: str,
    groups: Sequence[str],
    *,
    remove: bool = False,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> DeviceRecord:
    """Add the device to groups (or take it out of them with ``remove``)."""
    names = check_groups(groups)
    if not names:
        raise InvalidInput("name at least one group")
    with ctx.uow() as uow:
        device = uow.devices.get(tenant, controller_id, lock=True)
        if device is None:
            raise NotFound(f"no device {controller_id!r}")
        if device.removed_at is not None:
            raise Conflict(f"device {controller_id!r} was removed")
        current = set(device.groups)
        updated = current - set(names) if remove else current | set(names)
        uow.devices.set_groups(device.id, sorted(updated))
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="device.untag" if remove else "device.tag",
            subject=f"device:{controller_id}",
            details={"groups": list(names)},
        )
        result = uow.devices.get_by_id(device.id)
        uow.commit()
    assert result is not None
    return result


def create_gateway_token(ctx: Context, *, tenant: str = DEFAULT_TENANT, actor: str) -> str:
    """A new gateway token for the tenant (replacing any previous one), shown once. Devices
    presenting it may poll as any controllerId of the tenant and are registered on first
    poll."""
    token = secrets.token_hex(24)
    with ctx.uow() as uow:
        if uow.tenants.get(tenant) is None:
            raise NotFound(f"no tenant called {tenant!r}")
        uow.tenants.set_gateway_token_hash(tenant, hash_token(token))
        audit.record(
            ctx, uow, actor=actor, action="tenant.gateway_token", subject=f"tenant:{tenant}"
        )
        uow.commit()
    return token


def revoke_gateway_token(ctx: Context, *, tenant: str = DEFAULT_TENANT, actor: str) -> None:
    """Forget the tenant's gateway token."""
    with ctx.uow() as uow:
        if uow.tenants.get(tenant) is None:
            raise NotFound(f"no tenant called {tenant!r}")
        uow.tenants.set_gateway_token_hash(tenant, None)
        audit.record(
            ctx, uow, actor=actor, action="tenant.gateway_token_revoke", subject=f"tenant:{tenant}"
        )
        uow.commit()


def set_anonymous(ctx: Context, enabled: bool, *, tenant: str = DEFAULT_TENANT, actor: str) -> None:
    """Allow (labs only) or forbid unauthenticated DDI for the tenant. Off by default."""
    with ctx.uow() as uow:
        if uow.tenants.get(tenant) is None:
            raise NotFound(f"no tenant called {tenant!r}")
        uow.tenants.set_anonymous(tenant, enabled)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="tenant.anonymous_ddi",
            subject=f"tenant:{tenant}",
            details={"enabled": enabled},
        )
        uow.commit()
