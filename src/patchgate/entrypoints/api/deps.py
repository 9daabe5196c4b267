"""Authentication and role checks for the management API."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from patchgate.domain.errors import TooLarge
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.services import access
from patchgate.services.context import Context
from patchgate.services.ports import TokenRecord

bearer = HTTPBearer(
    auto_error=False,
    description="A management token from `patchgate init` or `patchgate token create`",
)


@dataclass(frozen=True)
class Caller:
    """Who is calling, for role checks and the audit log."""

    token: TokenRecord
    ctx: Context

    @property
    def actor(self) -> str:
        return f"token:{self.token.name}"


async def limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body in chunks, refused with ``TooLarge`` (413) as soon as it passes
    ``limit`` bytes, so a client cannot make the server buffer more than that."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise TooLarge(f"the upload is over the limit of {limit} bytes")
        yield chunk


def require_role(role: str) -> Callable[..., Caller]:
    """A dependency that authenticates the bearer token and checks its role."""

    def dependency(
        request: Request,
        rt: Annotated[Runtime, Depends(runtime)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        record = access.authenticate(rt.ctx, credentials.credentials if credentials else None)
        access.require(record, role)
        return Caller(record, rt.ctx)

    return dependency


Viewer = Annotated[Caller, Depends(require_role("viewer"))]
Admin = Annotated[Caller, Depends(require_role("admin"))]
ReleaseManager = Annotated[Caller, Depends(require_role("release_manager"))]
SecurityAnalyst = Annotated[Caller, Depends(require_role("security_analyst"))]
