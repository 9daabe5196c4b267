"""Public, unauthenticated pages: the policy in three formats and security.txt."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from patchgate import __version__
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.entrypoints.web import render

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]


@router.get("/", response_class=HTMLResponse)
def home(request: Request, rt: Rt) -> HTMLResponse:
    html = (
        render.templates()
        .get_template("index.html")
        .render(policy=rt.policy().policy, version=__version__, trust_mode=rt.trust_mode())
    )
    return HTMLResponse(html)


@router.get("/policy", response_class=HTMLResponse)
def policy_page(request: Request, rt: Rt) -> HTMLResponse:
    current = rt.policy()
    html = render.policy_html(
        current.policy,
        rt.base_url(request),
        version=__version__,
        trust_mode=rt.trust_mode(),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/policy.md")
def policy_markdown(request: Request, rt: Rt) -> PlainTextResponse:
    text = render.policy_markdown(rt.policy().policy, rt.base_url(request))
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


@router.get("/policy.json")
def policy_json(rt: Rt) -> JSONResponse:
    current = rt.policy()
    body = current.policy.to_json()
    body["sha256"] = current.sha256
    return JSONResponse(body)


@router.get("/.well-known/security.txt")
def security_txt(request: Request, rt: Rt) -> PlainTextResponse:
    text = render.security_txt(rt.policy().policy, rt.base_url(request), rt.ctx.clock())
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")
