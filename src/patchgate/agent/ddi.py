"""A client of Eclipse hawkBit's Direct Device Integration (DDI) API, written from its
published documentation rather than from patchgate's server.

Resources used (all under ``{server}/{tenant}/controller/v1/{controllerId}``, authenticated
with ``Authorization: TargetToken <token>``):

- ``GET`` the base: ``config.polling.sleep`` (``HH:MM:SS``) and ``_links`` to
  ``deploymentBase``, ``cancelAction``, ``configData``, ``installedBase``.
- ``GET deploymentBase/{actionId}``: ``id`` and ``deployment`` (``download``, ``update``,
  ``chunks[]`` with ``part``, ``version``, ``name``, ``metadata[]`` of ``key``/``value``,
  ``artifacts[]`` with ``filename``, ``size``, ``hashes`` and ``_links.download(-http)``).
- ``POST deploymentBase/{actionId}/feedback``: ``status.execution`` (``proceeding``,
  ``download``, ``downloaded``, ``scheduled``, ``resumed``, ``canceled``, ``rejected``,
  ``closed``), ``status.result.finished`` (``none``, ``success``, ``failure``),
  ``status.result.progress`` (``cnt``/``of``), ``status.details[]``. An action that is
  already closed answers ``410 Gone``.
- ``GET cancelAction/{actionId}`` and ``POST cancelAction/{actionId}/feedback``.
- ``PUT configData``: ``mode`` (``merge``) and ``data`` (string attributes).
- patchgate's addition: ``POST health`` with the device's telemetry.

Every request goes through one ``httpx.Client``, so tests pass ``httpx.MockTransport``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from patchgate.agent.errors import ActionGone, DdiError, RestartFromZero, ServerUnavailable

__all__ = [
    "ActionGone",
    "Artifact",
    "Chunk",
    "DdiClient",
    "DdiError",
    "Deployment",
    "PollReply",
    "ServerUnavailable",
    "link_href",
    "parse_deployment",
    "parse_sleep",
]


DOWNLOAD_CHUNK = 64 * 1024


def parse_sleep(value: str | None, default: float = 300.0) -> float:
    """``HH:MM:SS`` (DDI ``config.polling.sleep``) in seconds."""
    if not value:
        return default
    try:
        hours, minutes, seconds = (int(part) for part in value.split(":"))
    except ValueError:
        return default
    return float(hours * 3600 + minutes * 60 + seconds)


def link_href(links: Mapping[str, Any], name: str) -> str | None:
    """The ``href`` of HAL link ``name`` in ``_links``, if there is one."""
    link = links.get(name)
    if isinstance(link, Mapping) and isinstance(link.get("href"), str):
        return str(link["href"])
    return None


@dataclass(frozen=True)
class PollReply:
    sleep_seconds: float
    deployment_href: str | None = None
    cancel_href: str | None = None
    config_data_href: str | None = None


@dataclass(frozen=True)
class Artifact:
    filename: str
    size: int
    hashes: Mapping[str, str]
    download_href: str | None


@dataclass(frozen=True)
class Chunk:
    part: str
    version: str
    name: str
    metadata: Mapping[str, str]
    artifacts: tuple[Artifact, ...]


@dataclass(frozen=True)
class Deployment:
    action_id: str
    download: str
    update: str
    chunks: tuple[Chunk, ...] = field(default_factory=tuple)
    maintenance_window: str | None = None

    @property
    def may_install(self) -> bool:
        """False while DDI says to wait: ``update: skip`` or a maintenance window that is
        ``unavailable`` (download allowed, installation not yet)."""
        return self.update != "skip" and self.maintenance_window != "unavailable"


def parse_deployment(data: Mapping[str, Any]) -> Deployment:
    """A ``deploymentBase`` answer; :class:`DdiError` when it is malformed."""
    try:
        body = data["deployment"]
        chunks = []
        for raw in body.get("chunks", []):
            metadata = {
                str(item["key"]): str(item["value"]) for item in raw.get("metadata", []) or []
            }
            artifacts = tuple(
                Artifact(
                    filename=str(art["filename"]),
                    size=int(art.get("size", 0)),
                    hashes={str(k): str(v) for k, v in (art.get("hashes") or {}).items()},
                    download_href=link_href(art.get("_links", {}), "download")
                    or link_href(art.get("_links", {}), "download-http"),
                )
                for art in raw.get("artifacts", [])
            )
            chunks.append(
                Chunk(
                    part=str(raw.get("part", "")),
                    version=str(raw.get("version", "")),
                    name=str(raw.get("name", "")),
                    metadata=metadata,
                    artifacts=artifacts,
                )
            )
        return Deployment(
            action_id=str(data["id"]),
            download=str(body.get("download", "forced")),
            update=str(body.get("update", "forced")),
            chunks=tuple(chunks),
            maintenance_window=body.get("maintenanceWindow"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DdiError(f"malformed deploymentBase answer: {exc}") from exc


class DdiClient:
    """One device's conversation with a DDI server."""

    def __init__(
        self,
        server: str,
        *,
        tenant: str,
        controller_id: str,
        token: str,
        client: httpx.Client,
    ) -> None:
        self.server = server.rstrip("/")
        self.tenant = tenant
        self.controller_id = controller_id
        self.client = client
        self.headers = {
            "Authorization": f"TargetToken {token}",
            "Accept": "application/hal+json, application/json",
        }

    @property
    def base(self) -> str:
        return f"{self.server}/{self.tenant}/controller/v1/{self.controller_id}"

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, url, headers=self.headers, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"{method} {url}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnavailable(f"{method} {url}: HTTP {response.status_code}")
        if response.status_code == 410:
            raise ActionGone(f"{method} {url}: the action is closed (410)")
        if response.status_code >= 400:
            raise DdiError(f"{method} {url}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def _json(self, response: httpx.Response) -> Mapping[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise DdiError(f"{response.request.url}: not JSON") from exc
        if not isinstance(data, Mapping):
            raise DdiError(f"{response.request.url}: not a JSON object")
        return data

    def poll(self) -> PollReply:
        """The base poll: how long to sleep and which actions are waiting."""
        data = self._json(self._request("GET", self.base))
        links = data.get("_links") or {}
        sleep = ((data.get("config") or {}).get("polling") or {}).get("sleep")
        return PollReply(
            sleep_seconds=parse_sleep(sleep),
            deployment_href=link_href(links, "deploymentBase"),
            cancel_href=link_href(links, "cancelAction"),
            config_data_href=link_href(links, "configData"),
        )

    def deployment(self, href: str) -> Deployment:
        return parse_deployment(self._json(self._request("GET", href)))

    def action_url(self, action_id: str) -> str:
        return f"{self.base}/deploymentBase/{action_id}"

    def feedback(
        self,
        action_id: str,
        execution: str,
        *,
        finished: str = "none",
        progress: tuple[int, int] | None = None,
        details: Sequence[str] = (),
    ) -> None:
        """Report a step of ``action_id``. :class:`ActionGone` when it is closed already."""
        result: dict[str, Any] = {"finished": finished}
        if progress is not None:
            result["progress"] = {"cnt": progress[0], "of": progress[1]}
        body = {
            "timestamp": int(time.time() * 1000),
            "status": {"execution": execution, "result": result, "details": list(details)},
        }
        self._request("POST", f"{self.action_url(action_id)}/feedback", json=body)

    def cancel_action(self, href: str) -> str:
        """The id of the action the server asks to cancel."""
        data = self._json(self._request("GET", href))
        cancel = data.get("cancelAction") or {}
        return str(cancel.get("stopId", data.get("id", "")))

    def cancel_feedback(
        self, cancel_id: str, execution: str, finished: str, details: Sequence[str]
    ) -> None:
        body = {
            "timestamp": int(time.time() * 1000),
            "status": {
                "execution": execution,
                "result": {"finished": finished},
                "details": list(details),
            },
        }
        url = f"{self.base}/cancelAction/{cancel_id}/feedback"
        self._request("POST", url, json=body)

    def config_data(self, attributes: Mapping[str, str]) -> None:
        """Merge the device's attributes (running version, slot, hardware) on the server."""
        body = {"mode": "merge", "data": dict(attributes)}
        self._request("PUT", f"{self.base}/configData", json=body)

    def health(self, telemetry: Mapping[str, Any]) -> None:
        """patchgate's health telemetry resource, next to the DDI resources."""
        self._request("POST", f"{self.base}/health", json=dict(telemetry))

    def download(self, href: str, *, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Stream an artifact from byte ``start`` (HTTP Range); yields ``(total, chunk)``.

        A server that ignores the Range header answers 200 with the whole body; the
        caller then sees ``start`` reset to zero through :class:`RestartFromZero`."""
        headers = dict(self.headers)
        headers["Accept"] = "application/octet-stream"
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            with self.client.stream("GET", href, headers=headers) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise ServerUnavailable(f"GET {href}: HTTP {response.status_code}")
                if response.status_code == 416:
                    raise RestartFromZero("range not satisfiable")
                if response.status_code >= 400:
                    raise DdiError(f"GET {href}: HTTP {response.status_code}")
                if start and response.status_code != 206:
                    raise RestartFromZero("the server ignored the Range header")
                total = int(response.headers.get("content-length", "0")) + start
                for chunk in response.iter_bytes(chunk_size=DOWNLOAD_CHUNK):
                    yield total, chunk
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"GET {href}: {exc}") from exc
