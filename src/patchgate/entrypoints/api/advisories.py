"""Management API of CSAF advisories: ``/api/v1/advisories``.

Reading needs the viewer role; drafting and publishing need security_analyst (or admin).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from patchgate.entrypoints.api import constraints as rule
from patchgate.entrypoints.api.deps import SecurityAnalyst, Viewer
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import advisories as present
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.services.advisories import commands, views

router = APIRouter(prefix="/advisories", tags=["advisories"], route_class=StrictRoute)
Rt = Annotated[Runtime, Depends(runtime)]


class NewAdvisory(BaseModel):
    vulnerabilities: list[str] = Field(
        min_length=1,
        description="register IDs",
        json_schema_extra={"items": {"type": "string", "pattern": rule.VULN_ID}},
    )
    title: str | None = Field(None, json_schema_extra=rule.pattern(rule.NOT_BLANK))
    acknowledgments: list[str] = []


@router.get("")
def list_advisories(caller: Viewer, request: Request, rt: Rt) -> dict[str, Any]:
    """Every advisory, newest first."""
    return present.list_json(views.advisories(caller.ctx, rt.base_url(request)))


@router.post("", status_code=201)
def create_advisory(
    caller: SecurityAnalyst, body: NewAdvisory, request: Request, rt: Rt
) -> dict[str, Any]:
    """Draft a CSAF security advisory (404 for an unknown vulnerability)."""
    base = rt.base_url(request)
    made = commands.create(
        caller.ctx,
        body.vulnerabilities,
        title=body.title,
        acknowledgments=body.acknowledgments,
        base_url=base,
        actor=caller.actor,
    )
    return present.advisory_json(views.advisory(caller.ctx, made, base))


@router.get("/{advisory_id}")
def show_advisory(caller: Viewer, advisory_id: str, request: Request, rt: Rt) -> dict[str, Any]:
    """The advisory's summary and its CSAF document."""
    record = views.get(caller.ctx, advisory_id)
    return present.detail_json(views.view(record, rt.base_url(request)), record.document)


@router.post("/{advisory_id}/publish")
def publish_advisory(
    caller: SecurityAnalyst, advisory_id: str, request: Request, rt: Rt
) -> dict[str, Any]:
    """Validate, sign and publish a draft (422 when it is not a valid CSAF document, 409
    when it is already published)."""
    base = rt.base_url(request)
    commands.publish(caller.ctx, advisory_id, base_url=base, actor=caller.actor)
    return present.advisory_json(views.advisory(caller.ctx, advisory_id, base))
