"""A DDI device for the end-to-end tests: it speaks DDI strictly as hawkBit's documentation
describes it, over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Env
from tests.support import LiveServer

NONE = {"result": {"finished": "none"}}


@dataclass
class Device:
    """A device speaking DDI strictly as the documentation describes it."""

    server: LiveServer
    controller_id: str
    token: str
    tenant: str = "DEFAULT"

    @property
    def base(self) -> str:
        return f"{self.server.url}/{self.tenant}/controller/v1/{self.controller_id}"

    def _headers(self, auth: str | None) -> dict[str, str]:
        if auth is None:
            auth = f"TargetToken {self.token}"
        return {"Authorization": auth, "Accept": "application/hal+json"} if auth else {}

    def get(self, path: str = "", auth: str | None = None, **kw: Any) -> httpx.Response:
        url = path if path.startswith("http") else self.base + path
        return httpx.get(url, headers={**self._headers(auth), **kw.pop("headers", {})}, **kw)

    def post(
        self, path: str, body: Any = None, auth: str | None = None, **kw: Any
    ) -> httpx.Response:
        return httpx.post(self.base + path, json=body, headers=self._headers(auth), **kw)

    def put(
        self, path: str, body: Any = None, auth: str | None = None, **kw: Any
    ) -> httpx.Response:
        return httpx.put(self.base + path, json=body, headers=self._headers(auth), **kw)

    def poll(self) -> dict[str, Any]:
        answer = self.get()
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def feedback(
        self,
        action: int | str,
        execution: str,
        finished: str = "none",
        *,
        channel: str = "deploymentBase",
        **extra: Any,
    ) -> httpx.Response:
        status: dict[str, Any] = {"execution": execution, "result": {"finished": finished}, **extra}
        return self.post(f"/{channel}/{action}/feedback", {"id": str(action), "status": status})


def add_device(env: Env, server: LiveServer, cid: str, *args: str) -> Device:
    result = env.cli("device", "add", cid, *args, "--json")
    assert result.code == 0, result.stderr
    return Device(server, cid, result.json()["token"])


def event_count(env: Env, action_id: int) -> int:
    with env.ctx.read_uow() as uow:
        return len(uow.actions.events(action_id))
