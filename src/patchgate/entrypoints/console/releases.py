"""``/console/releases``: signed releases, their artifacts and campaigns; withdraw (with a
reason and confirmation) and create a campaign from a release."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from patchgate.domain.errors import NotFound, PatchgateError
from patchgate.entrypoints.console import base, views
from patchgate.entrypoints.console.campaigns import create_options
from patchgate.services import releases as release_service
from patchgate.services.campaigns import commands

router = APIRouter(prefix="/releases")
ROLE = "release_manager"


@router.get("", response_class=HTMLResponse)
def release_list(request: Request, caller: base.SignedIn) -> HTMLResponse:
    rows = list(reversed(views.releases(caller.ctx)))
    return base.page(request, "releases.html", caller, rows=rows)


def _detail(
    request: Request,
    caller: base.Caller,
    release_id: int,
    *,
    values: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
) -> HTMLResponse:
    r = views.release(caller.ctx, release_id)
    used = [c for c in views.campaigns(caller.ctx) if c["release_id"] == release_id]
    return base.page(
        request,
        "release.html",
        caller,
        status=422 if problems else 200,
        r=r,
        campaigns=used,
        values=values or {},
        problems=problems or {},
    )


@router.get("/{release_id}", response_class=HTMLResponse)
def detail(request: Request, release_id: int, caller: base.SignedIn) -> HTMLResponse:
    return _detail(request, caller, release_id)


@router.get("/{release_id}/sbom", response_model=None)
def sbom(release_id: int, caller: base.SignedIn) -> Response:
    sha256, path = release_service.sbom_blob(caller.ctx, release_id)
    if path is None:
        raise NotFound("the SBOM's bytes are not in the store")
    return FileResponse(
        path,
        media_type="application/vnd.cyclonedx+json",
        filename=f"release-{release_id}-sbom.cdx.json",
        headers={"ETag": f'"{sha256}"'},
    )


@router.get("/{release_id}/withdraw", response_class=HTMLResponse)
def withdraw_form(request: Request, release_id: int, caller: base.SignedIn) -> HTMLResponse:
    caller.require(ROLE)
    r = views.release(caller.ctx, release_id)
    return base.page(request, "release_withdraw.html", caller, r=r, problems={}, reason="")


@router.post("/{release_id}/withdraw", response_model=None)
async def withdraw(request: Request, release_id: int, caller: base.SignedIn) -> Response:
    form = await base.form_of(request, caller, ROLE)
    reason = (form.get("reason") or "").strip()
    problems = {}
    if not reason:
        problems["reason"] = "say why (it is recorded and shown with the release)"
    if form.get("confirm") != "yes":
        problems["confirm"] = "tick the box to confirm"
    if problems:
        r = views.release(caller.ctx, release_id)
        return base.page(
            request, "release_withdraw.html", caller, status=422, r=r, problems=problems,
            reason=reason,
        )  # fmt: skip
    release_service.withdraw_release(caller.ctx, release_id, reason=reason, actor=caller.actor)
    return base.redirect(f"/console/releases/{release_id}")


@router.post("/{release_id}/campaign", response_model=None)
async def create_campaign(request: Request, release_id: int, caller: base.SignedIn) -> Response:
    form = dict(await base.form_of(request, caller, ROLE))
    try:
        made = commands.create(caller.ctx, release_id, create_options(form), actor=caller.actor)
    except PatchgateError as exc:
        field = "stages" if "stage" in exc.message.lower() else "campaign"
        return _detail(request, caller, release_id, values=form, problems={field: exc.message})
    return base.redirect(f"/console/campaigns/{made}")
