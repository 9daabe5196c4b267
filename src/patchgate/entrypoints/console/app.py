"""The console as an ASGI app mounted at ``/console`` by ``entrypoints.http``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException

from patchgate.domain.errors import InvalidInput, NotFound, PatchgateError
from patchgate.entrypoints.console import (
    audit,
    base,
    campaigns,
    compliance,
    dashboard,
    devices,
    notifications,
    releases,
    signin,
    vulns,
)
from patchgate.entrypoints.errors import http_status
from patchgate.entrypoints.runtime import Runtime
from patchgate.entrypoints.web.headers import SecurityHeaders


def create_console(rt: Runtime) -> Any:
    """The console app over the server's runtime."""
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.runtime = rt

    @console.exception_handler(base.SignInRequired)
    async def sign_in(_request: Request, exc: base.SignInRequired) -> RedirectResponse:
        return base.sign_in_redirect(exc)

    @console.exception_handler(PatchgateError)
    async def refused(request: Request, exc: PatchgateError) -> HTMLResponse:
        return base.error_page(request, exc, http_status(exc))

    @console.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
        problems = [f"{err.get('loc', ('',))[-1]}: {err.get('msg')}" for err in exc.errors()]
        error = InvalidInput("the request is not valid", problems=problems)
        return base.error_page(request, error, 422)

    @console.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> HTMLResponse:
        error: PatchgateError = (
            NotFound("no such page") if exc.status_code == 404 else InvalidInput(str(exc.detail))
        )
        return base.error_page(request, error, exc.status_code)

    for module in (
        signin,
        dashboard,
        vulns,
        releases,
        campaigns,
        devices,
        compliance,
        notifications,
        audit,
    ):
        console.include_router(module.router)
    return SecurityHeaders(console)
