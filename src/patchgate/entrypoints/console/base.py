"""What every console page shares: the signed-in caller, CSRF checks, rendering, and the
answers to errors (a sign-in redirect, a page that says what is wrong)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from patchgate import __version__
from patchgate.domain.errors import Forbidden, PatchgateError, Unauthorized
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.entrypoints.web import render
from patchgate.services import access, console_sessions, releases
from patchgate.services.context import Context
from patchgate.services.session_ports import SessionRecord

COOKIE = "patchgate_session"
CSRF_FIELD = "csrf"

Rt = Annotated[Runtime, Depends(runtime)]


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""

    def __init__(self, message: str, next_path: str) -> None:
        super().__init__(message)
        self.message = message
        self.next_path = next_path


@dataclass(frozen=True)
class Caller:
    """The signed-in person: their session, token and what their role allows."""

    session: SessionRecord
    rt: Runtime

    @property
    def ctx(self) -> Context:
        return self.rt.ctx

    @property
    def actor(self) -> str:
        # The same actor the API records for this token, so the audit log reads alike.
        return f"token:{self.session.token.name}"

    def can(self, role: str) -> bool:
        return role in access.ROLES.get(self.session.token.role, ())

    def require(self, role: str) -> None:
        access.require(self.session.token, role)


def _signed_in(request: Request, rt: Rt) -> Caller:
    try:
        session = console_sessions.resume(rt.ctx, request.cookies.get(COOKIE))
    except Unauthorized as exc:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(exc.message, path) from None
    return Caller(session, rt)


SignedIn = Annotated[Caller, Depends(_signed_in)]


async def form_of(request: Request, caller: Caller, role: str) -> Mapping[str, str]:
    """A POSTed form after the role and CSRF checks (403 for either failure)."""
    caller.require(role)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not console_sessions.check_csrf(caller.session, fields.get(CSRF_FIELD)):
        raise Forbidden("the form is stale or was not sent by this page; reload it and try again")
    return fields


def page(
    request: Request, template: str, caller: Caller | None, status: int = 200, **values: Any
) -> HTMLResponse:
    """Render a console page with the layout's variables."""
    rt: Runtime = request.app.state.runtime
    context = {
        "request": request,
        "caller": caller,
        "csrf": caller.session.csrf if caller else "",
        "version": __version__,
        "trust_mode": releases.trust_mode(rt.ctx),
        "now": rt.ctx.clock(),
        "path": request.url.path,
        **values,
    }
    html = render.templates().get_template(f"console/{template}").render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def redirect(path: str) -> RedirectResponse:
    """After a POST: see the result with a GET (303)."""
    return RedirectResponse(path, status_code=303)


def sign_in_redirect(exc: SignInRequired) -> RedirectResponse:
    return RedirectResponse(f"/console/login?next={quote(exc.next_path)}", status_code=303)


def error_page(request: Request, exc: PatchgateError, status: int) -> HTMLResponse:
    rt: Runtime = request.app.state.runtime
    caller: Caller | None = None
    try:
        caller = Caller(console_sessions.resume(rt.ctx, request.cookies.get(COOKIE)), rt)
    except Unauthorized:
        caller = None
    return page(request, "error.html", caller, status=status, error=exc, status_code=status)
