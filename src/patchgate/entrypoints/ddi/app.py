"""hawkBit DDI under ``/{tenant}/controller/v1/{controllerId}``, as a small ASGI handler.

The poll is the hot path, so DDI requests bypass FastAPI's routing and dependency machinery:
one regular expression picks the resource, the service call runs in a worker thread, and
the JSON is written directly. Everything else is passed on to the wrapped application.
Shapes follow hawkBit's DDI documentation field by field (see docs/ddi.md).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from patchgate.bootstrap import make_async_device_auth_reader, make_device_auth_reader
from patchgate.domain import actions as rules
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PatchgateError,
    TooLarge,
    Unauthorized,
)
from patchgate.entrypoints import bodies
from patchgate.entrypoints.runtime import Runtime
from patchgate.entrypoints.tuf import artifact_response
from patchgate.services import ddi
from patchgate.services.device_ports import ArtifactView

T = TypeVar("T")
log = logging.getLogger("patchgate.ddi")

PATH = re.compile(r"^/(?P<tenant>[^/]+)/controller/v1/(?P<cid>[^/]+)(?P<rest>/.*)?$")
ACTION = re.compile(r"^/(deploymentBase|cancelAction|confirmationBase|installedBase)/(\d{1,18})$")
FEEDBACK = re.compile(r"^/(deploymentBase|cancelAction|confirmationBase)/(\d{1,18})/feedback$")
ARTIFACT = re.compile(r"^/softwaremodules/(\d{1,18})/artifacts/([^/]+)$")
MAX_DDI_BODY = 64 * 1024
JSON_TYPE = b"application/hal+json;charset=UTF-8"
FLUSH_SECONDS = 1.0


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _status_of(exc: PatchgateError) -> int:
    if isinstance(exc, rules.ActionGone):
        return 410
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, Conflict):
        return 409
    return 400


def _json(status: int, body: Any) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        headers={"content-type": JSON_TYPE.decode()},
    )


def _error(status: int, message: str) -> Response:
    if status == 401:
        # Same answer whether the tenant or the device exists or not.
        return Response(
            status_code=401, headers={"www-authenticate": 'TargetToken realm="patchgate"'}
        )
    codes = {
        400: "hawkbit.server.error.rest.body.notReadable",
        404: "hawkbit.server.error.repo.entitiyNotFound",
        409: "hawkbit.server.error.repo.entitiyAlreadyExists",
        410: "hawkbit.server.error.action.gone",
        413: "hawkbit.server.error.quota.sizeExceeded",
    }
    return _json(
        status,
        {"errorCode": codes.get(status, "hawkbit.server.error"), "message": message},
    )


# --- validation of device input (strict types, extra fields tolerated) ----------------------


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    return value


def _opt_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where} must be an integer")
    if not -(2**62) < value < 2**62:
        raise InvalidInput(f"{where} is out of range")
    return value


def _opt_num(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where} must be a number")
    return float(value)


def _opt_str(value: Any, where: str, limit: int = 128) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string")
    if len(value) > limit:
        raise InvalidInput(f"{where} is over {limit} characters")
    return value


def _details(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("status.details must be a list of strings")
    if len(value) > 100:
        raise InvalidInput("status.details has more than 100 entries")
    return tuple(v[:2048] for v in value)


def parse_feedback(body: Any) -> ddi.Feedback:
    """A DDI feedback message (``id``, ``time``, ``timestamp`` and unknown fields are
    tolerated; ``status.execution`` is required; ``result.finished`` defaults to none)."""
    status = _obj(_obj(body, "the body").get("status"), "status")
    execution = status.get("execution")
    try:
        if not isinstance(execution, str):
            raise ValueError(execution)
        parsed_execution = rules.Execution(execution)
    except ValueError:
        known = ", ".join(e.value for e in rules.Execution)
        raise InvalidInput(f"unknown status.execution {execution!r} (known: {known})") from None
    result = status.get("result")
    result = _obj(result, "status.result") if result is not None else {}
    finished = result.get("finished", "none")
    try:
        parsed_finished = rules.Finished(str(finished) if isinstance(finished, str) else "?")
    except ValueError:
        raise InvalidInput(
            f"unknown status.result.finished {finished!r} (success, failure, none)"
        ) from None
    progress = result.get("progress")
    progress = _obj(progress, "status.result.progress") if progress is not None else {}
    cnt = _opt_int(progress.get("cnt"), "status.result.progress.cnt")
    of = _opt_int(progress.get("of"), "status.result.progress.of")
    return ddi.Feedback(
        execution=parsed_execution,
        finished=parsed_finished,
        progress_cnt=cnt,
        progress_of=of,
        details=_details(status.get("details")),
        code=_opt_int(status.get("code"), "status.code"),
    )


HEALTH_FIELDS = frozenset(
    {"running_version", "boot_count", "uptime_s", "uptime", "crash_count", "watchdog_count"}
)


def parse_health(body: Any) -> ddi.Health:
    """A health report. Top-level fields beyond the known ones (a simulator's ``crashes``
    and ``exposure_hours``, an agent's slot) are kept as free-form metrics when they are
    numbers, strings or booleans; ``metrics`` wins on a clash."""
    data = _obj(body, "the body")
    metrics = data.get("metrics") or {}
    metrics = dict(_obj(metrics, "metrics"))
    for key, value in data.items():
        if key in HEALTH_FIELDS or key == "metrics" or key in metrics:
            continue
        if value is None or isinstance(value, bool | int | float | str):
            metrics[key] = value
    for key, value in metrics.items():
        if len(key) > 128 or not (value is None or isinstance(value, bool | int | float | str)):
            raise InvalidInput(f"metrics.{key[:40]} must be a number, string or boolean")
    if len(metrics) > 200:
        raise InvalidInput("at most 200 metrics per report")

    def count(name: str) -> int | None:
        value = _opt_int(data.get(name), name)
        if value is not None and value < 0:
            raise InvalidInput(f"{name} must not be negative")
        return value

    uptime = _opt_num(data.get("uptime_s", data.get("uptime")), "uptime_s")
    if uptime is not None and uptime < 0:
        raise InvalidInput("uptime_s must not be negative")
    return ddi.Health(
        running_version=_opt_str(data.get("running_version"), "running_version"),
        boot_count=count("boot_count"),
        uptime_s=uptime,
        crash_count=count("crash_count"),
        watchdog_count=count("watchdog_count"),
        metrics=dict(metrics),
    )


# --- the handler ---------------------------------------------------------------------------


class DdiApp:
    """The DDI resources; any other path goes to ``fallback``."""

    def __init__(self, fallback: ASGIApp, rt: Runtime) -> None:
        self.fallback = fallback
        self.rt = rt
        self.ctx = rt.ctx
        settings = rt.app.settings
        self.sleep = rules.polling_sleep(settings.poll_sleep_seconds)
        self.max_body = min(MAX_DDI_BODY, settings.max_request_bytes)
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
            response = _error(exc.status, exc.message)
        except PatchgateError as exc:
            response = _error(_status_of(exc), exc.message)
        await response(scope, receive, send)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn)

    async def _body(self, scope: Scope, receive: Receive) -> Any:
        # Bounded and strict (entrypoints/bodies.py): 413 past the limit, 400 for hostile
        # JSON (deep nesting, NUL, lone surrogates, NaN, integers past 64 bits).
        return await bodies.read_json(receive, self.max_body)

    def _authorization(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return str(value.decode("latin-1"))
        return None

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

    async def _handle(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Response:
        tenant, cid = match["tenant"], match["cid"]
        rest = match["rest"] or ""
        if rest == "/":
            rest = ""
        method = scope["method"]
        auth = self._authorization(scope)
        ctx = self.ctx

        def authenticate() -> ddi.Caller:
            return ddi.authenticate(ctx, tenant, cid, auth, self.reader)

        if rest == "":
            if method != "GET":
                raise HttpError(405, "use GET")
            return await self._poll(scope, tenant, cid, auth)
        caller = await self._run(authenticate)
        history = _history_param(scope)

        if m := ACTION.match(rest):
            kind, action_id = m[1], int(m[2])
            if method != "GET":
                raise HttpError(405, "use GET")
            base = self._base(scope, tenant, cid)
            if kind == "cancelAction":
                action = await self._run(lambda: ddi.cancel_request(ctx, caller, action_id))
                return _json(
                    200, {"id": str(action.id), "cancelAction": {"stopId": str(action.id)}}
                )
            view_fn = {
                "deploymentBase": ddi.deployment,
                "confirmationBase": ddi.confirmation,
                "installedBase": ddi.installed,
            }[kind]
            view = await self._run(lambda: view_fn(ctx, caller, action_id, history=history))
            key = "confirmation" if kind == "confirmationBase" else "deployment"
            return _json(200, deployment_json(view, base, key))

        if m := FEEDBACK.match(rest):
            kind, action_id = m[1], int(m[2])
            if method != "POST":
                raise HttpError(405, "use POST")
            body = await self._body(scope, receive)
            if kind == "confirmationBase":
                data = _obj(body, "the body")
                answer = data.get("confirmation")
                if answer not in ("confirmed", "denied"):
                    raise InvalidInput("confirmation must be 'confirmed' or 'denied'")
                code = _opt_int(data.get("code"), "code")
                details = _details(data.get("details"))
                await self._run(
                    lambda: ddi.confirmation_feedback(
                        ctx,
                        caller,
                        action_id,
                        confirmed=answer == "confirmed",
                        code=code,
                        details=details,
                    )
                )
                self.feedback.labels("confirmation", answer).inc()
                return Response(status_code=200)
            fb = parse_feedback(body)
            apply = ddi.deployment_feedback if kind == "deploymentBase" else ddi.cancel_feedback
            await self._run(lambda: apply(ctx, caller, action_id, fb))
            self.poller.reported()
            self.feedback.labels(
                "deployment" if kind == "deploymentBase" else "cancel", fb.execution.value
            ).inc()
            return Response(status_code=200)

        if rest == "/confirmationBase":
            if method != "GET":
                raise HttpError(405, "use GET")
            state = await self._run(lambda: ddi.auto_confirm_state(ctx, caller))
            return _json(200, auto_confirm_json(state, self._base(scope, tenant, cid)))

        if rest in (
            "/confirmationBase/activateAutoConfirm",
            "/confirmationBase/deactivateAutoConfirm",
        ):
            if method != "POST":
                raise HttpError(405, "use POST")
            active = rest.endswith("/activateAutoConfirm")
            body = await self._body(scope, receive)
            data = _obj(body, "the body") if body is not None else {}
            initiator = _opt_str(data.get("initiator"), "initiator", 255)
            remark = _opt_str(data.get("remark"), "remark", 1024)
            await self._run(
                lambda: ddi.set_auto_confirm(
                    ctx, caller, active, initiator=initiator, remark=remark
                )
            )
            return Response(status_code=200)

        if rest == "/configData":
            if method != "PUT":
                raise HttpError(405, "use PUT")
            data = _obj(await self._body(scope, receive), "the body")
            attributes = _obj(data.get("data"), "data")
            if not all(isinstance(v, str) for v in attributes.values()):
                raise InvalidInput("every value in data must be a string")
            mode = data.get("mode", "merge")
            if not isinstance(mode, str):
                raise InvalidInput("mode must be a string")
            await self._run(lambda: ddi.config_data(ctx, caller, attributes, mode.lower()))
            return Response(status_code=200)

        if rest == "/installedBase":
            if method != "PUT":
                raise HttpError(405, "use PUT")
            data = _obj(await self._body(scope, receive), "the body")
            name = _opt_str(data.get("name"), "name", 255)
            version = _opt_str(data.get("version"), "version")
            if not version:
                raise InvalidInput("version is required")
            action = await self._run(lambda: ddi.installed_version(ctx, caller, name, version))
            return _json(200, {"id": str(action.id)})

        if rest == "/health":
            if method != "POST":
                raise HttpError(405, "use POST")
            report = parse_health(await self._body(scope, receive))
            release_id = await self._run(lambda: ddi.report_health(ctx, caller, report))
            self.poller.reported()
            return _json(200, {"stored": True, "release_id": release_id})

        if m := ARTIFACT.match(rest):
            if method not in ("GET", "HEAD"):
                raise HttpError(405, "use GET or HEAD")
            module_id, filename = int(m[1]), m[2]
            md5sum = filename.endswith(".MD5SUM")
            name = filename.removesuffix(".MD5SUM") if md5sum else filename
            artifact = await self._run(lambda: ddi.artifact_for(ctx, caller, module_id, name))
            if md5sum:
                return Response(
                    f"{artifact.md5}  {artifact.filename}\n".encode(), media_type="text/plain"
                )
            return self._file(scope, artifact)

        raise HttpError(404, "no such resource")

    def _file(self, scope: Scope, artifact: ArtifactView) -> Response:
        store = self.rt.ctx.artifacts
        path = store.local_path(artifact.sha256) if store is not None else None
        if path is None or not path.is_file():
            raise HttpError(404, "the artifact's bytes are not in the store")
        # The same serving as /tuf/targets: Range, If-Range, HEAD, ETag and 304.
        return artifact_response(Request(scope), artifact.sha256, path, filename=artifact.filename)

    async def _poll(self, scope: Scope, tenant: str, cid: str, auth: str | None) -> Response:
        poller = self.poller
        try:
            # The hot path runs on the loop: one prepared read, inline on SQLite (tens of
            # microseconds, less than a hop to a worker thread), awaited on PostgreSQL (the
            # loop answers other polls during the round trip). Only a poll that must write
            # (registration, a new offer) goes to a thread.
            if self.async_reader is not None:
                caller = await ddi.authenticate_async(tenant, cid, auth, self.async_reader)
            else:
                caller = poller.authenticate(tenant, cid, auth)
            state = poller.answer_without_writing(caller)
            if state is None:
                state = await self._run(lambda: poller.poll(caller))
        except Unauthorized:
            self.polls_unauthorized.inc()
            raise
        self._ensure_flusher()
        self.polls_ok.inc()
        base = self._base(scope, tenant, cid)
        links = {name: {"href": f"{base}/{rel}"} for name, rel in rules.poll_links(state).items()}
        body = {"config": {"polling": {"sleep": self.sleep}}, "_links": links}
        return Response(
            json.dumps(body, separators=(",", ":")).encode(),
            headers={"content-type": JSON_TYPE.decode()},
        )


def _history_param(scope: Scope) -> int:
    query = scope.get("query_string", b"").decode("latin-1")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "actionHistory":
            try:
                return max(-1, int(value))
            except ValueError:
                raise HttpError(400, "actionHistory must be an integer") from None
    return 0


def deployment_json(view: ddi.DeploymentView, base: str, key: str) -> dict[str, Any]:
    """``deploymentBase``/``confirmationBase``/``installedBase`` body: one chunk per
    artifact, each naming its TUF target in ``metadata``."""
    release = view.release
    chunks = []
    for artifact in release.artifacts:
        href = f"{base}/softwaremodules/{artifact.id}/artifacts/{artifact.filename}"
        chunks.append(
            {
                "part": "os",
                "version": release.version,
                "name": release.product,
                "metadata": [
                    {"key": "tuf_target", "value": artifact.tuf_target},
                    {"key": "release_id", "value": str(release.id)},
                    {"key": "release_type", "value": release.type},
                ],
                "artifacts": [
                    {
                        "filename": artifact.filename,
                        "hashes": {
                            "sha1": artifact.sha1,
                            "md5": artifact.md5,
                            "sha256": artifact.sha256,
                        },
                        "size": artifact.size,
                        "_links": {
                            "download": {"href": href},
                            "download-http": {"href": href},
                            "md5sum": {"href": f"{href}.MD5SUM"},
                            "md5sum-http": {"href": f"{href}.MD5SUM"},
                        },
                    }
                ],
            }
        )
    deployment: dict[str, Any] = {
        "download": view.download,
        "update": view.update,
        "chunks": chunks,
    }
    if view.maintenance_window is not None:
        deployment["maintenanceWindow"] = view.maintenance_window
    body: dict[str, Any] = {"id": str(view.action.id), key: deployment}
    if view.history:
        messages = []
        for event in view.history:
            text = "; ".join(event.details) if event.details else (event.execution or "")
            messages.append(f"{rfc3339(event.at)} {event.execution or event.channel}: {text}")
        body["actionHistory"] = {"status": view.action.status, "messages": messages}
    return body


def auto_confirm_json(state: ddi.AutoConfirm, base: str) -> dict[str, Any]:
    auto: dict[str, Any] = {"active": state.active}
    if state.active:
        if state.initiator:
            auto["initiator"] = state.initiator
        if state.remark:
            auto["remark"] = state.remark
        if state.activated_at:
            auto["activatedAt"] = int(state.activated_at.timestamp() * 1000)
    links: dict[str, Any] = {}
    if state.active:
        links["deactivateAutoConfirm"] = {"href": f"{base}/confirmationBase/deactivateAutoConfirm"}
    else:
        links["activateAutoConfirm"] = {"href": f"{base}/confirmationBase/activateAutoConfirm"}
    if state.waiting_action_id is not None:
        key = rules.cache_key(
            state.waiting_action_id,
            rules.Status.WAITING_CONFIRMATION,
            state.waiting_release_id or 0,
        )
        links["confirmationBase"] = {
            "href": f"{base}/confirmationBase/{state.waiting_action_id}?c={key}"
        }
    return {"autoConfirm": auto, "_links": links}
