"""Management API of saved device queries and operator metadata (docs/device-filters.md;
release_manager writes, viewer reads). Shapes come from ``presenters/targeting``, shared
with the CLI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from patchgate.domain import metadata as rules
from patchgate.domain.filters import MAX_LENGTH
from patchgate.entrypoints.api.deps import ReleaseManager, Viewer
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


@router.get("/devices/{controller_id}/metadata")
def device_metadata(caller: Viewer, controller_id: str) -> dict[str, Any]:
    """A device's operator metadata."""
    device = device_service.show_device(caller.ctx, controller_id)
    return present.metadata_json(device.controller_id, device.metadata)


@router.put("/devices/{controller_id}/metadata/{key}")
def set_device_metadata(
    caller: ReleaseManager, controller_id: str, key: Key, body: ValueIn
) -> dict[str, Any]:
    """Set one metadata key of a device (queried as ``metadata.KEY``)."""
    device = metadata.set_device(caller.ctx, controller_id, key, body.value, actor=caller.actor)
    return present.metadata_json(device.controller_id, device.metadata)


@router.delete("/devices/{controller_id}/metadata/{key}")
def unset_device_metadata(caller: ReleaseManager, controller_id: str, key: Key) -> dict[str, Any]:
    """Remove one metadata key of a device."""
    device = metadata.unset_device(caller.ctx, controller_id, key, actor=caller.actor)
    return present.metadata_json(device.controller_id, device.metadata)


@router.get("/releases/{release_id}/metadata")
def release_metadata(caller: Viewer, release_id: int) -> dict[str, Any]:
    """A release's operator metadata."""
    release = release_views.get_release(caller.ctx, release_id)
    return present.metadata_json(release.id, release.metadata)


@router.put("/releases/{release_id}/metadata/{key}")
def set_release_metadata(
    caller: ReleaseManager, release_id: int, key: Key, body: ValueIn
) -> dict[str, Any]:
    """Set one metadata key of a release (``GET /api/v1/releases?metadata=KEY=VALUE``)."""
    release = metadata.set_release(caller.ctx, release_id, key, body.value, actor=caller.actor)
    return present.metadata_json(release.id, release.metadata)


@router.delete("/releases/{release_id}/metadata/{key}")
def unset_release_metadata(caller: ReleaseManager, release_id: int, key: Key) -> dict[str, Any]:
    """Remove one metadata key of a release."""
    release = metadata.unset_release(caller.ctx, release_id, key, actor=caller.actor)
    return present.metadata_json(release.id, release.metadata)
