"""``/console/audit``: the tamper-evident log, newest first, with the chain's verdict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from patchgate.entrypoints.console import base, views

router = APIRouter(prefix="/audit")
PAGE = 50


@router.get("", response_class=HTMLResponse)
def audit_log(
    request: Request,
    caller: base.SignedIn,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    entries = views.audit_page(caller.ctx, limit=PAGE, before_seq=before)
    total, finding = views.audit_verify(caller.ctx)
    return base.page(
        request,
        "audit.html",
        caller,
        entries=entries,
        total=total,
        finding=finding.message if finding is not None else None,
        before=before,
        next_before=entries[-1].seq if len(entries) == PAGE else None,
    )
