"""``patchgate device …`` and ``patchgate ddi …``: the fleet registry and tenant settings."""

from __future__ import annotations

from typing import Annotated

import typer

from patchgate.domain.clock import parse_rfc3339, rfc3339
from patchgate.entrypoints.api.devices import (
    action_json,
    device_detail_json,
    device_json,
    event_json,
)
from patchgate.entrypoints.cli.common import actor, app, emit_json, read_text_file
from patchgate.services import actions as action_service
from patchgate.services import devices as device_service

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Tenant = Annotated[str, typer.Option("--tenant", help="DDI tenant.")]


def register(cli: typer.Typer) -> None:
    dev = typer.Typer(help="Devices: provisioning, groups and tags, actions.", no_args_is_help=True)
    dev.command("add")(add)
    dev.command("import")(import_)
    dev.command("list")(list_)
    dev.command("show")(show)
    dev.command("tag")(tag)
    dev.command("assign")(assign)
    dev.command("cancel")(cancel)
    cli.add_typer(dev, name="device")
    ten = typer.Typer(help="Device API settings of a tenant.", no_args_is_help=True)
    ten.command("gateway-token")(gateway_token)
    ten.command("anonymous")(anonymous)
    cli.add_typer(ten, name="ddi")


def add(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The DDI controllerId.")],
    group: Annotated[list[str] | None, typer.Option("--group", help="Group or tag.")] = None,
    hardware: Annotated[str | None, typer.Option(help="Hardware model.")] = None,
    version: Annotated[str | None, typer.Option(help="Installed version.")] = None,
    tenant: Tenant = device_service.DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Provision a device with a target token (printed once)."""
    made = device_service.add_device(
        app().context,
        device_id,
        groups=group or [],
        hardware=hardware,
        version=version,
        tenant=tenant,
        actor=actor(),
    )
    if as_json:
        emit_json({**device_json(made.device), "token": made.token})
    else:
        typer.echo(f"device {device_id} added; target token (shown once): {made.token}")


def import_(
    file: Annotated[str, typer.Argument(metavar="FILE.csv")],
    tenant: Tenant = device_service.DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Provision many devices from CSV (id,groups,hardware,version) in one transaction."""
    rows = device_service.parse_csv(read_text_file(file, what="CSV file"))
    made = device_service.import_devices(app().context, rows, tenant=tenant, actor=actor())
    if as_json:
        emit_json({"devices": [{"id": m.device.controller_id, "token": m.token} for m in made]})
    else:
        for m in made:
            typer.echo(f"{m.device.controller_id},{m.token}")


def list_(
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    tenant: Tenant = device_service.DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Devices by ID."""
    found = device_service.list_devices(app().context, tenant=tenant, group=group)
    if as_json:
        emit_json({"devices": [device_json(d) for d in found]})
        return
    for d in found:
        typer.echo(
            f"{d.controller_id}\t{d.hardware or '-'}\t{d.installed_version or '-'}\t"
            f"{','.join(d.groups) or '-'}\t{rfc3339(d.last_seen) or 'never'}"
        )


def show(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: Tenant = device_service.DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """One device with its actions and newest health reports."""
    body = device_detail_json(app().context, device_id, tenant)
    if as_json:
        emit_json(body)
        return
    for key in ("id", "groups", "hardware", "installed_version", "last_seen", "open_action"):
        typer.echo(f"{key}: {body[key]}")
    for a in body["actions"]:
        typer.echo(f"action {a['id']}: release {a['release_id']} {a['status']}")


def tag(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    groups: Annotated[list[str], typer.Argument(metavar="GROUP...")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the device out.")] = False,
    tenant: Tenant = device_service.DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Put a device into groups (tags such as internal, qa, canary-optin)."""
    device = device_service.tag_device(
        app().context, device_id, groups, remove=remove, tenant=tenant, actor=actor()
    )
    if as_json:
        emit_json(device_json(device))
    else:
        typer.echo(f"{device_id}: {', '.join(device.groups) or 'no groups'}")


def assign(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    release_id: Annotated[int, typer.Argument(metavar="RELEASE_ID")],
    action_type: Annotated[str, typer.Option("--type", help="forced|soft|downloadonly")] = "forced",
    confirm_required: Annotated[
        bool, typer.Option("--confirm-required", help="Wait for the user's consent.")
    ] = False,
    window: Annotated[
        str | None, typer.Option("--window", help="Maintenance window START/END (RFC 3339).")
    ] = None,
    tenant: Tenant = device_service.DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Offer a release to one device directly, outside any campaign."""
    start = end = None
    if window:
        first, _, second = window.partition("/")
        try:
            start, end = parse_rfc3339(first), parse_rfc3339(second)
        except ValueError as exc:
            from patchgate.domain.errors import InvalidInput

            raise InvalidInput(f"--window must be START/END in RFC 3339: {exc}") from exc
    action = action_service.assign(
        app().context,
        device_id,
        release_id,
        action_type=action_type,
        confirmation_required=confirm_required,
        window_start=start,
        window_end=end,
        tenant=tenant,
        actor=actor(),
    )
    if as_json:
        emit_json(action_json(action))
    else:
        typer.echo(f"action {action.id}: release {release_id} offered to {device_id}")


def cancel(
    action_id: Annotated[int, typer.Argument(metavar="ACTION_ID")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Cancel an action."""
    ctx = app().context
    action = action_service.cancel(ctx, action_id, reason=reason, actor=actor())
    if as_json:
        detail = action_service.get_action(ctx, action_id)
        emit_json({**action_json(action), "events": [event_json(e) for e in detail.events]})
    else:
        typer.echo(f"action {action_id}: {action.status}")


def gateway_token(
    revoke: Annotated[bool, typer.Option("--revoke", help="Remove the gateway token.")] = False,
    tenant: Tenant = device_service.DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Create (or replace) the tenant's gateway token, printed once; or revoke it."""
    ctx = app().context
    if revoke:
        device_service.revoke_gateway_token(ctx, tenant=tenant, actor=actor())
        token = None
    else:
        token = device_service.create_gateway_token(ctx, tenant=tenant, actor=actor())
    if as_json:
        emit_json({"tenant": tenant, "token": token})
    else:
        typer.echo(f"gateway token of {tenant} (shown once): {token}" if token else "revoked")


def anonymous(
    state: Annotated[str, typer.Argument(metavar="on|off")],
    tenant: Tenant = device_service.DEFAULT_TENANT,
) -> None:
    """Allow unauthenticated DDI for a tenant (labs only) or forbid it (the default)."""
    from patchgate.domain.errors import InvalidInput

    if state not in ("on", "off"):
        raise InvalidInput("say on or off")
    device_service.set_anonymous(app().context, state == "on", tenant=tenant, actor=actor())
    typer.echo(f"anonymous DDI for {tenant}: {state}")
