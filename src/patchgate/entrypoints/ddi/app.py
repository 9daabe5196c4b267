"""hawkBit DDI under ``/{tenant}/controller/v1/{controllerId}``, as a small ASGI handler.

The poll is the hot path, so DDI requests bypass FastAPI's routing and dependency machinery:
one regular expression picks the resource, one handler per resource runs its service call
in a worker thread, and the body is written directly. Everything else is passed on to the
wrapped application. Shapes follow hawkBit's DDI documentation field by field
(``shapes``; docs/ddi.md); what devices send is checked in ``parse``; JSON or CBOR,
ETags and quotas in ``wire``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from patchgate.bootstrap import make_async_device_auth_reader, make_device_auth_reader
from patchgate.domain import actions as rules
from patchgate.domain import strict
from patchgate.domain.errors import (
    PatchgateError,
    Unauthorized,
)
from patchgate.entrypoints import bodies
from patchgate.entrypoints.ddi import parse, shapes, wire
from patchgate.entrypoints.errors import ddi_error_body, ddi_status
from patchgate.entrypoints.runtime import Runtime
from patchgate.entrypoints.store_answers import blob_answer
from patchgate.services import ddi
from patchgate.services.artifact_ports import BlobRef
from patchgate.services.device_ports import ArtifactView

T = TypeVar("T")
log = logging.getLogger("patchgate.ddi")

PATH = re.compile(r"^/(?P<tenant>[^/]+)/controller/v1/(?P<cid>[^/]+)(?P<rest>/.*)?$")
ACTION = re.compile(r"^/(deploymentBase|cancelAction|confirmationBase|installedBase)/(\d{1,18})$")
FEEDBACK = re.compile(r"^/(deploymentBase|cancelAction|confirmationBase)/(\d{1,18})/feedback$")
MODULE = re.compile(r"^/softwaremodules/(\d{1,18})/artifacts$")
ARTIFACT = re.compile(r"^/softwaremodules/(\d{1,18})/artifacts/([^/]+)$")
AUTO_CONFIRM = re.compile(r"^/confirmationBase/(activateAutoConfirm|deactivateAutoConfirm)$")
MAX_DDI_BODY = 64 * 1024
FLUSH_SECONDS = 1.0


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if status == 401:
        # Same answer whether the tenant or the device exists or not.
        return Response(
            status_code=401, headers={"www-authenticate": 'TargetToken realm="patchgate"'}
        )
    body = ddi_error_body(status, message)
    return wire.answer(status, body, wire.JSON_TYPE, headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _ok() -> Response:
    return Response(status_code=200)


@dataclass
class Call:
    """One DDI request below the controller's resource, once authenticated."""

    scope: Scope
    receive: Receive
    caller: ddi.Caller
    rest: str
    method: str
    media_type: str
    base: str

    def allow(self, *methods: str) -> None:
        if self.method not in methods:
            raise HttpError(405, f"use {' or '.join(methods)}")


Handler = Callable[[Call, "re.Match[str]"], Awaitable[Response]]


class DdiApp:
    """The DDI resources; any other path goes to ``fallback``."""

    def __init__(self, fallback: ASGIApp, rt: Runtime) -> None:
        self.fallback = fallback
        self.rt = rt
        self.ctx = rt.ctx
        settings = rt.app.settings
        self.sleep_seconds = settings.poll_sleep_seconds
        self.max_body = min(MAX_DDI_BODY, settings.max_request_bytes)
        self.trusted_proxies = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
        )
        self.trusted_authorities = settings.ddi_trusted_authorities
        self.quota = wire.Quota(settings.ddi_quota_per_minute)
        # On PostgreSQL the poll's read is awaited, so the loop keeps answering; elsewhere
        # it runs inline on the event loop's thread, on a connection of its own. Other DDI
        # resources read in worker threads through the pool.
        self.async_reader = make_async_device_auth_reader(rt.app)
        inline = None if self.async_reader else make_device_auth_reader(rt.app, dedicated=True)
        self.poller = ddi.Poller(rt.ctx, reader=inline)
        self.reader = make_device_auth_reader(rt.app)
        rt.ddi_poller = self.poller
        self.polls = Counter(
            "patchgate_ddi_polls_total",
            "DDI base polls, by outcome",
            ["outcome"],
            registry=rt.registry,
        )
        self.polls_ok = self.polls.labels("ok")
        self.polls_unauthorized = self.polls.labels("unauthorized")
        self.feedback = Counter(
            "patchgate_ddi_feedback_total",
            "DDI feedback messages, by channel and execution",
            ["channel", "execution"],
            registry=rt.registry,
        )
        self._flusher: threading.Thread | None = None
        self._flusher_lock = threading.Lock()
        self.routes: tuple[tuple[re.Pattern[str], Handler], ...] = (
            (ACTION, self._action),
            (FEEDBACK, self._feedback),
            (re.compile(r"^/confirmationBase$"), self._auto_confirm_state),
            (AUTO_CONFIRM, self._auto_confirm),
            (re.compile(r"^/configData$"), self._config_data),
            (re.compile(r"^/installedBase$"), self._installed_base),
            (re.compile(r"^/health$"), self._health),
            (MODULE, self._module),
            (ARTIFACT, self._artifact),
        )

    # The last-seen flusher starts with the first poll, so building the app starts nothing.
    def _ensure_flusher(self) -> None:
        if self._flusher is not None:
            return
        with self._flusher_lock:
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="ddi-last-seen", daemon=True
                )
                self._flusher.start()

    def _flush_loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(FLUSH_SECONDS):
            try:
                self.poller.last_seen.flush(self.ctx)
            except Exception:  # keep flushing; the next round retries
                log.exception("writing last-seen times failed; retrying")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        match = PATH.match(scope["path"])
        if match is None:
            await self.fallback(scope, receive, send)
            return
        try:
            response = await self._handle(scope, receive, match)
        except HttpError as exc:
            response = _error(exc.status, exc.message, exc.headers)
        except PatchgateError as exc:
            response = _error(ddi_status(exc), exc.message)
        await response(scope, receive, send)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn)

    async def _body(self, scope: Scope, receive: Receive) -> Any:
        # Bounded and strict (entrypoints/bodies.py): 413 past the limit, 400 for hostile
        # JSON (deep nesting, NUL, lone surrogates, NaN, integers past 64 bits).
        return await bodies.read_json(receive, self.max_body)

    async def _payload(self, scope: Scope, receive: Receive) -> Any:
        """The request body: CBOR when its ``Content-Type`` says so (hawkBit accepts
        ``application/cbor``), else JSON through :meth:`_body`."""
        content_type = _header(scope, b"content-type")
        if not content_type or not content_type.lower().startswith(wire.CBOR_TYPE):
            return await self._body(scope, receive)
        raw = await bodies.read_bytes(receive, self.max_body)  # 413 past the limit
        try:
            decoded = wire.decode(raw, content_type)
        except (ValueError, RecursionError) as exc:
            raise HttpError(400, f"the body is not valid CBOR: {exc}") from None
        # The same limits as JSON bodies (domain/strict.py): depth, text, numbers.
        strict.check_value(decoded, "the body")
        return decoded

    def _proxy_identity(self, scope: Scope) -> ddi.ProxyIdentity | None:
        """The client certificate a trusted TLS-terminating proxy vouches for, as hawkBit
        reads it: ``X-Controller-Id`` and ``X-Authority`` (or ``X-Authority-0``, ``-1``…).
        Headers from any other address are ignored."""
        if not self.trusted_proxies:
            return None
        controller_id = _header(scope, b"x-controller-id")
        client = scope.get("client")
        if controller_id is None or not client:
            return None
        try:
            peer = ipaddress.ip_address(client[0])
        except ValueError:
            return None
        if not any(peer in network for network in self.trusted_proxies):
            return None
        authorities: list[str] = []
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            if name == "x-authority" or re.fullmatch(r"x-authority-\d{1,3}", name):
                authorities.extend(re.split(r"[;,]", value.decode("latin-1")))
        return ddi.ProxyIdentity(controller_id, tuple(a for a in authorities if a.strip()))

    def _base(self, scope: Scope, tenant: str, cid: str) -> str:
        public = self.rt.app.settings.public_url
        if public:
            root = public.rstrip("/")
        else:
            host = next((v for k, v in scope["headers"] if k == b"host"), None)
            if host is not None:
                root = f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}"
            else:
                root = str(Request(scope).base_url).rstrip("/")
        return f"{root}/{tenant}/controller/v1/{cid}"

    def _over_quota(self, caller: ddi.Caller, kind: str) -> None:
        wait = self.quota.retry_after((f"{caller.row.tenant}/{caller.controller_id}", kind))
        if wait is not None:
            raise HttpError(
                429,
                f"too many {kind} requests from this device; retry in {wait} s",
                {"retry-after": str(wait)},
            )

    async def _handle(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        tenant, cid = match["tenant"], match["cid"]
        rest = match["rest"] or ""
        if rest == "/":
            rest = ""
        method = scope["method"]
        try:
            media_type = wire.choose(_header(scope, b"accept"))
        except wire.NotAcceptable as exc:
            if not ARTIFACT.match(rest):  # artifacts are bytes, whatever Accept says
                raise HttpError(406, str(exc)) from None
            media_type = wire.JSON_TYPE
        auth = _header(scope, b"authorization")
        proxy = self._proxy_identity(scope)
        if rest == "":
            if method != "GET":
                raise HttpError(405, "use GET")
            return await self._poll(scope, tenant, cid, auth, proxy, media_type)
        for pattern, handler in self.routes:
            if m := pattern.match(rest):
                caller = await self._run(lambda: self._authenticate(tenant, cid, auth, proxy))
                base = self._base(scope, tenant, cid)
                call = Call(scope, receive, caller, rest, method, media_type, base)
                return await handler(call, m)
        await self._run(lambda: self._authenticate(tenant, cid, auth, proxy))
        raise HttpError(404, "no such resource")

    def _authenticate(
        self, tenant: str, cid: str, auth: str | None, proxy: ddi.ProxyIdentity | None
    ) -> ddi.Caller:
        return ddi.authenticate(
            self.ctx,
            tenant,
            cid,
            auth,
            self.reader,
            proxy=proxy,
            trusted_authorities=self.trusted_authorities,
        )

    # --- one handler per resource ------------------------------------------------------------

    async def _action(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("GET")
        kind, action_id, ctx, caller = m[1], int(m[2]), self.ctx, call.caller
        if kind == "cancelAction":
            action = await self._run(lambda: ddi.cancel_request(ctx, caller, action_id))
            body = {"id": str(action.id), "cancelAction": {"stopId": str(action.id)}}
            return wire.answer(200, body, call.media_type)
        history = parse.history_param(call.scope.get("query_string", b"").decode("latin-1"))
        view_fn = {
            "deploymentBase": ddi.deployment,
            "confirmationBase": ddi.confirmation,
            "installedBase": ddi.installed,
        }[kind]
        view = await self._run(lambda: view_fn(ctx, caller, action_id, history=history))
        key = "confirmation" if kind == "confirmationBase" else "deployment"
        return wire.answer(200, shapes.deployment_json(view, call.base, key), call.media_type)

    async def _feedback(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("POST")
        kind, action_id, ctx, caller = m[1], int(m[2]), self.ctx, call.caller
        self._over_quota(caller, "feedback")
        body = await self._payload(call.scope, call.receive)
        if kind == "confirmationBase":
            confirmed, code, details = parse.parse_confirmation(body)
            await self._run(
                lambda: ddi.confirmation_feedback(
                    ctx, caller, action_id, confirmed=confirmed, code=code, details=details
                )
            )
            self.feedback.labels("confirmation", "confirmed" if confirmed else "denied").inc()
            return _ok()
        fb = parse.parse_feedback(body)
        apply = ddi.deployment_feedback if kind == "deploymentBase" else ddi.cancel_feedback
        await self._run(lambda: apply(ctx, caller, action_id, fb))
        self.poller.reported()
        channel = "deployment" if kind == "deploymentBase" else "cancel"
        self.feedback.labels(channel, fb.execution.value).inc()
        return _ok()

    async def _auto_confirm_state(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("GET")
        state = await self._run(lambda: ddi.auto_confirm_state(self.ctx, call.caller))
        return wire.answer(200, shapes.auto_confirm_json(state, call.base), call.media_type)

    async def _auto_confirm(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("POST")
        active = m[1] == "activateAutoConfirm"
        body = await self._payload(call.scope, call.receive)
        data = parse.obj(body, "the body") if body is not None else {}
        initiator = parse.opt_str(data.get("initiator"), "initiator", 255)
        remark = parse.opt_str(data.get("remark"), "remark", 1024)
        await self._run(
            lambda: ddi.set_auto_confirm(
                self.ctx, call.caller, active, initiator=initiator, remark=remark
            )
        )
        return _ok()

    async def _config_data(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("PUT")
        attributes, mode = parse.parse_config(await self._payload(call.scope, call.receive))
        await self._run(lambda: ddi.config_data(self.ctx, call.caller, attributes, mode))
        self.poller.reported()
        return _ok()

    async def _installed_base(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("PUT")
        name, version = parse.parse_installed(await self._payload(call.scope, call.receive))
        done = await self._run(lambda: ddi.installed_version(self.ctx, call.caller, name, version))
        self.poller.reported()
        # hawkBit: 201 when this call recorded the assignment, 200 when it was known.
        status = 201 if done.created else 200
        return wire.answer(status, {"id": str(done.action.id)}, call.media_type)

    async def _health(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("POST")
        self._over_quota(call.caller, "feedback")
        report = parse.parse_health(await self._payload(call.scope, call.receive))
        release_id = await self._run(lambda: ddi.report_health(self.ctx, call.caller, report))
        self.poller.reported()
        return wire.answer(200, {"stored": True, "release_id": release_id}, call.media_type)

    async def _module(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("GET")
        module_id = int(m[1])
        release = await self._run(lambda: ddi.module_artifacts(self.ctx, call.caller, module_id))
        body = [shapes.artifact_json(release, a, call.base) for a in release.artifacts]
        return wire.answer(200, body, call.media_type)

    async def _artifact(self, call: Call, m: re.Match[str]) -> Response:
        call.allow("GET", "HEAD")
        module_id, filename = int(m[1]), m[2]
        md5sum = filename.endswith(".MD5SUM")
        name = filename.removesuffix(".MD5SUM") if md5sum else filename
        artifact = await self._run(lambda: ddi.artifact_for(self.ctx, call.caller, module_id, name))
        if md5sum:
            return Response(
                f"{artifact.md5}  {artifact.filename}\n".encode(), media_type="text/plain"
            )
        return self._file(call.scope, artifact)

    def _file(self, scope: Scope, artifact: ArtifactView) -> Response:
        if_match = _header(scope, b"if-match")
        etag = f'"{artifact.sha256}"'
        if if_match is not None and not wire.not_modified(if_match, etag):
            # RFC 9110 13.1.1: the client holds another version of the file.
            raise HttpError(412, "If-Match does not name this artifact's ETag")
        # The same serving as /tuf/targets: Range, If-Range, HEAD, ETag and 304.
        # A local blob's file, or the remote store's redirect or stream (docs/storage.md).
        answer = blob_answer(
            self.rt.ctx.artifacts,
            BlobRef(artifact.sha256, artifact.size),
            filename=artifact.filename,
        )
        if answer is None:
            raise HttpError(404, "the artifact's bytes are not in the store")
        return answer

    # --- the base poll -------------------------------------------------------------------------

    async def _authenticate_poll(
        self, tenant: str, cid: str, auth: str | None, proxy: ddi.ProxyIdentity | None
    ) -> ddi.Caller:
        if self.async_reader is not None:
            return await ddi.authenticate_async(
                tenant,
                cid,
                auth,
                self.async_reader,
                proxy=proxy,
                trusted_authorities=self.trusted_authorities,
            )
        return self.poller.authenticate(tenant, cid, auth, proxy, self.trusted_authorities)

    def _sleep(self, caller: ddi.Caller, state: rules.PollState) -> str:
        seconds: float = self.sleep_seconds
        row = caller.row
        if state.open_action_id is not None and state.open_action_id == row.action_id:
            seconds = rules.sleep_before_window(seconds, row.action_window_start, self.ctx.clock())
        return rules.polling_sleep(seconds)

    async def _poll(
        self,
        scope: Scope,
        tenant: str,
        cid: str,
        auth: str | None,
        proxy: ddi.ProxyIdentity | None,
        media_type: str,
    ) -> Response:
        poller = self.poller
        try:
            # The hot path runs on the loop: one prepared read, inline on SQLite (tens of
            # microseconds, less than a hop to a worker thread), awaited on PostgreSQL (the
            # loop answers other polls during the round trip). Only a poll that must write
            # (registration, a new offer) goes to a thread.
            caller = await self._authenticate_poll(tenant, cid, auth, proxy)
            self._over_quota(caller, "poll")  # before the poll may write (registration, offer)
            ready = poller.prepare(caller)  # the campaign core decides here, once
            if isinstance(ready, rules.PollState):
                state = ready
            else:
                state = await self._run(lambda: poller.poll(caller, ready))
        except Unauthorized:
            self.polls_unauthorized.inc()
            raise
        self._ensure_flusher()
        self.polls_ok.inc()
        body = shapes.poll_json(state, self._sleep(caller, state), self._base(scope, tenant, cid))
        content = wire.encode(body, media_type)
        tag = wire.etag(content)
        if wire.not_modified(_header(scope, b"if-none-match"), tag):
            return Response(status_code=304, headers={"etag": tag})
        return Response(content, headers={"content-type": media_type, "etag": tag})
