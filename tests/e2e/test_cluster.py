"""Several server processes on one PostgreSQL, as docs/deploy.md runs them: three
``patchgate serve`` processes (one of them ``--workers 2``) behind one client that spreads
its requests over their ports. A halt through any one is obeyed by all from its commit and
reaches every process's caches at once (LISTEN/NOTIFY); gates are evaluated once per tick
across the cluster; a process killed mid-campaign loses no acknowledged feedback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.options import CreateOptions
from tests.conftest import Env
from tests.e2e.test_campaigns import HW
from tests.factories import make_release
from tests.support import PG_ADMIN_URL, free_port

pytestmark = pytest.mark.skipif(not PG_ADMIN_URL, reason="PATCHGATE_TEST_POSTGRES is not set")

TICK_SECONDS = 1.0


@pytest.fixture
def backend() -> str:
    return "postgresql"  # a cluster shares one PostgreSQL


@dataclass
class Process:
    """One ``patchgate serve`` (its own process group, so SIGKILL takes its workers too)."""

    env: dict[str, str]
    log_path: Path
    workers: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Process:
        command = ["serve", "--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "patchgate.entrypoints.cli", *command],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            if len(self.listening_pids()) >= self.workers:
                return self
            time.sleep(0.2)
        raise AssertionError(f"server did not listen: {self.log_path.read_text()[-2000:]}")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def listening_pids(self) -> set[int]:
        """The worker processes that have started listening for state changes."""
        return {
            int(line["pid"])
            for line in self.log_lines()
            if line.get("message", "").startswith("state notices: listening")
        }

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def cluster(env: Env, tmp_path: Path) -> Iterator[list[Process]]:
    settings = {**env.vars, "PATCHGATE_CAMPAIGN_TICK": str(TICK_SECONDS)}
    procs = [
        Process(settings, tmp_path / "a.log"),
        Process(settings, tmp_path / "b.log"),
        Process(settings, tmp_path / "c.log", workers=2),
    ]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@dataclass(frozen=True)
class Device:
    controller_id: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"TargetToken {self.token}", "Accept": "application/hal+json"}


def _devices(env: Env, count: int, prefix: str) -> list[Device]:
    return [
        Device(
            f"{prefix}-{i}",
            device_service.add_device(
                env.ctx, f"{prefix}-{i}", groups=["qa"], hardware=HW, version="1.0.0", actor="t"
            ).token,
        )
        for i in range(count)
    ]


def _poll(client: httpx.Client, url: str, device: Device) -> dict[str, Any]:
    answer = client.get(f"{url}/DEFAULT/controller/v1/{device.controller_id}",
                        headers=device.headers())  # fmt: skip
    assert answer.status_code == 200, answer.text
    return dict(answer.json().get("_links", {}))


def _running_campaign(env: Env, stages: str, **options: Any) -> int:
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, security_version=2)
    campaign = commands.create(
        env.ctx, release.id, CreateOptions(stages=stages, **options), actor="t"
    )
    commands.start(env.ctx, campaign, actor="t")
    return campaign


def test_a_halt_through_any_process_is_obeyed_by_all_from_its_commit(
    env: Env, cluster: list[Process]
) -> None:
    devices = _devices(env, 30, "busy")
    campaign = _running_campaign(env, "qa,100")
    urls = [p.url for p in cluster] + [cluster[2].url]  # the two-worker process twice
    committed = threading.Event()
    stop = threading.Event()
    late: list[str] = []
    after = Counter[str]()

    def hammer(offset: int) -> None:
        with httpx.Client(timeout=30) as client:
            turn = offset
            while not stop.is_set():
                for device in devices[offset::4]:
                    url = urls[turn % len(urls)]  # round-robin over the processes
                    turn += 1
                    was_committed = committed.is_set()  # read before the poll starts
                    links = _poll(client, url, device)
                    if was_committed:
                        after[url] += 1
                        if "deploymentBase" in links:
                            late.append(f"{url} {device.controller_id}")

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # offers being made on every process
        with httpx.Client(timeout=30) as admin:
            halted = admin.post(
                f"{cluster[1].url}/api/v1/campaigns/{campaign}/halt",
                json={"reason": "field reports"},
                headers={"Authorization": f"Bearer {env.admin_token}"},
            )
        assert halted.status_code == 200, halted.text
        committed.set()  # the API answered, so the halt has committed
        halted_at = time.monotonic()
        while sum(after.values()) < 4 * len(devices) and time.monotonic() < halted_at + 60:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert late == []
    assert all(after[p.url] > 0 for p in cluster), after
    # Every worker of every process heard the halt's version pushed at the commit, with
    # no poll needed to read it (the version read stays the fallback).
    version = int(httpx.get(f"{cluster[0].url}/healthz", timeout=10).json()["state_version"])
    deadline = time.monotonic() + 20
    while True:
        missing = {p.log_path.name: _heard(p, version) for p in cluster}
        missing = {k: v for k, v in missing.items() if v}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not missing, missing


def _heard(proc: Process, version: int) -> set[int]:
    """The workers of ``proc`` that have not yet rebuilt their caches for ``version``."""
    heard = {
        int(line["pid"])
        for line in proc.log_lines()
        if line.get("message", "").startswith("state version")
        and int(line.get("state_version", 0)) >= version
    }
    return proc.listening_pids() - heard


def test_gates_are_evaluated_once_per_tick_across_the_cluster(
    env: Env, cluster: list[Process]
) -> None:
    _devices(env, 3, "gated")
    # Nobody reports: the gate waits for finished devices, and only the timer evaluates.
    campaign = _running_campaign(env, "qa,100", min_finished=3)

    def evaluations() -> list[tuple[str, dict[str, Any]]]:
        return [
            (proc.log_path.name, line)
            for proc in cluster
            for line in proc.log_lines()
            if line.get("message", "").startswith(f"campaign {campaign}: gates evaluated")
        ]

    deadline = time.monotonic() + 60
    while len({line["tick"] for _, line in evaluations()}) < 6:
        assert time.monotonic() < deadline, evaluations()  # the timer runs, tick after tick
        time.sleep(TICK_SECONDS)
    ticks = Counter(line["tick"] for _, line in evaluations())
    assert max(ticks.values()) == 1, ticks  # four timers, one evaluation per tick


def _feedback(
    client: httpx.Client, urls: list[str], turn: int, device: Device, action: int, status: dict
) -> int:
    """Feedback sent to the next process that answers; the status code acknowledged."""
    body = {"id": str(action), "status": status}
    for attempt in range(len(urls) * 3):
        url = urls[(turn + attempt) % len(urls)]
        try:
            answer = client.post(
                f"{url}/DEFAULT/controller/v1/{device.controller_id}"
                f"/deploymentBase/{action}/feedback",
                json=body,
                headers=device.headers(),
            )
        except httpx.TransportError:
            continue  # that process is gone: the client moves on, as a balancer does
        return answer.status_code
    raise AssertionError("no process answered")


def _offer(client: httpx.Client, urls: list[str], turn: int, device: Device) -> int | None:
    for attempt in range(len(urls) * 3):
        url = urls[(turn + attempt) % len(urls)]
        try:
            links = _poll(client, url, device)
            link = links.get("deploymentBase")
            if link is None:
                return None
            return int(client.get(link["href"], headers=device.headers()).json()["id"])
        except httpx.TransportError:
            continue
    raise AssertionError("no process answered")


def test_a_process_killed_mid_campaign_loses_no_acknowledged_feedback(
    env: Env, cluster: list[Process]
) -> None:
    devices = _devices(env, 24, "kill")
    campaign = _running_campaign(env, "100")
    urls = [p.url for p in cluster]
    acknowledged: dict[int, list[str]] = {}
    lock = threading.Lock()
    killed = threading.Event()
    errors: list[str] = []

    def device_life(index: int, device: Device) -> None:
        with httpx.Client(timeout=30) as client:
            action = None
            while action is None:
                action = _offer(client, urls, index, device)
            steps = [
                {"execution": "proceeding", "result": {"finished": "none"}},
                {"execution": "download", "result": {"finished": "none"}},
                {"execution": "downloaded", "result": {"finished": "none"}},
                {"execution": "closed", "result": {"finished": "success"}},
            ]
            for turn, status in enumerate(steps):
                if turn == 2 and index % 2:
                    killed.wait(30)  # half the fleet reports on after the kill
                code = _feedback(client, urls, index + turn, device, action, status)
                if code != 200:
                    errors.append(f"{device.controller_id} {status['execution']}: {code}")
                    return
                with lock:
                    acknowledged.setdefault(action, []).append(status["execution"])

    threads = [threading.Thread(target=device_life, args=(i, d)) for i, d in enumerate(devices)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    cluster[0].kill()  # mid-campaign: SIGKILL, no shutdown of any kind
    # And one of the two workers of the third process: the server starts another.
    os.kill(sorted(cluster[2].listening_pids())[0], signal.SIGKILL)
    killed.set()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(acknowledged) == len(devices)
    # Every acknowledged report is in the database: its event, and the outcome it closed.
    with env.ctx.read_uow() as uow:
        for action, reported in acknowledged.items():
            assert reported[-1] == "closed"
            events = uow.actions.events(action)
            assert len(events) >= len(reported), (action, reported, events)
            record = uow.actions.get(action)
            assert record is not None and not record.active, record
    status = env.cli("campaign", "status", str(campaign), "--json").json()
    # Each closed success counts: confirmed, or confirming until the device's next poll.
    counts = status["counts"]
    assert counts["succeeded"] + counts["confirming"] == len(devices), counts
    # The survivors keep answering, and the killed worker was replaced.
    for proc in cluster[1:]:
        assert httpx.get(f"{proc.url}/healthz", timeout=10).status_code == 200
    deadline = time.monotonic() + 60
    while len(cluster[2].listening_pids()) < 3:
        assert time.monotonic() < deadline, cluster[2].log_path.read_text()[-2000:]
        time.sleep(0.5)
