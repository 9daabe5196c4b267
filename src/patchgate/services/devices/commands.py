"""The fleet registry: provisioning devices with target tokens, groups and tags, gateway
tokens and the anonymous lab mode of a tenant (PRODUCT.md §4, §10)."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit
from patchgate.services.access import hash_token
from patchgate.services.context import Context
from patchgate.services.device_ports import DeviceRecord, NewDevice

DEFAULT_TENANT = "DEFAULT"
# hawkBit accepts controllerIds up to 256 characters; a path segment must not need escaping.
_CONTROLLER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TEXT = re.compile(r"^[^\x00-\x1f]{1,128}$")


def new_target_token() -> str:
    """A fresh per-device token (128 random bits, hex, safe in any client config file)."""
    return secrets.token_hex(16)


def check_controller_id(controller_id: str) -> str:
    """The controllerId if it is usable in a DDI path, else ``InvalidInput``."""
    if not _CONTROLLER_ID.match(controller_id or ""):
        raise InvalidInput(
            f"device ID {controller_id!r} must be 1–128 characters of letters, digits and "
            "._:@- (starting with a letter or digit)"
        )
    return controller_id


def check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """Group names, checked and de-duplicated."""
    out: list[str] = []
    for group in groups:
        name = group.strip()
        if not _GROUP.match(name):
            raise InvalidInput(
                f"group {group!r} must be 1–64 characters of letters, digits and ._- "
                "(starting with a letter or digit)"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def _check_text(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not _TEXT.match(value):
        raise InvalidInput(f"{what} must be 1–128 printable characters")
    return value


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
    return import_devices(
        ctx, [(controller_id, tuple(groups), hardware, version)], tenant=tenant, actor=actor
    )[0]


def import_devices(
    ctx: Context,
    rows: Sequence[tuple[str, Sequence[str], str | None, str | None]],
    *,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> list[Provisioned]:
    """Provision many devices in one transaction: all of them, or (on any problem) none.
    Every problem is reported at once."""
    problems: list[str] = []
    checked: list[NewDevice] = []
    tokens: list[str] = []
    seen: set[str] = set()
    for index, (cid, groups, hardware, version) in enumerate(rows, start=1):
        where = f"device {index}" if len(rows) > 1 else "device"
        try:
            check_controller_id(cid)
            names = check_groups(groups)
            hw = _check_text(hardware, "hardware")
            ver = _check_text(version, "version")
        except InvalidInput as exc:
            problems.append(f"{where}: {exc.message}" if len(rows) > 1 else exc.message)
            continue
        if cid in seen:
            problems.append(f"{where}: device ID {cid!r} appears twice")
            continue
        seen.add(cid)
        token = new_target_token()
        tokens.append(token)
        checked.append(NewDevice(cid, hash_token(token), hw, ver, names))
    if not rows:
        problems.append("no devices given")
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    now = ctx.clock()
    out: list[Provisioned] = []
    with ctx.uow() as uow:
        record = uow.tenants.get(tenant)
        if record is None:
            raise NotFound(f"no tenant called {tenant!r}")
        existing = [d.controller_id for d in checked if uow.devices.get(tenant, d.controller_id)]
        if existing:
            raise Conflict(
                f"device {existing[0]!r} already exists",
                problems=[f"device {cid!r} already exists" for cid in existing],
            )
        ids = [uow.devices.add(record.id, d, now) for d in checked]
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="device.add" if len(checked) == 1 else "device.import",
            subject=f"device:{checked[0].controller_id}"
            if len(checked) == 1
            else f"tenant:{tenant}",
            details={"devices": [d.controller_id for d in checked][:1000], "count": len(ids)},
        )
        for device_id, token in zip(ids, tokens, strict=True):
            device = uow.devices.get_by_id(device_id)
            assert device is not None
            out.append(Provisioned(device, token))
        uow.commit()
    return out


def parse_csv(text: str) -> list[tuple[str, tuple[str, ...], str | None, str | None]]:
    """Rows of a device CSV (columns ``id,groups,hardware,version``; groups separated by
    ``;``; a header row naming the columns is optional)."""
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[str, tuple[str, ...], str | None, str | None]] = []
    problems: list[str] = []
    columns = ["id", "groups", "hardware", "version"]
    for line_no, raw in enumerate(reader, start=1):
        cells = [c.strip() for c in raw]
        if not cells or all(not c for c in cells):
            continue
        if line_no == 1 and cells[0].lower() == "id":
            unknown = [c for c in cells if c.lower() not in columns]
            if unknown:
                problems.append(
                    f"line 1: unknown column {unknown[0]!r} (known: id,groups,hardware,version)"
                )
                break
            columns = [c.lower() for c in cells]
            continue
        if len(cells) > len(columns):
            problems.append(f"line {line_no}: {len(cells)} cells, expected at most {len(columns)}")
            continue
        values = dict(zip(columns, cells, strict=False))
        groups = tuple(g for g in (values.get("groups") or "").split(";") if g.strip())
        rows.append(
            (
                values.get("id", ""),
                groups,
                values.get("hardware") or None,
                values.get("version") or None,
            )
        )
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    return rows


def list_devices(
    ctx: Context, *, tenant: str = DEFAULT_TENANT, group: str | None = None, limit: int = 1000
) -> Sequence[DeviceRecord]:
    """Devices of a tenant (optionally of one group), by ID."""
    with ctx.read_uow() as uow:
        return uow.devices.list(tenant, group=group, limit=limit)


def show_device(ctx: Context, controller_id: str, *, tenant: str = DEFAULT_TENANT) -> DeviceRecord:
    """One device, or ``NotFound``."""
    with ctx.read_uow() as uow:
        device = uow.devices.get(tenant, controller_id)
    if device is None:
        raise NotFound(f"no device {controller_id!r}")
    return device


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
