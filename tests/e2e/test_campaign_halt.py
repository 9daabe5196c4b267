"""A halt is obeyed by every process from its commit: two ``patchgate serve`` processes on
one database (PostgreSQL and SQLite), the halt committed by a third (the CLI), real DDI
polls over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.options import CreateOptions
from tests.conftest import Env
from tests.e2e.test_campaigns import HW, Device
from tests.factories import make_release
from tests.support import LiveServer


@pytest.fixture
def two_servers(env: Env, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    first = LiveServer(env.vars, tmp_path / "first.log").start()
    second = LiveServer(env.vars, tmp_path / "second.log").start()
    yield first, second
    first.stop()
    second.stop()


def _devices(env: Env, server: LiveServer, count: int, prefix: str) -> list[Device]:
    made = []
    for i in range(count):
        cid = f"{prefix}-{i}"
        token = device_service.add_device(
            env.ctx, cid, groups=["qa"], hardware=HW, version="1.0.0", actor="test"
        ).token
        made.append(Device(server, cid, token))
    return made


class _Watcher:
    """Reads, through the campaign repository (as every view does), how many of the
    campaign's actions are cancelled, over and over while the halt runs: one transaction
    shows none or all of them, never a part."""

    def __init__(self, env: Env, campaign: int) -> None:
        self.engine = create_engine(env.database_url)
        self.env = env
        self.campaign = campaign
        self.seen: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def marked(self) -> int:
        with self.env.ctx.read_uow() as uow:
            actions = uow.campaigns.actions(self.campaign)
        return sum(a.status in ("canceling", "canceled") for a in actions)

    def state_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT max(version) FROM state_version")).scalar_one())

    def _run(self) -> None:
        while not self.stop.is_set():
            self.seen.add(self.marked())

    def __enter__(self) -> _Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.seen.add(self.marked())
        self.engine.dispose()


def test_at_the_halts_commit_every_pending_action_answers_cancel_on_every_process(
    env: Env, two_servers: tuple[LiveServer, LiveServer]
) -> None:
    first, second = two_servers
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, security_version=2)
    devices = _devices(env, first, 6, "pending")
    campaign = commands.create(env.ctx, release.id, CreateOptions(stages="qa,100"), actor="t")
    commands.start(env.ctx, campaign, actor="t")
    for i, device in enumerate(devices):
        action = device.deployment()
        assert action is not None, device.controller_id
        if i % 2:
            device.feedback(action, "download")  # some have started downloading
    with _Watcher(env, campaign) as watcher:
        before = watcher.state_version()
        assert watcher.marked() == 0
        halted = env.cli("campaign", "halt", str(campaign), "--reason", "boot loop")
        assert halted.code == 0, halted.stderr
        after = watcher.state_version()
    # One transaction: a reader saw none marked, then all six, nothing in between; one
    # state-version change; one audit entry naming the count; one cancellation time.
    assert watcher.seen <= {0, len(devices)} and len(devices) in watcher.seen, watcher.seen
    assert after == before + 1
    with env.ctx.read_uow() as uow:
        actions = uow.campaigns.actions(campaign)
    assert {a.status for a in actions} == {"canceling"}
    log = env.cli("audit", "list", "--subject", f"campaign:{campaign}", "--json")
    assert log.code == 0, log.stderr
    entries = [e for e in log.json()["entries"] if e["action"] == "campaign.halted"]
    assert len(entries) == 1 and entries[0]["details"]["cancelled_actions"] == len(devices)
    # From that commit, every process answers each of them with cancelAction.
    for server in (first, second):
        for device in devices:
            links = device.on(server).poll()
            assert "cancelAction" in links and "deploymentBase" not in links, (
                server.url,
                device.controller_id,
                links,
            )
    # The sweep (a tick) marks their rows: one step each, all at the one cancellation time.
    assert env.cli("campaign", "tick").code == 0
    with env.ctx.read_uow() as uow:
        actions = uow.campaigns.actions(campaign)
    assert {a.status for a in actions} == {"canceling"}
    assert len({a.steps[-1].at for a in actions}) == 1
    assert all(a.steps[-1].status_after == "canceling" for a in actions)


def test_no_poll_that_starts_after_the_halts_commit_offers_the_release(
    env: Env, two_servers: tuple[LiveServer, LiveServer]
) -> None:
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, security_version=2)
    devices = _devices(env, two_servers[0], 24, "busy")
    campaign = commands.create(env.ctx, release.id, CreateOptions(stages="qa,100"), actor="t")
    commands.start(env.ctx, campaign, actor="t")
    committed = threading.Event()
    stop = threading.Event()
    late_offers: list[str] = []
    failures: list[str] = []
    polls_after = [0]
    offered_before: set[str] = set()
    busy = threading.Event()  # every device has been offered the release: polls in flight
    enough = threading.Event()  # every device polled four times after the commit
    lock = threading.Lock()

    def hammer(server: LiveServer, share: list[Device]) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                for device in share:
                    after = committed.is_set()  # read before the poll starts
                    answer = client.get(
                        f"{server.url}/DEFAULT/controller/v1/{device.controller_id}",
                        headers={"Authorization": f"TargetToken {device.token}"},
                    )
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text}")
                        continue
                    links = answer.json().get("_links", {})
                    with lock:
                        if not after:
                            if "deploymentBase" in links:
                                offered_before.add(device.controller_id)
                            if len(offered_before) == len(devices):
                                busy.set()
                            continue
                        polls_after[0] += 1
                        if "deploymentBase" in links:
                            late_offers.append(f"{server.url} {device.controller_id}")
                        if polls_after[0] >= 4 * len(devices):
                            enough.set()

    threads = [
        threading.Thread(target=hammer, args=(server, devices[i::4]))
        for i, server in enumerate(two_servers * 2)
    ]
    for thread in threads:
        thread.start()
    try:
        assert busy.wait(60), f"offered before the halt: {sorted(offered_before)}"
        halted = env.cli("campaign", "halt", str(campaign), "--reason", "field reports")
        assert halted.code == 0, halted.stderr
        committed.set()  # the CLI returned, so the halt has committed
        assert enough.wait(60), f"{polls_after[0]} polls after the commit"
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == []
    assert late_offers == []
