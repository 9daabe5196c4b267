"""Management API of compliance evidence: ``/api/v1/compliance`` (viewer role)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from patchgate.entrypoints.api import constraints as rule
from patchgate.entrypoints.api.deps import Viewer
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import compliance as present
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.services.compliance import checklist, support

router = APIRouter(prefix="/compliance", tags=["compliance"], route_class=StrictRoute)
Rt = Annotated[Runtime, Depends(runtime)]
ProductName = Annotated[str, Path(json_schema_extra=rule.pattern(rule.PRODUCT_NAME))]


@router.get("/checklist")
def get_checklist(
    caller: Viewer,
    request: Request,
    rt: Rt,
    product: Annotated[str | None, Query(json_schema_extra=rule.pattern(rule.PRODUCT_NAME))] = None,
) -> dict[str, Any]:
    """The guide's six checks from live data (as ``report checklist --json``)."""
    view = checklist.view(caller.ctx, base_url=rt.base_url(request), product=product)
    return present.checklist_json(view)


@router.get("/products/{name}")
def get_support_statement(caller: Viewer, name: ProductName) -> dict[str, Any]:
    """A product's support statement and its end-of-support notice calendar."""
    return present.support_json(support.view(caller.ctx, name))
