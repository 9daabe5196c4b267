"""The revert target per device, end to end: a ``patchgate serve`` process, the campaigns
halted and reverted through the CLI, devices speaking DDI over HTTP (SQLite and
PostgreSQL). After campaign 1 (release 2) and campaign 2 (release 3) both halt,
``campaign revert 2`` sends every device back to the last release it ran that was not
halted, never to release 2, and the overlapping revert of campaign 1 moves nobody twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from patchgate.services import devices as device_service
from tests.conftest import Env
from tests.e2e.test_campaigns import HW, Device
from tests.factories import make_release
from tests.support import LiveServer


@pytest.fixture
def server(env: Env, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(env.vars, tmp_path / "serve.log").start()
    yield live
    live.stop()


def _offer(device: Device) -> tuple[int, str] | None:
    """The action id and version of the deployment offered at this poll, if any."""
    link = device.poll().get("deploymentBase")
    if link is None:
        return None
    headers = {"Authorization": f"TargetToken {device.token}", "Accept": "application/hal+json"}
    body: dict[str, Any] = httpx.get(link["href"], headers=headers, timeout=30).json()
    return int(body["id"]), str(body["deployment"]["chunks"][0]["version"])


def _install(device: Device, version: str) -> None:
    offered = _offer(device)
    assert offered is not None and offered[1] == version, (device.controller_id, offered)
    device.feedback(offered[0], "proceeding")
    device.feedback(offered[0], "closed", "success")


def _cli(env: Env, *args: str) -> dict[str, Any]:
    result = env.cli(*args, "--json")
    assert result.code == 0, result.stderr
    return dict(result.json())


def _campaign(env: Env, release_id: int) -> int:
    made = _cli(env, "campaign", "create", str(release_id), "--stages", "qa,100")
    _cli(env, "campaign", "start", str(made["id"]))
    return int(made["id"])


def test_revert_targets_each_devices_last_good_release_over_ddi(
    env: Env, server: LiveServer
) -> None:
    one = make_release(env, "1.0.0", {"fw.bin": b"one"}, security_version=1)
    two = make_release(env, "2.0.0", {"fw.bin": b"two"}, security_version=2)
    three = make_release(env, "3.0.0", {"fw.bin": b"three"}, security_version=3)
    devices = {}
    for cid in ("via-two", "from-one"):
        token = device_service.add_device(
            env.ctx, cid, groups=["qa"], hardware=HW, version="1.0.0", actor="test"
        ).token
        devices[cid] = Device(server, cid, token)
    first = _campaign(env, two.id)
    _install(devices["via-two"], "2.0.0")
    assert _cli(env, "campaign", "halt", str(first), "--reason", "boot loops")["state"] == "halted"
    second = _campaign(env, three.id)
    _install(devices["via-two"], "3.0.0")
    _install(devices["from-one"], "3.0.0")
    _cli(env, "campaign", "halt", str(second), "--reason", "boot loops")

    reverted = _cli(env, "campaign", "revert", str(second))
    assert reverted["state"] == "reverting"
    assert reverted["revert_to_release_id"] == one.id  # not release 2, halted for boot loops
    assert reverted["revert"]["targets"] == [
        {"release_id": one.id, "version": "1.0.0", "devices": 2}
    ]
    overlapping = _cli(env, "campaign", "revert", str(first))
    assert overlapping["revert"]["devices"] == 0
    for device in devices.values():
        _install(device, "1.0.0")
        assert _offer(device) is None  # moved once
    shown = _cli(env, "campaign", "status", str(second))
    assert shown["revert"]["targets"][0]["devices"] == 2
