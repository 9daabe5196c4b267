"""``patchgate filter …`` (saved device queries) and the ``meta`` commands of ``device``
and ``release`` (operator metadata): docs/device-filters.md.

Services and presenters are imported inside the commands, so ``--help`` costs no database
import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import typer

from patchgate.entrypoints.cli.common import actor, app, emit_json, emit_lines
from patchgate.services.device_ports import DEFAULT_TENANT

if TYPE_CHECKING:
    from patchgate.services.targeting_ports import SavedFilterRecord

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Tenant = Annotated[str, typer.Option("--tenant", metavar="TENANT", help="DDI tenant.")]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The saved filter's name.")]
Query = Annotated[
    str, typer.Argument(metavar="QUERY", help="A device query, e.g. 'group==qa;version<1.4'.")
]
Description = Annotated[
    str | None, typer.Option("--description", metavar="TEXT", help="What the filter is for.")
]


def register(cli: typer.Typer) -> None:
    saved = typer.Typer(help="Saved device queries (hawkBit target filters).", no_args_is_help=True)
    saved.command("create")(create)
    saved.command("save")(save)
    saved.command("update")(update)
    saved.command("list")(list_)
    saved.command("show")(show)
    saved.command("delete")(delete)
    cli.add_typer(saved, name="filter")


def _emit(record: SavedFilterRecord, as_json: bool) -> None:
    from patchgate.entrypoints.presenters import targeting as present

    if as_json:
        emit_json(present.saved_filter_json(record))
    else:
        emit_lines(present.saved_filter_text(record))


def create(
    name: Name,
    query: Query,
    description: Description = None,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Save a new device query under a name (refused if the name is taken)."""
    _store("create", name, query, description, tenant, as_json)


def save(
    name: Name,
    query: Query,
    description: Description = None,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Save a device query under a name, replacing the query of that name if there is one."""
    _store("save", name, query, description, tenant, as_json)


def _store(
    how: str, name: str, query: str, description: str | None, tenant: str, as_json: bool
) -> None:
    from patchgate.services.devices import saved_filters

    command = saved_filters.create if how == "create" else saved_filters.save
    made = command(
        app().context, name, query, description=description, tenant=tenant, actor=actor()
    )
    _emit(made, as_json)


def update(
    name: Name,
    query: Annotated[
        str | None, typer.Option("--query", metavar="QUERY", help="The new device query.")
    ] = None,
    description: Description = None,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Change a saved filter's query or description."""
    from patchgate.services.devices import saved_filters

    made = saved_filters.update(
        app().context, name, query=query, description=description, tenant=tenant, actor=actor()
    )
    _emit(made, as_json)


def list_(tenant: Tenant = DEFAULT_TENANT, as_json: JsonFlag = False) -> None:
    """The saved filters by name."""
    from patchgate.entrypoints.presenters import targeting as present
    from patchgate.services.devices import saved_filters

    found = saved_filters.list_filters(app().context, tenant=tenant)
    if as_json:
        emit_json(present.saved_filters_json(found))
    else:
        emit_lines(present.saved_filters_text(found))


def show(name: Name, tenant: Tenant = DEFAULT_TENANT, as_json: JsonFlag = False) -> None:
    """One saved filter (list its devices with device list --filter @NAME)."""
    from patchgate.services.devices import saved_filters

    _emit(saved_filters.get(app().context, name, tenant=tenant), as_json)


def delete(name: Name, tenant: Tenant = DEFAULT_TENANT, as_json: JsonFlag = False) -> None:
    """Delete a saved filter (campaigns created from it keep their copy of the query)."""
    from patchgate.services.devices import saved_filters

    saved_filters.delete(app().context, name, tenant=tenant, actor=actor())
    if as_json:
        emit_json({"name": name, "deleted": True})
    else:
        typer.echo(f"saved filter {name} deleted")


# ---- metadata ----------------------------------------------------------------------------

Key = Annotated[str, typer.Argument(metavar="KEY", help="Letters, digits, _ . -; 128 at most.")]


def metadata_commands(kind: str) -> typer.Typer:
    """``device meta …`` (``kind`` "device") or ``release meta …`` ("release")."""
    meta = typer.Typer(help=f"Operator metadata (key/value) of a {kind}.", no_args_is_help=True)
    if kind == "device":
        meta.command("set")(device_set)
        meta.command("unset")(device_unset)
        meta.command("list")(device_list)
    else:
        meta.command("set")(release_set)
        meta.command("unset")(release_unset)
        meta.command("list")(release_list)
    return meta


def _emit_metadata(subject: str | int, values: Mapping[str, str], as_json: bool) -> None:
    from patchgate.entrypoints.presenters import targeting as present

    if as_json:
        emit_json(present.metadata_json(subject, values))
    else:
        emit_lines(present.metadata_text(values))


DeviceId = Annotated[str, typer.Argument(metavar="ID", help="The device's controllerId.")]
ReleaseId = Annotated[int, typer.Argument(metavar="ID", help="Release ID.")]


def device_set(
    device_id: DeviceId,
    key: Key,
    value: Annotated[str, typer.Argument(metavar="VALUE", help="Text, 4,000 characters at most.")],
    tenant: Tenant = DEFAULT_TENANT,
    as_json: JsonFlag = False,
) -> None:
    """Set a metadata key of a device (queried as metadata.KEY)."""
    from patchgate.services import metadata

    device = metadata.set_device(app().context, device_id, key, value, tenant=tenant, actor=actor())
    _emit_metadata(device.controller_id, device.metadata, as_json)


def device_unset(
    device_id: DeviceId, key: Key, tenant: Tenant = DEFAULT_TENANT, as_json: JsonFlag = False
) -> None:
    """Remove a metadata key of a device."""
    from patchgate.services import metadata

    device = metadata.unset_device(app().context, device_id, key, tenant=tenant, actor=actor())
    _emit_metadata(device.controller_id, device.metadata, as_json)


def device_list(
    device_id: DeviceId, tenant: Tenant = DEFAULT_TENANT, as_json: JsonFlag = False
) -> None:
    """A device's metadata."""
    from patchgate.services import devices

    device = devices.show_device(app().context, device_id, tenant=tenant)
    _emit_metadata(device.controller_id, device.metadata, as_json)


def release_set(
    release_id: ReleaseId,
    key: Key,
    value: Annotated[str, typer.Argument(metavar="VALUE", help="Text, 4,000 characters at most.")],
    as_json: JsonFlag = False,
) -> None:
    """Set a metadata key of a release (release list --metadata KEY=VALUE finds it)."""
    from patchgate.services import metadata

    release = metadata.set_release(app().context, release_id, key, value, actor=actor())
    _emit_metadata(release.id, release.metadata, as_json)


def release_unset(release_id: ReleaseId, key: Key, as_json: JsonFlag = False) -> None:
    """Remove a metadata key of a release."""
    from patchgate.services import metadata

    release = metadata.unset_release(app().context, release_id, key, actor=actor())
    _emit_metadata(release.id, release.metadata, as_json)


def release_list(release_id: ReleaseId, as_json: JsonFlag = False) -> None:
    """A release's metadata."""
    from patchgate.services.releases import views

    release = views.get_release(app().context, release_id)
    _emit_metadata(release.id, release.metadata, as_json)
