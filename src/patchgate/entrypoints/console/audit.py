"""``/console/audit``: the tamper-evident log, newest first, with the chain's verdict.

Verifying the chain reads every entry and checks every signed checkpoint (docs/audit.md),
so its cost grows with the log. The page keeps the last verdict in the process and shows
it while the log's head is unchanged and the verdict is younger than ``RECHECK``; a new
entry, the age limit or "Verify now" (``?verify=1``) runs the whole check again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from patchgate.entrypoints.console import base, views
from patchgate.services.context import Context

router = APIRouter(prefix="/audit")
PAGE = 50
RECHECK = timedelta(minutes=5)


@dataclass(frozen=True)
class Verdict:
    """The result of one whole verification, and the head it covered."""

    head: tuple[int, str]
    total: int
    finding: str | None
    checked_at: datetime


def verdict(request: Request, ctx: Context, *, force: bool) -> Verdict:
    newest = views.audit_page(ctx, limit=1, before_seq=None)
    head = (newest[0].seq, newest[0].hash) if newest else (0, "")
    now = ctx.clock()
    kept: Verdict | None = getattr(request.app.state, "audit_verdict", None)
    if not force and kept is not None and kept.head == head and now - kept.checked_at < RECHECK:
        return kept
    total, finding = views.audit_verify(ctx)
    fresh = Verdict(head, total, finding.message if finding is not None else None, now)
    request.app.state.audit_verdict = fresh
    return fresh


@router.get("", response_class=HTMLResponse)
def audit_log(
    request: Request,
    caller: base.SignedIn,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    verify: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    entries = views.audit_page(caller.ctx, limit=PAGE, before_seq=before)
    checked = verdict(request, caller.ctx, force=verify)
    return base.page(
        request,
        "audit.html",
        caller,
        entries=entries,
        total=checked.total,
        finding=checked.finding,
        checked_at=checked.checked_at,
        before=before,
        next_before=entries[-1].seq if len(entries) == PAGE else None,
    )
