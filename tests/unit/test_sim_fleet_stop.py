"""Stopping http mode's fleet (:func:`patchgate.sim.ddi_fleet.stop_fleet`): devices asleep
between passes end at once, and no device waits on the shared stop event (a timed-out
waiter's removal from that event scans the whole fleet: docs/simulator.md "Load figures of
http runs")."""

from __future__ import annotations

import asyncio
import random

import aiohttp

from patchgate.domain import ab_state
from patchgate.sim.ddi_fleet import (
    DeviceCredentials,
    DeviceFaults,
    FleetGate,
    FleetLog,
    VirtualDevice,
    stop_fleet,
)
from patchgate.sim.devices import EnvTable


def _fleet(
    client: aiohttp.ClientSession, server: str, count: int, log: FleetLog, **options: float
) -> list[VirtualDevice]:
    """``count`` virtual devices on the factory image, with no faults."""
    table = EnvTable()
    env0 = table.add(ab_state.fresh_env(version="1.0.0", sha256="0" * 64, size=1))
    return [
        VirtualDevice(
            DeviceCredentials(f"dev-{i}", "token"),
            client=client,
            server=server,
            table=table,
            env=env0,
            faults=DeviceFaults(),
            log=log,
            rng=random.Random(i),
            **options,
        )
        for i in range(count)
    ]


def test_a_sleeping_fleet_stops_at_once_without_waiting_on_the_stop_event() -> None:
    log = FleetLog()

    async def main() -> tuple[list[VirtualDevice], list[asyncio.Task[None]], int]:
        stop = asyncio.Event()
        # A device that polled would count an error.
        async with aiohttp.ClientSession() as client:
            # No server listens there; their first pass an hour away: every device is
            # asleep.
            devices = _fleet(client, "http://127.0.0.1:9", 2000, log, start_spread=3600.0)
            tasks = [asyncio.create_task(d.run(stop)) for d in devices]
            await asyncio.sleep(0.05)
            waiters = len(stop._waiters)  # type: ignore[attr-defined]
            asleep = sum(d.idle for d in devices)
            assert asleep == len(devices)
            await asyncio.wait_for(stop_fleet(devices, tasks, stop), timeout=30)
            return devices, tasks, waiters

    devices, tasks, waiters = asyncio.run(main())
    assert waiters == 0
    assert all(t.done() for t in tasks)
    assert not any(d.idle for d in devices)
    assert log.counts == {}


def test_devices_stuck_in_a_pass_are_cut_after_the_grace_and_counted() -> None:
    """A server that accepts and never answers: every device is in the middle of its
    first poll when the run ends; the stop waits the grace, then cuts them and says how
    many, instead of waiting for answers that never come."""
    log = FleetLog()

    async def main() -> tuple[int, list[asyncio.Task[None]]]:
        held: list[asyncio.StreamWriter] = []

        async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        async with aiohttp.ClientSession() as client:
            devices = _fleet(client, f"http://127.0.0.1:{port}", 20, log)
            tasks = [asyncio.create_task(d.run(stop)) for d in devices]
            while len(held) < len(devices):
                await asyncio.sleep(0.01)
            assert not any(d.idle for d in devices)
            cut = await asyncio.wait_for(stop_fleet(devices, tasks, stop, grace=0.2), 30)
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
        return cut, tasks

    cut, tasks = asyncio.run(main())
    assert cut == 20
    assert all(t.done() for t in tasks)
    assert log.counts["errors"] == 0


def test_the_fleet_gate_lets_its_slots_through_in_arrival_order_and_skips_the_cancelled() -> None:
    """Two slots: the first two in go straight through, the rest wait and enter in the
    order they came; a cancelled waiter never gets a slot, and one cancelled just as a
    slot reached it passes the slot on, so no slot is lost."""

    async def scenario() -> list[str]:
        gate = FleetGate(2)
        entered: list[str] = []
        release = asyncio.Event()

        async def request(name: str) -> None:
            async with gate:
                entered.append(name)
                await release.wait()

        tasks = {n: asyncio.create_task(request(n)) for n in "abcdefg"}
        await asyncio.sleep(0)
        assert entered == ["a", "b"]
        tasks["c"].cancel()  # waiting: skipped
        tasks["e"].cancel()
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        # A slot handed to a waiter that is cancelled before it runs goes to the next.
        gate2 = FleetGate(1)
        order: list[str] = []

        async def hold(name: str, until: asyncio.Event) -> None:
            async with gate2:
                order.append(name)
                await until.wait()

        forever = asyncio.Event()
        await gate2.__aenter__()  # the test holds the one slot
        late = asyncio.create_task(hold("y", forever))
        last = asyncio.create_task(hold("z", asyncio.Event()))
        await asyncio.sleep(0)  # both queue
        await gate2.__aexit__(None, None, None)  # hands the slot to "y" ...
        late.cancel()  # ... cancelled before it runs: "z" must get the slot
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        last.cancel()
        await asyncio.gather(late, last, return_exceptions=True)
        return [*entered, "|", *order]

    assert asyncio.run(scenario()) == ["a", "b", "d", "f", "g", "|", "z"]


def test_cancelling_a_long_queue_at_the_gate_leaves_it_whole() -> None:
    """A stopped fleet cancels every device queued at the gate (tens of thousands behind a
    slow server): each is marked and skipped, none is searched for in the queue, and the
    gate's slots are all there afterwards."""

    async def scenario() -> int:
        gate = FleetGate(4)
        hold = asyncio.Event()

        async def request() -> None:
            async with gate:
                await hold.wait()

        queued = [asyncio.create_task(request()) for _ in range(50_000)]
        await asyncio.sleep(0)
        for task in queued[4:]:
            task.cancel()
        await asyncio.gather(*queued[4:], return_exceptions=True)
        hold.set()
        await asyncio.gather(*queued[:4])
        inside = 0

        async def count() -> None:
            nonlocal inside
            async with gate:
                inside += 1
                await asyncio.sleep(0)

        await asyncio.gather(*(count() for _ in range(8)))
        return inside

    assert asyncio.run(scenario()) == 8
