"""``patchgate filter …`` (saved device queries) and the ``meta`` commands of ``device``
and ``release`` (operator metadata): docs/device-filters.md.

Services and presenters are imported inside the commands, so ``--help`` costs no database
import."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from patchgate.entrypoints.cli.common import actor, add_group, app, emit_json, emit_lines, emit_view
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
    add_group(
        cli,
        "filter",
        "Saved device queries (hawkBit target filters).",
        {
            "create": create,
            "save": save,
            "update": update,
            "list": list_,
            "show": show,
            "delete": delete,
        },
    )


def _emit(record: SavedFilterRecord, as_json: bool) -> None:
    from patchgate.entrypoints.presenters import targeting as present

    emit_view(record, as_json, json=present.saved_filter_json, text=present.saved_filter_text)


def _storing(how: str, doc: str) -> Callable[..., None]:
    """``filter create`` (``how``: a new name only) or ``filter save`` (replacing)."""

    def store(
        name: Name,
        query: Query,
        description: Description = None,
        tenant: Tenant = DEFAULT_TENANT,
        as_json: JsonFlag = False,
    ) -> None:
        from patchgate.services.devices import saved_filters

        command = saved_filters.create if how == "create" else saved_filters.save
        made = command(
            app().context, name, query, description=description, tenant=tenant, actor=actor()
        )
        _emit(made, as_json)

    store.__doc__ = doc
    return store


create = _storing("create", "Save a new device query under a name (refused if the name is taken).")
save = _storing(
    "save", "Save a device query under a name, replacing the query of that name if there is one."
)


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
    emit_view(found, as_json, json=present.saved_filters_json, text=present.saved_filters_text)


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


Value = Annotated[str, typer.Argument(metavar="VALUE", help="Text, 4,000 characters at most.")]
DeviceId = Annotated[str, typer.Argument(metavar="ID", help="The device's controllerId.")]
ReleaseId = Annotated[int, typer.Argument(metavar="ID", help="Release ID.")]
Services = dict[str, Callable[..., Any]]  # the service of each command: list, set, unset


def _device_services() -> Services:
    from patchgate.services import devices, metadata

    return {"list": devices.show_device, "set": metadata.set_device, "unset": metadata.unset_device}


def _release_services() -> Services:
    from patchgate.services import metadata
    from patchgate.services.releases import views

    return {"list": views.get_release, "set": metadata.set_release, "unset": metadata.unset_release}


@dataclass(frozen=True)
class Holder:
    """What carries operator metadata (services/metadata.py), as its commands name it."""

    id_name: str  # the ID argument's parameter
    id_type: Any  # its annotation
    id_attr: str  # the attribute of the ID the JSON answer names
    services: Callable[[], Services]  # imported when a command runs
    tenant: bool  # whether the commands take --tenant
    set_hint: str  # where a value set is used, for ``set``'s help


HOLDERS = {
    "device": Holder(
        "device_id", DeviceId, "controller_id", _device_services, True, "queried as metadata.KEY"
    ),
    "release": Holder(
        "release_id",
        ReleaseId,
        "id",
        _release_services,
        False,
        "release list --metadata KEY=VALUE finds it",
    ),
}


def metadata_commands(kind: str) -> typer.Typer:
    """``device meta …`` (``kind`` "device") or ``release meta …`` ("release")."""
    holder = HOLDERS[kind]

    def run(command: str, given: dict[str, Any], *args: str) -> None:
        """Call the service of ``command`` and print the holder's metadata after it."""
        service = holder.services()[command]
        scope = {"tenant": given["tenant"]} if holder.tenant else {}
        if command != "list":
            scope["actor"] = actor()
        item = service(app().context, given[holder.id_name], *args, **scope)
        _emit_metadata(getattr(item, holder.id_attr), item.metadata, given["as_json"])

    def set_(**given: Any) -> None:
        run("set", given, given["key"], given["value"])

    def unset(**given: Any) -> None:
        run("unset", given, given["key"])

    def list_(**given: Any) -> None:
        run("list", given)

    meta = typer.Typer(help=f"Operator metadata (key/value) of a {kind}.", no_args_is_help=True)
    the_id = {holder.id_name: holder.id_type}
    options: dict[str, tuple[Any, Any]] = {}
    if holder.tenant:
        options["tenant"] = (Tenant, DEFAULT_TENANT)
    options["as_json"] = (JsonFlag, False)
    set_doc = f"Set a metadata key of a {kind} ({holder.set_hint})."
    for name, command, doc, arguments in (
        ("set", set_, set_doc, {**the_id, "key": Key, "value": Value}),
        ("unset", unset, f"Remove a metadata key of a {kind}.", {**the_id, "key": Key}),
        ("list", list_, f"A {kind}'s metadata.", the_id),
    ):
        meta.command(name)(_signed(command, doc, arguments, options))
    return meta


def _signed(
    command: Callable[..., None],
    doc: str,
    arguments: dict[str, Any],
    options: dict[str, tuple[Any, Any]],
) -> Callable[..., None]:
    """``command`` declaring ``arguments`` (name → annotation), then ``options`` (name →
    annotation and default), as typer reads them to build the command and its help."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind, annotation=a) for n, a in arguments.items()]
    params += [inspect.Parameter(n, kind, annotation=a, default=d) for n, (a, d) in options.items()]
    setattr(command, "__signature__", inspect.Signature(params, return_annotation=None))  # noqa: B010
    command.__doc__ = doc
    return command


def _emit_metadata(subject: str | int, values: Mapping[str, str], as_json: bool) -> None:
    from patchgate.entrypoints.presenters import targeting as present

    if as_json:
        emit_json(present.metadata_json(subject, values))
    else:
        emit_lines(present.metadata_text(values))
