"""``/console/notifications``: the notice outbox (docs/notifications.md) with each
delivery's state, attempts, next retry and last error, newest first and paged by id; an
admin can run a delivery pass now (the service call of ``notify run``, audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from patchgate.bootstrap import notice_channels
from patchgate.entrypoints.console import base
from patchgate.services import notifications
from patchgate.services.notice_ports import DeliveryView

router = APIRouter(prefix="/notifications")
ROLE = "admin"
PAGE = 50


def delivery_state(d: DeliveryView) -> str:
    """queued (not tried yet), sent, or failed (tried; retried at ``next_attempt_at``)."""
    if d.state == "sent":
        return "sent"
    return "failed" if d.attempts or d.last_error else "queued"


def _page(
    request: Request,
    caller: base.Caller,
    before: int | None,
    *,
    status: int = 200,
    problem: str | None = None,
    ran: dict[str, int] | None = None,
) -> HTMLResponse:
    found = notifications.page(caller.ctx, limit=PAGE, before_id=before)
    channels = notice_channels(caller.rt.app.settings)
    return base.page(
        request,
        "notifications.html",
        caller,
        status=status,
        notices=found,
        state_of=delivery_state,
        before=before,
        next_before=found[-1].id if len(found) == PAGE else None,
        configured=channels is not None,
        can_run=caller.can(ROLE),
        problem=problem,
        ran=ran,
    )


@router.get("", response_class=HTMLResponse)
def outbox(
    request: Request,
    caller: base.SignedIn,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    stored: Annotated[int | None, Query(ge=0)] = None,
    sent: Annotated[int | None, Query(ge=0)] = None,
    failed: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    ran = None
    if stored is not None and sent is not None and failed is not None:
        ran = {"stored": stored, "sent": sent, "failed": failed}
    return _page(request, caller, before, ran=ran)


@router.post("/run", response_model=None)
async def run(request: Request, caller: base.SignedIn) -> Response:
    form = await base.form_of(request, caller, ROLE)
    if form.get("confirm") != "yes":
        return _page(request, caller, None, status=422, problem="tick the box to confirm")
    channels = notice_channels(caller.rt.app.settings)
    result = notifications.run_for(caller.ctx, channels, actor=caller.actor)
    return base.redirect(
        f"/console/notifications?stored={result.stored}&sent={result.sent}&failed={result.failed}"
    )
