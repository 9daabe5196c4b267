"""Management API: the policy in force, the audit log and tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from patchgate.domain.clock import utcnow
from patchgate.entrypoints.api.deps import Admin, Viewer
from patchgate.entrypoints.bodies import StrictRoute
from patchgate.entrypoints.presenters import audit as present_audit
from patchgate.entrypoints.presenters import policy as present_policy
from patchgate.entrypoints.presenters import tokens as present_tokens
from patchgate.entrypoints.runtime import runtime
from patchgate.entrypoints.web import render
from patchgate.services import access, audit
from patchgate.services import policy as policy_service

router = APIRouter(route_class=StrictRoute)


@router.get("/whoami", tags=["access"])
def whoami(caller: Viewer) -> dict[str, Any]:
    """The token used for this call and its role."""
    return {"name": caller.token.name, "role": caller.token.role}


@router.get("/policy", tags=["policy"])
def get_policy(caller: Viewer) -> dict[str, Any]:
    """The policy in force (the same JSON as ``/policy.json``), with its TOML source."""
    return present_policy.in_force_json(policy_service.in_force(caller.ctx))


@router.put("/policy", tags=["policy"])
def put_policy(
    caller: Admin,
    source: str = Body(..., media_type="application/toml", description="Policy TOML", min_length=1),
) -> dict[str, Any]:
    """Validate a policy and put it in force. 422 lists every problem; nothing changes."""
    policy, changed = policy_service.apply(caller.ctx, source, actor=caller.actor)
    return present_policy.applied_json(policy, changed)


@router.get("/audit", tags=["audit"])
def list_audit(
    caller: Viewer,
    limit: int = 100,
    before_seq: int | None = None,
    subject: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """Audit entries, newest first."""
    rows = audit.entries(
        caller.ctx,
        limit=min(max(limit, 1), 1000),
        before_seq=before_seq,
        subject=subject,
        action_prefix=action,
    )
    return present_audit.entries_json(rows)


@router.get("/audit/verify", tags=["audit"])
def verify_audit(caller: Viewer) -> dict[str, Any]:
    """Check the chain and its checkpoints; names the first problem."""
    count, finding = audit.verify(caller.ctx)
    return {
        "entries": count,
        "ok": finding is None,
        "finding": None if finding is None else finding.__dict__,
    }


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(json_schema_extra={"enum": list(access.ROLES)})


@router.post("/tokens", tags=["access"], status_code=201)
def create_token(caller: Admin, body: TokenIn) -> dict[str, Any]:
    """Create a token; the token itself is in this answer only."""
    record, token = access.create_token(
        caller.ctx, name=body.name, role=body.role, actor=caller.actor
    )
    return present_tokens.created_json(record, token)


@router.get("/tokens", tags=["access"])
def list_tokens(caller: Admin) -> dict[str, Any]:
    """Token names, roles and dates (never the tokens)."""
    return present_tokens.tokens_json(access.list_tokens(caller.ctx))


@router.delete("/tokens/{name}", tags=["access"], status_code=204)
def revoke_token(caller: Admin, name: str) -> None:
    """Revoke a token at once."""
    access.revoke_token(caller.ctx, name=name, actor=caller.actor)


PolicySource = Body(..., media_type="application/toml", description="Policy TOML", min_length=1)


@router.post("/policy/check", tags=["policy"])
def check_policy(caller: Viewer, source: str = PolicySource) -> dict[str, Any]:
    """``policy check``: validate a policy without putting it in force. 422 lists every
    problem."""
    policy = policy_service.check(source, today=utcnow())
    return {
        "valid": True,
        "summary": present_policy.summary_text(policy),
        "policy": policy.to_json(),
    }


@router.post("/policy/render", tags=["policy"], response_model=None)
def render_policy(
    caller: Viewer,
    request: Request,
    source: str = PolicySource,
    fmt: Annotated[str, Query(alias="format", pattern="^(md|html|json)$")] = "md",
) -> Response | dict[str, Any]:
    """``policy render FILE``: a draft policy as the public pages would show it (Markdown,
    HTML or the ``/policy.json`` object), without putting it in force."""
    policy = policy_service.check(source, today=utcnow())
    if fmt == "json":
        return policy.to_json()
    base_url = runtime(request).base_url(request)
    if fmt == "md":
        return PlainTextResponse(
            render.policy_markdown(policy, base_url), media_type="text/markdown"
        )
    return HTMLResponse(render.policy_html(policy, base_url))
