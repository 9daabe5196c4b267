"""``/api/v1/notifications``: the notice outbox and each delivery's state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from patchgate.bootstrap import notice_channels
from patchgate.entrypoints.api.deps import Caller, require_role
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import notifications as present
from patchgate.entrypoints.runtime import Runtime
from patchgate.services import notifications

router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=StrictRoute)


@router.get("")
def list_notices(
    caller: Annotated[Caller, Depends(require_role("viewer"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> dict[str, Any]:
    """Notices newest first with their deliveries (``next_before_id`` pages on)."""
    return present.notices_json(notifications.page(caller.ctx, limit=limit, before_id=before_id))


@router.post("/run")
def run_notices(
    caller: Annotated[Caller, Depends(require_role("admin"))], request: Request
) -> dict[str, int]:
    """``notify run``: derive the notices the state calls for and send what is due now
    (each server process also does this on its notice timer)."""
    rt: Runtime = request.app.state.runtime
    result = notifications.run_once(caller.ctx, notice_channels(rt.app.settings))
    return {"stored": result.stored, "sent": result.sent, "failed": result.failed}
