"""Management API of saved device queries and operator metadata (docs/device-filters.md;
release_manager writes, viewer reads). Shapes come from ``presenters/targeting``, shared
with the CLI."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from patchgate.domain import metadata as rules
from patchgate.domain.filters import MAX_LENGTH
from patchgate.entrypoints.api.deps import Caller, ReleaseManager, Viewer
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import targeting as present
from patchgate.services import devices as device_service
from patchgate.services import metadata
from patchgate.services.devices import saved_filters
from patchgate.services.releases import views as release_views

router = APIRouter(tags=["targeting"], route_class=StrictRoute)

# The names and keys as services/devices/saved_filters.py and domain/metadata.py check them.
FILTER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
METADATA_KEY = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"

FilterName = Annotated[
    str, Path(max_length=64, pattern=FILTER_NAME, description="The saved filter's name")
]
Key = Annotated[
    str, Path(max_length=rules.MAX_KEY, pattern=METADATA_KEY, description="The metadata key")
]


class FilterIn(BaseModel):
    name: str = Field(max_length=64, pattern=FILTER_NAME, description="Letters, digits, _ . -")
    query: str = Field(max_length=MAX_LENGTH, description="A device query, e.g. group==qa")
    description: str = Field("", max_length=saved_filters.MAX_DESCRIPTION)


class FilterSave(BaseModel):
    query: str = Field(max_length=MAX_LENGTH)
    description: str | None = Field(None, max_length=saved_filters.MAX_DESCRIPTION)


class FilterChange(BaseModel):
    query: str | None = Field(None, max_length=MAX_LENGTH)
    description: str | None = Field(None, max_length=saved_filters.MAX_DESCRIPTION)


@router.get("/filters")
def list_filters(caller: Viewer) -> dict[str, Any]:
    """The default tenant's saved filters by name."""
    return present.saved_filters_json(saved_filters.list_filters(caller.ctx))


@router.post("/filters", status_code=201)
def create_filter(caller: ReleaseManager, body: FilterIn) -> dict[str, Any]:
    """Save a device query under a new name (409 if taken; 422 naming the position of a
    malformed query or an unknown field)."""
    made = saved_filters.create(
        caller.ctx, body.name, body.query, description=body.description, actor=caller.actor
    )
    return present.saved_filter_json(made)


@router.get("/filters/{name}")
def show_filter(caller: Viewer, name: FilterName) -> dict[str, Any]:
    """One saved filter; its devices: ``GET /api/v1/devices?filter=@NAME``."""
    return present.saved_filter_json(saved_filters.get(caller.ctx, name))


@router.put("/filters/{name}")
def save_filter(caller: ReleaseManager, name: FilterName, body: FilterSave) -> dict[str, Any]:
    """Save the query under this name, creating the filter or replacing its query."""
    made = saved_filters.save(
        caller.ctx, name, body.query, description=body.description, actor=caller.actor
    )
    return present.saved_filter_json(made)


@router.patch("/filters/{name}")
def update_filter(caller: ReleaseManager, name: FilterName, body: FilterChange) -> dict[str, Any]:
    """Change a saved filter's query or description (what is not given stays)."""
    made = saved_filters.update(
        caller.ctx, name, query=body.query, description=body.description, actor=caller.actor
    )
    return present.saved_filter_json(made)


@router.delete("/filters/{name}", status_code=204)
def delete_filter(caller: ReleaseManager, name: FilterName) -> None:
    """Delete a saved filter (campaigns created from it keep their copy of the query)."""
    saved_filters.delete(caller.ctx, name, actor=caller.actor)


class ValueIn(BaseModel):
    value: str = Field(max_length=rules.MAX_VALUE, pattern=NO_CONTROL)


@dataclass(frozen=True)
class Holder:
    """What carries operator metadata (services/metadata.py), as its routes reach it."""

    noun: str  # "device": the routes' names and help
    id_name: str  # the path parameter naming one
    id_type: type  # its type
    id_of: Callable[[Any], str | int]  # the ID the answer names
    show: Callable[..., Any]  # (ctx, id) → the holder
    set: Callable[..., Any]  # (ctx, id, key, value, actor=) → the holder
    unset: Callable[..., Any]  # (ctx, id, key, actor=) → the holder
    set_hint: str  # where a value set is used, for the PUT route's help


HOLDERS = (
    Holder(
        "device",
        "controller_id",
        str,
        attrgetter("controller_id"),
        device_service.show_device,
        metadata.set_device,
        metadata.unset_device,
        "queried as ``metadata.KEY``",
    ),
    Holder(
        "release",
        "release_id",
        int,
        attrgetter("id"),
        release_views.get_release,
        metadata.set_release,
        metadata.unset_release,
        "``GET /api/v1/releases?metadata=KEY=VALUE``",
    ),
)


def _route(method: str, path: str, name: str, doc: str, endpoint: Callable[..., Any]) -> None:
    """Add ``endpoint`` under ``name`` (its operationId) with ``doc`` as its description."""
    endpoint.__doc__ = doc
    router.api_route(path, methods=[method], name=name)(endpoint)


def _signed(endpoint: Callable[..., Any], params: dict[str, Any]) -> Callable[..., Any]:
    """``endpoint`` declaring the keyword parameters ``params`` (name → annotation), as
    FastAPI reads them to build the request and the document."""
    kind = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [inspect.Parameter(n, kind, annotation=a) for n, a in params.items()],
        return_annotation=dict[str, Any],
    )
    setattr(endpoint, "__signature__", signature)  # noqa: B010  # not a declared attribute
    return endpoint


def metadata_routes(holder: Holder) -> None:
    """``GET``, ``PUT …/{key}`` and ``DELETE …/{key}`` of ``/{noun}s/{id}/metadata``."""
    noun, ident = holder.noun, holder.id_name
    path = f"/{noun}s/{{{ident}}}/metadata"

    def answer(item: Any) -> dict[str, Any]:
        return present.metadata_json(holder.id_of(item), item.metadata)

    def read(caller: Caller, **ids: Any) -> dict[str, Any]:
        return answer(holder.show(caller.ctx, ids[ident]))

    def put(caller: Caller, key: str, body: ValueIn, **ids: Any) -> dict[str, Any]:
        return answer(holder.set(caller.ctx, ids[ident], key, body.value, actor=caller.actor))

    def delete(caller: Caller, key: str, **ids: Any) -> dict[str, Any]:
        return answer(holder.unset(caller.ctx, ids[ident], key, actor=caller.actor))

    the_id = {ident: holder.id_type}
    read = _signed(read, {"caller": Viewer, **the_id})
    put = _signed(put, {"caller": ReleaseManager, **the_id, "key": Key, "body": ValueIn})
    delete = _signed(delete, {"caller": ReleaseManager, **the_id, "key": Key})
    _route("GET", path, f"{noun}_metadata", f"A {noun}'s operator metadata.", read)
    doc = f"Set one metadata key of a {noun} ({holder.set_hint})."
    _route("PUT", f"{path}/{{key}}", f"set_{noun}_metadata", doc, put)
    doc = f"Remove one metadata key of a {noun}."
    _route("DELETE", f"{path}/{{key}}", f"unset_{noun}_metadata", doc, delete)


for _holder in HOLDERS:
    metadata_routes(_holder)
