"""``/console/login`` and ``/console/logout``."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from patchgate.domain.errors import Unauthorized
from patchgate.entrypoints.console import base
from patchgate.services import console_sessions

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a console path of this server: never an open redirect."""
    if not target:
        return "/console/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console"):
        return "/console/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, rt: base.Rt, next: str | None = None) -> HTMLResponse:
    return base.page(request, "login.html", None, next=_safe_next(next), problem=None)


@router.post("/login", response_model=None)
async def login(request: Request, rt: base.Rt) -> Response:
    form = await request.form()
    token = form.get("token")
    target = _safe_next(str(form.get("next") or ""))
    try:
        signed = console_sessions.sign_in(rt.ctx, token if isinstance(token, str) else "")
    except Unauthorized:
        problem = "That token is not valid (or was revoked). Paste a management API token."
        return base.page(request, "login.html", None, status=401, next=target, problem=problem)
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(
        base.COOKIE,
        signed.session_id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
        max_age=int(console_sessions.LONGEST.total_seconds()),
    )
    return answer


@router.post("/logout")
async def logout(request: Request, caller: base.SignedIn) -> RedirectResponse:
    await base.form_of(request, caller, "viewer")
    console_sessions.sign_out(caller.ctx, request.cookies.get(base.COOKIE))
    answer = RedirectResponse("/console/login", status_code=303)
    answer.delete_cookie(base.COOKIE, path="/console")
    return answer
