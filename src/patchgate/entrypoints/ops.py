"""Operations endpoints: liveness with the trust mode, and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from patchgate import __version__
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.services import state

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]


@router.get("/healthz")
def healthz(rt: Rt) -> JSONResponse:
    version = state.current_version(rt.ctx)
    body = {
        "status": "ok",
        "version": __version__,
        "state_version": version,
        "database": rt.app.engines.write.dialect.name,
        # Read per request: moving the offline keys away ends lab mode without a restart.
        "trust": rt.trust_mode(),
    }
    return JSONResponse(body)


@router.get("/metrics")
def metrics(rt: Rt) -> Response:
    return Response(generate_latest(rt.registry), media_type=CONTENT_TYPE_LATEST)
