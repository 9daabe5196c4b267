"""http mode's virtual devices (:class:`patchgate.sim.ddi_fleet.VirtualDevice`) against a
real ``patchgate serve``, on SQLite and PostgreSQL: releases made by the real release
service, offered with ``device assign`` and withdrawn with ``device cancel``, as
tests/e2e/test_agent_e2e.py does for the agent."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest

from patchgate.domain import ab_state
from patchgate.sim.ddi_fleet import DeviceCredentials, DeviceFaults, FleetLog, VirtualDevice
from patchgate.sim.devices import EnvTable
from tests.conftest import Env
from tests.factories import MadeRelease, action_status, assign, make_release
from tests.support import LiveServer

HARDWARE = "demo-gw-1"


@pytest.fixture
def release(env: Env) -> MadeRelease:
    return make_release(
        env, "1.1.0", {"rootfs-1.1.0.img": b"image 1.1.0\n" * 64}, hardware=[HARDWARE]
    )


def add_device(env: Env, cid: str) -> DeviceCredentials:
    result = env.cli("device", "add", cid, "--hardware", HARDWARE, "--version", "1.0.0", "--json")
    assert result.code == 0, result.stderr
    return DeviceCredentials(cid, result.json()["token"])


def run_devices(
    server: LiveServer, credentials: list[DeviceCredentials], faults: list[DeviceFaults]
) -> tuple[list[VirtualDevice], FleetLog]:
    """Two passes of every device, all devices at once."""
    table = EnvTable()
    env0 = table.add(ab_state.fresh_env(version="1.0.0", sha256="0" * 64, size=1))
    log = FleetLog()

    async def main() -> list[VirtualDevice]:
        async with aiohttp.ClientSession() as client:
            devices = [
                VirtualDevice(
                    creds,
                    client=client,
                    server=server.url,
                    table=table,
                    env=env0,
                    faults=fault,
                    log=log,
                    time_scale=1e6,
                    rng=random.Random(i),
                )
                for i, (creds, fault) in enumerate(zip(credentials, faults, strict=True))
            ]
            for _ in range(2):
                await asyncio.gather(*(d.pass_once() for d in devices))
            return devices

    return asyncio.run(main()), log


def device_health(server: LiveServer, env: Env, cid: str) -> list[dict[str, Any]]:
    with server.client(env.admin_token) as client:
        shown = client.get(f"/api/v1/devices/{cid}")
    assert shown.status_code == 200, shown.text
    return list(shown.json()["health"])


def test_virtual_devices_install_report_and_revert_over_ddi(
    env: Env, server: LiveServer, release: MadeRelease
) -> None:
    count = 12
    credentials = [add_device(env, f"vd-{i}") for i in range(count)]
    actions = [assign(env, c.device_id, release) for c in credentials]
    faults = [
        DeviceFaults(
            unbootable=frozenset({"1.1.0"}) if i % 4 == 0 else frozenset(),
            power_cut=ab_state.Phase.WRITTEN if i == 1 else None,
            download_minutes=0.0,
        )
        for i in range(count)
    ]
    devices, log = run_devices(server, credentials, faults)
    statuses = [action_status(env, a) for a in actions]
    assert statuses == ["error" if i % 4 == 0 else "finished" for i in range(count)]
    assert [d.version for d in devices] == [
        "1.0.0" if i % 4 == 0 else "1.1.0" for i in range(count)
    ]
    assert log.counts["closed-success"] == 9 and log.counts["closed-failure"] == 3
    assert not log.unsound
    health = device_health(server, env, "vd-2")
    assert health and health[0]["running_version"] == "1.1.0"
    assert all(not ab_state.check_invariants(d.table.env(d.env)) for d in devices)
    # The env names the release, not the device's DDI action: devices that went the same
    # way share one env.
    healthy = {d.env for i, d in enumerate(devices) if i % 4 != 0 and i != 1}
    reverted = {d.env for i, d in enumerate(devices) if i % 4 == 0}
    assert len(healthy) == 1 and len(reverted) == 1


def test_a_cancelled_action_is_acknowledged_and_nothing_is_installed(
    env: Env, server: LiveServer, release: MadeRelease
) -> None:
    credentials = add_device(env, "vd-0")
    action = assign(env, "vd-0", release)
    cancelled = env.cli("device", "cancel", str(action), "--reason", "withdrawn")
    assert cancelled.code == 0, cancelled.stderr
    devices, log = run_devices(server, [credentials], [DeviceFaults(download_minutes=0.0)])
    assert action_status(env, action) == "canceled"
    assert devices[0].version == "1.0.0"
    assert log.counts["cancelled"] == 1
