"""Test doubles of *other people's protocols* for the agent's tests.

- :class:`HawkbitDouble`: an in-memory server that answers as Eclipse hawkBit's published
  DDI documentation describes (base poll with ``config.polling.sleep`` and ``_links``,
  ``deploymentBase`` with chunks and artifacts, feedback with ``410 Gone`` once closed,
  ``configData``, ``cancelAction``, Range downloads), plus patchgate's ``health`` resource.
  It is served through ``httpx.MockTransport``; it stands in for hawkBit's protocol, not for
  a patchgate component (tests/e2e/test_agent_e2e.py runs the agent against patchgate's
  own server).
- :class:`TufRepo`: a small TUF repository built with ``tuf.api.metadata`` and real
  ed25519 keys, published under ``/tuf/metadata/`` (consistent snapshots), so the agent's
  ``ngclient.Updater`` verifies real signatures.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

SERVER = "https://updates.example.test"
ROLES = ("root", "timestamp", "snapshot", "targets")


class TufRepo:
    """Root, timestamp, snapshot and targets, each signed by its own ed25519 key."""

    def __init__(self) -> None:
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        self.signers: dict[str, Signer] = {r: CryptoSigner.generate_ed25519() for r in ROLES}
        self.root = Metadata(Root(expires=expires, consistent_snapshot=True))
        for role, signer in self.signers.items():
            self.root.signed.add_key(signer.public_key, role)
        self.targets = Metadata(Targets(expires=expires))
        self.snapshot = Metadata(Snapshot(expires=expires))
        self.timestamp = Metadata(Timestamp(expires=expires))
        self.files: dict[str, bytes] = {}
        self.root.sign(self.signers["root"])
        self.published: dict[str, bytes] = {"1.root.json": self.root.to_bytes()}
        self.publish()

    def root_bytes(self) -> bytes:
        return self.published["1.root.json"]

    def add_target(self, path: str, data: bytes, **custom: Any) -> TargetFile:
        info = TargetFile.from_data(path, data, ["sha256"])
        if custom:
            info.unrecognized_fields["custom"] = custom
        self.targets.signed.targets[path] = info
        self.files[path] = data
        self.publish()
        return info

    def set_custom(self, path: str, **custom: Any) -> None:
        info = self.targets.signed.targets[path]
        info.unrecognized_fields.setdefault("custom", {}).update(custom)
        self.publish()

    def publish(self, *, targets_signer: Signer | None = None) -> None:
        """Sign a new version of targets, snapshot and timestamp (TUF §4)."""
        if self.files or self.targets.signed.version > 1:
            self.targets.signed.version += 1
        self.targets.signatures.clear()
        self.targets.sign(targets_signer or self.signers["targets"])
        tv = self.targets.signed.version
        self.published[f"{tv}.targets.json"] = self.targets.to_bytes()
        self.snapshot.signed.meta["targets.json"] = MetaFile(version=tv)
        self.snapshot.signed.version = tv
        self.snapshot.signatures.clear()
        self.snapshot.sign(self.signers["snapshot"])
        self.published[f"{tv}.snapshot.json"] = self.snapshot.to_bytes()
        self.timestamp.signed.snapshot_meta = MetaFile(version=tv)
        self.timestamp.signed.version = tv
        self.timestamp.signatures.clear()
        self.timestamp.sign(self.signers["timestamp"])
        self.published["timestamp.json"] = self.timestamp.to_bytes()


@dataclass
class Action:
    id: str
    version: str
    filename: str
    data: bytes
    tuf_target: str | None
    maintenance_window: str | None = None
    status: str = "open"  # open | closed
    result: str | None = None
    feedback: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DeviceRecord:
    token: str
    actions: list[Action] = field(default_factory=list)
    config_data: dict[str, str] = field(default_factory=dict)
    health: list[dict[str, Any]] = field(default_factory=list)
    cancel: str | None = None


class HawkbitDouble:
    """The DDI side of a hawkBit server, in memory."""

    def __init__(self, repo: TufRepo, *, tenant: str = "DEFAULT", sleep: str = "00:05:00"):
        self.repo = repo
        self.tenant = tenant
        self.sleep = sleep
        self.devices: dict[str, DeviceRecord] = {}
        self.requests: list[httpx.Request] = []
        self.unavailable = 0  # answer this many requests with 503
        self.tamper: Callable[[bytes], bytes] | None = None
        self.cut_download_after: int | None = None  # drop the connection after N bytes once
        self.hook: Callable[[httpx.Request], None] | None = None
        self.base_url = SERVER

    # -- set-up --------------------------------------------------------------------------
    def add_device(self, device_id: str, token: str) -> None:
        self.devices[device_id] = DeviceRecord(token)

    def offer(
        self,
        device_id: str,
        version: str,
        data: bytes,
        *,
        tuf_target: str | None,
        action_id: str | None = None,
    ) -> Action:
        record = self.devices[device_id]
        action = Action(
            id=action_id or str(len(record.actions) + 1),
            version=version,
            filename=f"image-{version}.img",
            data=data,
            tuf_target=tuf_target,
        )
        record.actions.append(action)
        return action

    def open_action(self, device_id: str) -> Action | None:
        return next((a for a in self.devices[device_id].actions if a.status == "open"), None)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport())

    # -- the protocol --------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.hook is not None:
            self.hook(request)
        if self.unavailable:
            self.unavailable -= 1
            return httpx.Response(503, json={"message": "maintenance"})
        path = request.url.path
        if path.startswith("/tuf/metadata/"):
            name = path.removeprefix("/tuf/metadata/")
            if name in self.repo.published:
                return httpx.Response(200, content=self.repo.published[name])
            return httpx.Response(404)
        match = re.fullmatch(rf"/{self.tenant}/controller/v1/([^/]+)(/.*)?", path)
        if not match:
            return httpx.Response(404, json={"message": "not found"})
        device_id, rest = match.group(1), match.group(2) or ""
        record = self.devices.get(device_id)
        if record is None or request.headers.get("authorization") != f"TargetToken {record.token}":
            return httpx.Response(401, json={"message": "unauthorized"})
        return self._route(request, device_id, record, rest)

    def _base(self, device_id: str) -> str:
        return f"{self.base_url}/{self.tenant}/controller/v1/{device_id}"

    def _route(
        self, request: httpx.Request, device_id: str, record: DeviceRecord, rest: str
    ) -> httpx.Response:
        base = self._base(device_id)
        method = request.method
        if rest == "" and method == "GET":
            return self._poll(device_id, record, base)
        if m := re.fullmatch(r"/deploymentBase/([^/]+)", rest):
            action = self._action(record, m.group(1))
            if action is None:
                return httpx.Response(404)
            return httpx.Response(200, json=self._deployment(base, action))
        if (m := re.fullmatch(r"/deploymentBase/([^/]+)/feedback", rest)) and method == "POST":
            return self._feedback(request, record, m.group(1))
        if rest == "/configData" and method == "PUT":
            body = json.loads(request.content)
            assert body.get("mode", "merge") in {"merge", "replace", "remove"}
            record.config_data.update(body["data"])
            return httpx.Response(200)
        if rest == "/health" and method == "POST":
            record.health.append(json.loads(request.content))
            return httpx.Response(200)
        if m := re.fullmatch(r"/cancelAction/([^/]+)", rest):
            return httpx.Response(
                200, json={"id": m.group(1), "cancelAction": {"stopId": m.group(1)}}
            )
        if (m := re.fullmatch(r"/cancelAction/([^/]+)/feedback", rest)) and method == "POST":
            return self._cancel_feedback(request, record, m.group(1))
        if m := re.fullmatch(r"/softwaremodules/([^/]+)/artifacts/([^/]+)", rest):
            action = self._action(record, m.group(1))
            if action is None:
                return httpx.Response(404)
            return self._download(request, action)
        return httpx.Response(404, json={"message": f"no resource {rest}"})

    def _poll(self, device_id: str, record: DeviceRecord, base: str) -> httpx.Response:
        links: dict[str, Any] = {}
        action = self.open_action(device_id)
        if record.cancel is not None:
            links["cancelAction"] = {"href": f"{base}/cancelAction/{record.cancel}"}
        elif action is not None:
            links["deploymentBase"] = {"href": f"{base}/deploymentBase/{action.id}?c=-1"}
        if not record.config_data:
            links["configData"] = {"href": f"{base}/configData"}
        return httpx.Response(
            200, json={"config": {"polling": {"sleep": self.sleep}}, "_links": links}
        )

    def _feedback(
        self, request: httpx.Request, record: DeviceRecord, action_id: str
    ) -> httpx.Response:
        action = self._action(record, action_id)
        if action is None:
            return httpx.Response(404)
        if action.status == "closed":
            return httpx.Response(410, json={"message": "action is closed"})
        body = json.loads(request.content)
        status = body["status"]
        assert status["execution"] in {
            "closed",
            "proceeding",
            "canceled",
            "scheduled",
            "rejected",
            "resumed",
            "download",
            "downloaded",
        }
        assert status["result"]["finished"] in {"success", "failure", "none"}
        action.feedback.append(body)
        if status["execution"] == "closed":
            action.status = "closed"
            action.result = status["result"]["finished"]
        return httpx.Response(200)

    def _cancel_feedback(
        self, request: httpx.Request, record: DeviceRecord, action_id: str
    ) -> httpx.Response:
        stop = self._action(record, action_id)
        body = json.loads(request.content)
        closing = body["status"]["execution"] == "closed"
        if stop is not None and stop.status == "open" and closing:
            stop.status, stop.result = "closed", "canceled"
        record.cancel = None
        return httpx.Response(200)

    @staticmethod
    def _action(record: DeviceRecord, action_id: str) -> Action | None:
        return next((a for a in record.actions if a.id == action_id), None)

    def _deployment(self, base: str, action: Action) -> dict[str, Any]:
        metadata = (
            [] if action.tuf_target is None else [{"key": "tuf_target", "value": action.tuf_target}]
        )
        href = f"{base}/softwaremodules/{action.id}/artifacts/{action.filename}"
        return {
            "id": action.id,
            "deployment": {
                "download": "forced",
                "update": "forced",
                **(
                    {"maintenanceWindow": action.maintenance_window}
                    if action.maintenance_window
                    else {}
                ),
                "chunks": [
                    {
                        "part": "os",
                        "version": action.version,
                        "name": "firmware",
                        "metadata": metadata,
                        "artifacts": [
                            {
                                "filename": action.filename,
                                "hashes": {
                                    "sha1": hashlib.sha1(action.data).hexdigest(),  # noqa: S324
                                    "md5": hashlib.md5(action.data).hexdigest(),  # noqa: S324
                                    "sha256": hashlib.sha256(action.data).hexdigest(),
                                },
                                "size": len(action.data),
                                "_links": {"download-http": {"href": href}},
                            }
                        ],
                    }
                ],
            },
        }

    def _download(self, request: httpx.Request, action: Action) -> httpx.Response:
        data = self.tamper(action.data) if self.tamper else action.data
        start = 0
        status = 200
        if rng := request.headers.get("range"):
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            assert m, rng
            start = int(m.group(1))
            if start >= len(data):
                return httpx.Response(416)
            status = 206
        body = data[start:]
        headers = {"content-length": str(len(body)), "accept-ranges": "bytes"}
        if status == 206:
            headers["content-range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if self.cut_download_after is not None:
            cut = self.cut_download_after
            self.cut_download_after = None
            return httpx.Response(status, headers=headers, stream=_Broken(body[:cut]))
        return httpx.Response(status, headers=headers, content=body)


class _Broken(httpx.SyncByteStream):
    """A body that ends in a dropped connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield self.data
        raise httpx.ReadError("connection reset")


class ServedOverHttp:
    """The double on a real loopback HTTP server, for tests of the ``patchgate agent``
    command (which builds its own ``httpx.Client``)."""

    def __init__(self, double: HawkbitDouble, port: int) -> None:
        import http.server
        import threading

        self.double = double
        self.url = f"http://127.0.0.1:{port}"
        double.base_url = self.url
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = httpx.Request(
                    self.command,
                    outer.url + self.path,
                    headers=dict(self.headers.items()),
                    content=body,
                )
                response = outer.double.handle(request)
                content = response.read()
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in {"content-length", "transfer-encoding"}:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = _serve  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
