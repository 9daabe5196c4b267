"""http mode's virtual devices speak DDI as hawkBit documents it (served here by the DDI
double of the agent's tests on a loopback HTTP server; tests/e2e/test_simulate_http.py runs
them against patchgate's own server)."""

from __future__ import annotations

import asyncio
import random

import aiohttp

from patchgate.domain import ab_state
from patchgate.sim.ddi_fleet import DeviceCredentials, DeviceFaults, FleetLog, VirtualDevice
from patchgate.sim.devices import EnvTable
from tests.support import free_port
from tests.unit.agent_doubles import HawkbitDouble, ServedOverHttp, TufRepo


def run_devices(
    double: HawkbitDouble, faults: list[DeviceFaults]
) -> tuple[list[VirtualDevice], FleetLog]:
    table = EnvTable()
    env0 = table.add(ab_state.fresh_env(version="1.0.0", sha256="0" * 64, size=1))
    log = FleetLog()

    served = ServedOverHttp(double, free_port())

    async def main() -> list[VirtualDevice]:
        async with aiohttp.ClientSession() as client:
            devices = [
                VirtualDevice(
                    DeviceCredentials(f"dev-{i}", f"token-{i}"),
                    client=client,
                    server=served.url,
                    table=table,
                    env=env0,
                    faults=fault,
                    log=log,
                    time_scale=1e6,
                    rng=random.Random(i),
                )
                for i, fault in enumerate(faults)
            ]
            for _ in range(2):
                await asyncio.gather(*(d.pass_once() for d in devices))
            return devices

    try:
        return asyncio.run(main()), log
    finally:
        served.close()


def test_virtual_devices_install_report_and_revert_over_ddi() -> None:
    double = HawkbitDouble(TufRepo())
    faults = [
        DeviceFaults(
            unbootable=frozenset({"1.1.0"}) if i % 4 == 0 else frozenset(),
            power_cut=ab_state.Phase.WRITTEN if i == 1 else None,
            download_minutes=0.0,
        )
        for i in range(12)
    ]
    for i in range(12):
        double.add_device(f"dev-{i}", f"token-{i}")
        double.offer(f"dev-{i}", "1.1.0", b"image", tuf_target=None)
    devices, log = run_devices(double, faults)
    results = [double.devices[f"dev-{i}"].actions[0].result for i in range(12)]
    assert results == ["failure" if i % 4 == 0 else "success" for i in range(12)]
    assert [d.version for d in devices] == ["1.0.0" if i % 4 == 0 else "1.1.0" for i in range(12)]
    assert log.counts["closed-success"] == 9 and log.counts["closed-failure"] == 3
    assert not log.unsound
    health = double.devices["dev-2"].health
    assert health and health[-1]["running_version"] == "1.1.0"
    assert all(not ab_state.check_invariants(d.table.env(d.env)) for d in devices)


def test_a_cancelled_action_is_acknowledged_and_nothing_is_installed() -> None:
    double = HawkbitDouble(TufRepo())
    double.add_device("dev-0", "token-0")
    action = double.offer("dev-0", "1.1.0", b"image", tuf_target=None)
    double.devices["dev-0"].cancel = action.id
    devices, log = run_devices(double, [DeviceFaults(download_minutes=0.0)])
    assert action.result == "canceled"
    assert devices[0].version == "1.0.0"
    assert log.counts["cancelled"] == 1
