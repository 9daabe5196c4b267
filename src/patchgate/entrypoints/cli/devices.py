"""``patchgate device …`` and ``patchgate ddi …``: the fleet registry and tenant settings.

Services and presenters are imported inside the commands, so ``patchgate device --help``
costs no database or web framework import."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import typer

from patchgate.entrypoints.cli.common import actor, add_group, app, emit_json, emit_lines, emit_view
from patchgate.entrypoints.cli.targeting import metadata_commands
from patchgate.services.device_ports import DEFAULT_TENANT

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Tenant = Annotated[str, typer.Option("--tenant", metavar="TENANT", help="DDI tenant.")]


def register(cli: typer.Typer) -> None:
    dev = add_group(
        cli,
        "device",
        "Devices: provisioning, groups and tags, actions.",
        {
            "add": add,
            "import": import_,
            "list": list_,
            "show": show,
            "tag": tag,
            "remove": remove,
            "rotate-token": rotate_token,
            "assign": assign,
            "cancel": cancel,
        },
    )
    dev.add_typer(metadata_commands("device"), name="meta")
    add_group(
        cli,
        "ddi",
        "Device API settings of a tenant.",
        {"gateway-token": gateway_token, "anonymous": anonymous},
    )


def add(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The DDI controllerId.")],
    group: Annotated[
        list[str] | None, typer.Option("--group", metavar="GROUP", help="Group or tag.")
    ] = None,
    hardware: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Hardware model (one the policy names).")
    ] = None,
    version: Annotated[
        str | None, typer.Option(metavar="VERSION", help="Installed version, e.g. 1.4.2.")
    ] = None,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Provision a device with a target token (printed once)."""
    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import devices as device_service

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
        emit_json(present.provisioned_json(made.device, made.token))
    else:
        typer.echo(f"device {device_id} added; target token (shown once): {made.token}")


def import_(
    file: Annotated[str, typer.Argument(metavar="FILE.csv")],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", metavar="GROUP", help="Also put every device in this group."),
    ] = None,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Provision many devices from CSV (id,groups,hardware,version) in one transaction."""
    import sys

    from patchgate.services.devices import imports

    made = imports.import_csv(
        app().context,
        imports.read_lines(file),
        groups=group or (),
        tenant=tenant,
        actor=actor(),
    )
    if as_json:
        emit_json({"devices": [{"id": cid, "token": token} for cid, token in made.tokens]})
        return
    for start in range(0, made.count, 10_000):
        chunk = made.tokens[start : start + 10_000]
        sys.stdout.write("".join(f"{cid},{token}\n" for cid, token in chunk))
    sys.stdout.flush()


def list_(
    group: Annotated[str | None, typer.Option(metavar="GROUP", help="Only this group.")] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="QUERY",
            help="Only devices matching a hawkBit target-filter query, e.g. "
            "'group==qa;version<1.4' (docs/device-filters.md); @NAME: a saved filter.",
        ),
    ] = None,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Devices by ID (the whole fleet, read a page at a time)."""
    import json
    import sys

    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import devices as device_service

    if query is not None:
        from patchgate.services.devices import saved_filters

        # A malformed query or an unknown saved filter: exit 2 naming it, before output.
        resolved = saved_filters.resolve(app().context, query, tenant=tenant)
        query = resolved.query if resolved is not None else None
    pages = _pages(device_service, tenant, group, query)
    if as_json:
        # One JSON object, written as the pages arrive: the fleet is never all in memory.
        out = sys.stdout
        out.write('{"devices": [')
        separator = "\n  "
        for page, _ in pages:
            for device in page:
                out.write(separator + json.dumps(present.device_json(device)))
                separator = ",\n  "
        out.write("\n]}\n")
        return
    widths: list[int] = []
    for index, (page, _) in enumerate(pages):
        emit_lines(present.device_rows_text(page, widths=widths, header=index == 0))


def _pages(
    device_service: Any, tenant: str, group: str | None, query: str | None = None
) -> Iterator[tuple[Any, bool]]:
    """The fleet's pages by controllerId, each with whether another one follows."""
    after: str | None = None
    while True:
        page = device_service.device_page(
            app().context, tenant=tenant, group=group, after=after, query=query
        )
        yield page.devices, page.next_after is not None
        if page.next_after is None:
            return
        after = page.next_after


def show(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """One device with its actions and newest health reports."""
    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import devices as device_service

    detail = device_service.device_detail(app().context, device_id, tenant=tenant)
    emit_view(detail, as_json, json=present.device_detail_json, text=present.device_detail_text)


def tag(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    groups: Annotated[list[str], typer.Argument(metavar="GROUP...")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the device out.")] = False,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Put a device into groups (tags such as internal, qa, canary-optin)."""
    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import devices as device_service

    device = device_service.tag_device(
        app().context, device_id, groups, remove=remove, tenant=tenant, actor=actor()
    )
    if as_json:
        emit_json(present.device_json(device))
    else:
        typer.echo(f"{device_id}: {', '.join(device.groups) or 'no groups'}")


def remove(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why (kept in the audit log).")] = "",
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Decommission a device: its token stops at once, its open actions are cancelled,
    its history stays."""
    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import devices as device_service

    done = device_service.remove_device(
        app().context, device_id, reason=reason, tenant=tenant, actor=actor()
    )
    if as_json:
        emit_json(present.removed_json(done.device, done.cancelled_actions))
        return
    cancelled = ", ".join(str(a) for a in done.cancelled_actions)
    typer.echo(
        f"device {device_id} removed" + (f"; cancelled action {cancelled}" if cancelled else "")
    )


def rotate_token(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Give a device a new target token (printed once); the old one stops at once."""
    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import devices as device_service

    done = device_service.rotate_token(app().context, device_id, tenant=tenant, actor=actor())
    if as_json:
        emit_json(present.provisioned_json(done.device, done.token))
    else:
        typer.echo(f"device {device_id}: new target token (shown once): {done.token}")


def assign(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    release_id: Annotated[int, typer.Argument(metavar="RELEASE_ID")],
    action_type: Annotated[
        str, typer.Option("--type", metavar="TYPE", help="forced, soft or downloadonly.")
    ] = "forced",
    confirm_required: Annotated[
        bool, typer.Option("--confirm-required", help="Wait for the user's consent.")
    ] = False,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", metavar="START/END", help="Maintenance window START/END (RFC 3339)."
        ),
    ] = None,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Offer a release to one device directly, outside any campaign."""
    from patchgate.domain.clock import parse_rfc3339
    from patchgate.domain.errors import InvalidInput
    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import actions as action_service

    start = end = None
    if window:
        first, _, second = window.partition("/")
        try:
            start, end = parse_rfc3339(first), parse_rfc3339(second)
        except ValueError as exc:
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
        emit_json(present.action_json(action))
    else:
        typer.echo(f"action {action.id}: release {release_id} offered to {device_id}")


def cancel(
    action_id: Annotated[int, typer.Argument(metavar="ACTION_ID")],
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Cancel an action."""
    from patchgate.entrypoints.presenters import devices as present
    from patchgate.services import actions as action_service

    ctx = app().context
    action = action_service.cancel(ctx, action_id, reason=reason, actor=actor())
    if as_json:
        detail = action_service.get_action(ctx, action_id)
        emit_json(present.action_detail_json(action, detail.events))
    else:
        typer.echo(f"action {action_id}: {action.status}")


def gateway_token(
    revoke: Annotated[bool, typer.Option("--revoke", help="Remove the gateway token.")] = False,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Create (or replace) the tenant's gateway token, printed once; or revoke it."""
    from patchgate.services import devices as device_service

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
    tenant: Tenant = DEFAULT_TENANT,
) -> None:
    """Allow unauthenticated DDI for a tenant (labs only) or forbid it (the default)."""
    from patchgate.domain.errors import InvalidInput
    from patchgate.services import devices as device_service

    if state not in ("on", "off"):
        raise InvalidInput("say on or off")
    device_service.set_anonymous(app().context, state == "on", tenant=tenant, actor=actor())
    typer.echo(f"anonymous DDI for {tenant}: {state}")
