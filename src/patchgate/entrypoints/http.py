"""The ASGI application: routers of every entrypoint, error mapping, middleware."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from patchgate import __version__
from patchgate.bootstrap import App, Settings, build, make_state_feed, notice_channels
from patchgate.domain.errors import PatchgateError
from patchgate.entrypoints import logs, ops, tuf
from patchgate.entrypoints.api import advisories as api_advisories
from patchgate.entrypoints.api import campaigns as api_campaigns
from patchgate.entrypoints.api import compliance as api_compliance
from patchgate.entrypoints.api import core as api_core
from patchgate.entrypoints.api import devices as api_devices
from patchgate.entrypoints.api import notifications as api_notifications
from patchgate.entrypoints.api import openapi as api_openapi
from patchgate.entrypoints.api import releases as api_releases
from patchgate.entrypoints.api import targeting as api_targeting
from patchgate.entrypoints.api import vulns as api_vulns
from patchgate.entrypoints.campaign_timer import CampaignTimer
from patchgate.entrypoints.console.app import create_console
from patchgate.entrypoints.ddi.app import DdiApp
from patchgate.entrypoints.downloads import Downloads
from patchgate.entrypoints.errors import error_body, http_status
from patchgate.entrypoints.fleet_metrics import FleetCollector
from patchgate.entrypoints.middleware import BodyLimit, Metrics, TrustedHost
from patchgate.entrypoints.notice_timer import NoticeTimer
from patchgate.entrypoints.runtime import make_runtime
from patchgate.entrypoints.web import csaf as web_csaf
from patchgate.entrypoints.web import public
from patchgate.services import releases
from patchgate.services.campaigns.poll import PollEngine

log = logging.getLogger("patchgate.http")

API_PREFIX = "/api/v1"
# The one route whose handler streams a large body (after checking the token) and enforces
# its own limit; every other body is bounded by ``max_request_bytes`` before it is read.
STREAMED_ROUTES = (("POST", f"{API_PREFIX}/releases"),)


def create_app(app: App | None = None) -> Any:
    """Build the ASGI app. Without ``app``, wire one from the environment (``serve``)."""
    logs.configure()
    if app is None:
        app = build(Settings.from_env())
    rt = make_runtime(app)
    if app.context.wakeups is not None:
        for collector in app.context.wakeups.collectors:
            rt.registry.register(collector)

    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(rt.close)

    api = FastAPI(
        lifespan=lifespan,
        title="patchgate",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served below from the packaged Swagger UI (works offline)
        redoc_url=None,
        description="Management API of patchgate. Devices use the hawkBit DDI API under "
        "/{tenant}/controller/v1/ instead.",
    )
    api.state.runtime = rt

    @api.exception_handler(PatchgateError)
    async def domain_error(_request: Request, exc: PatchgateError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=http_status(exc))

    @api.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors()
        ]
        return JSONResponse(
            {"error": "InvalidInput", "message": "the request is not valid", "problems": problems},
            status_code=422,
        )

    api.include_router(ops.router)
    api.include_router(public.router)
    api.include_router(api_core.router, prefix=API_PREFIX)
    api.include_router(api_vulns.router, prefix=API_PREFIX)
    api.include_router(api_releases.router, prefix=API_PREFIX)
    api.include_router(tuf.router)
    rt.tuf_refresher_stop = tuf.start_refresher(rt, app.settings.tuf_refresh_seconds)
    # Partial uploads a crash left behind, and blobs no release came to use (a refused or
    # broken-off upload); a day old, so no live upload is touched.
    app.context.artifacts.sweep_temporary(older_than_seconds=86400)
    releases.sweep_unused_blobs(app.context, older_than_seconds=releases.UNUSED_BLOB_AGE_SECONDS)
    api.include_router(api_devices.router, prefix=API_PREFIX)
    api.include_router(api_campaigns.router, prefix=API_PREFIX)
    api.include_router(api_advisories.router, prefix=API_PREFIX)
    api.include_router(api_compliance.router, prefix=API_PREFIX)
    api.include_router(api_notifications.router, prefix=API_PREFIX)
    api.include_router(api_targeting.router, prefix=API_PREFIX)
    api.include_router(web_csaf.router)
    api_openapi.install(api, API_PREFIX)
    api_openapi.serve_docs(api, f"{API_PREFIX}/docs")
    api.mount(
        "/static", StaticFiles(packages=[("patchgate.entrypoints.web", "static")]), name="static"
    )
    api.mount("/console", create_console(rt), name="console")

    # DDI requests are answered by a small ASGI handler in front of FastAPI (hot path).
    ddi_app = DdiApp(api, rt)
    # The campaign engine behind the poll (docs/ddi.md "seam"), and its timer.
    engine = PollEngine(app.context)
    ddi_app.poller.plug(engine.decide, engine.load, engine.create)
    timer = CampaignTimer(app.context, app.settings.campaign_tick_seconds)
    ddi_app.poller.on_report = timer.poke
    rt.campaign_engine = engine
    rt.campaign_timer = timer
    timer.start()
    # A committed change reaches this process's caches at its commit (docs/deploy.md).
    feed = make_state_feed(app)
    if feed is not None:
        rt.follow(feed)
    if app.settings.metrics_refresh_seconds > 0:
        rt.fleet_metrics = FleetCollector(app.context, app.settings.metrics_refresh_seconds)
        rt.registry.register(rt.fleet_metrics)
        rt.fleet_metrics.start()
    # Notices by e-mail and webhook, derived on a timer (docs/notifications.md).
    notices = NoticeTimer(
        app.context, notice_channels(app.settings), app.settings.notify_tick_seconds
    )
    rt.notice_timer = notices
    app.context.notices = notices
    notices.start()
    asgi: Any = BodyLimit(ddi_app, app.settings.max_request_bytes, STREAMED_ROUTES)
    if not app.settings.public_url:
        asgi = TrustedHost(asgi)
    metrics = Metrics(asgi, rt.registry)
    # Downloads that may be served are answered in front of every layer, counted in the
    # same metrics (docs/downloads.md).
    asgi = Downloads(metrics, rt, metrics)
    # Keep a handle for tests and for code that needs the runtime behind the middleware.
    asgi.runtime = rt
    asgi.fastapi = api
    return asgi


def serve_app() -> Any:
    """The app of a ``patchgate serve`` worker (granian's factory): :func:`create_app`, then
    everything built so far moved out of the garbage collector's sight. What the worker
    holds from its start (modules, routes, the wired app) lives as long as the process, yet
    each full collection walked all of it: about 100 ms with the event loop stopped, several
    times a second under poll load, which was most of the poll's tail latency
    (BENCHMARKS.md, "Device poll"). Collections then walk only what requests allocate."""
    asgi = create_app()
    gc.collect()
    gc.freeze()
    return asgi
