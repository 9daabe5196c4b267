"""A campaign's timing over real DDI polls (docs/campaigns.md "Timing, retries and
schedule"): the in-progress timeout, retries of transient failures with back-off, gate
failures that are never retried, and a schedule that starts and stops the campaign by
itself. A real HTTP server (granian, embedded in this process so that it shares the test's
clock) serves the installation on SQLite and on PostgreSQL; the campaign timer is driven by
hand at the clock the test moves."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from granian.constants import Interfaces
from granian.server.embed import Server

from patchgate.domain.clock import rfc3339
from patchgate.entrypoints.http import create_app
from patchgate.services import devices as device_service
from tests.campaign_support import Clock
from tests.conftest import Env
from tests.factories import MadeRelease, make_release
from tests.support import free_port

HW = "demo-gw-1"
OLD = "1.0.0"
NEW = "2.0.0"


@dataclass
class Served:
    """The installation served over HTTP in this process, its clock and its timer."""

    url: str
    env: Env
    clock: Clock
    asgi: Any

    def tick(self) -> dict[int, str]:
        """One round of the server's campaign timer at the test's clock."""
        return dict(self.asgi.runtime.campaign_timer.run_once())

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.env.admin_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def status(self, campaign_id: int) -> dict[str, Any]:
        with self.api() as client:
            answer = client.get(f"/api/v1/campaigns/{campaign_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture
def served(env: Env) -> Iterator[Served]:
    clock = Clock(env)
    asgi = create_app(env.app)
    asgi.runtime.campaign_timer.stop()  # the test drives it (``Served.tick``)
    port = free_port()
    server = Server(asgi, address="127.0.0.1", port=port, interface=Interfaces.ASGINL)
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=run, name="granian", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield Served(url, env, clock, asgi)
    loops[0].call_soon_threadsafe(server.stop)
    thread.join(15)
    asgi.runtime.campaign_timer.stop()
    asgi.runtime.notice_timer.stop()
    if asgi.runtime.fleet_metrics is not None:
        asgi.runtime.fleet_metrics.stop()
    if asgi.runtime.tuf_refresher_stop is not None:
        asgi.runtime.tuf_refresher_stop.set()


@dataclass
class Device:
    served: Served
    controller_id: str
    token: str

    @property
    def base(self) -> str:
        return f"{self.served.url}/DEFAULT/controller/v1/{self.controller_id}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"TargetToken {self.token}", "Accept": "application/hal+json"}

    def links(self) -> dict[str, Any]:
        answer = httpx.get(self.base, headers=self._headers(), timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json().get("_links", {}))

    def deployment(self) -> int | None:
        """The offered deployment's action id, fetched as a client does; else None."""
        link = self.links().get("deploymentBase")
        if link is None:
            return None
        body = httpx.get(link["href"], headers=self._headers(), timeout=30).json()
        return int(body["id"])

    def feedback(self, action: int, execution: str, finished: str = "none") -> int:
        status = {"execution": execution, "result": {"finished": finished}}
        answer = httpx.post(
            f"{self.base}/deploymentBase/{action}/feedback",
            json={"id": str(action), "status": status},
            headers=self._headers(),
            timeout=30,
        )
        return answer.status_code

    def healthy_on(self, version: str) -> None:
        body = {"running_version": version, "crash_count": 0, "uptime_s": 600}
        answer = httpx.post(f"{self.base}/health", json=body, headers=self._headers(), timeout=30)
        assert answer.status_code == 200, answer.text


def _devices(served: Served, *cids: str) -> list[Device]:
    made = []
    for cid in cids:
        token = device_service.add_device(
            served.env.ctx, cid, groups=["qa"], hardware=HW, version=OLD, actor="test"
        ).token
        made.append(Device(served, cid, token))
    return made


def _release(env: Env) -> MadeRelease:
    make_release(env, OLD, {"fw.bin": b"old image"}, security_version=1)
    return make_release(env, NEW, {"fw.bin": b"new image"}, security_version=2)


def _campaign(served: Served, release: MadeRelease, **timing: Any) -> dict[str, Any]:
    """``POST /api/v1/campaigns`` with the timing fields, one stage over the whole fleet
    and gates that wait for every device and tolerate failures (so the campaign neither
    halts nor completes while the test watches single devices)."""
    body = {
        "release_id": release.id,
        "stages": "100",
        "min_finished": 100,
        "max_failure_rate": 0.99,
        **timing,
    }
    with served.api() as client:
        answer = client.post("/api/v1/campaigns", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _start(served: Served, campaign_id: int) -> None:
    with served.api() as client:
        answer = client.post(f"/api/v1/campaigns/{campaign_id}/start")
    assert answer.status_code == 200, answer.text


def test_an_attempt_past_its_timeout_is_retried_before_installing_and_counted_once_installing(
    served: Served,
) -> None:
    made = _campaign(served, _release(served.env), timeout="30m", retries=1)
    assert (made["timeout"], made["retries"], made["start_at"], made["end_at"]) == (
        "30m",
        1,
        None,
        None,
    )
    _start(served, made["id"])
    stuck_installing, stuck_downloading = _devices(served, "inst-1", "dl-1")
    first = stuck_installing.deployment()
    assert first is not None and stuck_installing.feedback(first, "proceeding") == 200
    pending = stuck_downloading.deployment()
    assert pending is not None and stuck_downloading.feedback(pending, "download") == 200

    served.clock.advance(minutes=29)
    served.tick()  # within the timeout: nothing is closed
    assert served.status(made["id"])["counts"]["timed_out"] == 0
    assert stuck_downloading.feedback(pending, "download") == 200

    served.clock.advance(minutes=2)
    served.tick()
    counts = served.status(made["id"])["counts"]
    assert (counts["timed_out"], counts["retrying"], counts["failed"]) == (1, 1, 0)
    # Both actions are closed: a late report is answered as for any closed action.
    assert stuck_installing.feedback(first, "closed", "success") == 410
    assert stuck_downloading.feedback(pending, "proceeding") == 410

    # The one timed out while installing is a gate outcome: never offered again.
    served.clock.advance(hours=3)
    assert "deploymentBase" not in stuck_installing.links()
    # The one timed out before installing is offered again after its back-off (10 min).
    retried = stuck_downloading.deployment()
    assert retried is not None and retried != pending
    # Its second attempt times out too: beyond the budget of one retry it is timed_out.
    served.clock.advance(minutes=31)
    served.tick()
    counts = served.status(made["id"])["counts"]
    assert (counts["timed_out"], counts["retrying"]) == (2, 0)
    served.clock.advance(hours=3)
    assert "deploymentBase" not in stuck_downloading.links()


def test_a_download_error_is_retried_after_its_back_off_and_then_succeeds(
    served: Served,
) -> None:
    made = _campaign(served, _release(served.env), retries=2)
    _start(served, made["id"])
    (device,) = _devices(served, "flaky-1")
    first = device.deployment()
    assert first is not None
    assert device.feedback(first, "download") == 200
    assert device.feedback(first, "closed", "failure") == 200  # the download broke off
    assert served.status(made["id"])["counts"]["retrying"] == 1

    # Back-off after the first attempt: 10 minutes; nothing is offered before.
    served.clock.advance(minutes=9)
    assert "deploymentBase" not in device.links()
    served.clock.advance(minutes=2)
    second = device.deployment()
    assert second is not None and second != first
    assert device.feedback(second, "closed", "failure") == 200
    # Back-off after the second attempt: 20 minutes.
    served.clock.advance(minutes=19)
    assert "deploymentBase" not in device.links()
    served.clock.advance(minutes=2)
    third = device.deployment()
    assert third is not None and third not in (first, second)
    assert device.feedback(third, "proceeding") == 200
    assert device.feedback(third, "closed", "success") == 200
    device.healthy_on(NEW)
    counts = served.status(made["id"])["counts"]
    assert (counts["succeeded"], counts["failed"], counts["retrying"]) == (1, 0, 0)


def test_a_failed_install_counts_against_the_gate_and_is_never_retried(served: Served) -> None:
    made = _campaign(served, _release(served.env), retries=5)
    _start(served, made["id"])
    (device,) = _devices(served, "broken-1")
    action = device.deployment()
    assert action is not None
    assert device.feedback(action, "proceeding") == 200  # installing
    assert device.feedback(action, "closed", "failure") == 200  # the install failed
    for _ in range(3):
        served.clock.advance(hours=2)
        served.tick()
        assert "deploymentBase" not in device.links()
    counts = served.status(made["id"])["counts"]
    assert (counts["failed"], counts["retrying"]) == (1, 0)


def test_a_scheduled_campaign_starts_at_its_start_and_stops_at_its_end(served: Served) -> None:
    now = served.clock.now
    start_at, end_at = now + timedelta(hours=1), now + timedelta(hours=3)
    made = _campaign(
        served, _release(served.env), start_at=rfc3339(start_at), end_at=rfc3339(end_at)
    )
    campaign = made["id"]
    assert (made["state"], made["start_at"], made["end_at"]) == (
        "draft",
        rfc3339(start_at),
        rfc3339(end_at),
    )
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        signed_in = browser.post("/console/login", data={"token": served.env.admin_token})
        assert signed_in.status_code in (200, 303), signed_in.text
        page = browser.get(f"/console/campaigns/{campaign}", follow_redirects=True).text
    assert "Schedule" in page and "2 retries of transient failures" in page
    installing, pending, late = _devices(served, "sched-1", "sched-2", "sched-3")

    served.clock.advance(minutes=59)
    served.tick()
    assert served.status(campaign)["state"] == "draft"
    assert "deploymentBase" not in installing.links()

    served.clock.advance(minutes=1)
    served.tick()
    assert served.status(campaign)["state"] == "running"
    in_flight = installing.deployment()
    assert in_flight is not None and installing.feedback(in_flight, "proceeding") == 200
    offered = pending.deployment()
    assert offered is not None

    served.clock.advance(hours=2)
    served.tick()
    status = served.status(campaign)
    assert status["state"] == "cancelled"
    # The offer not yet installing is cancelled; the install in flight finishes.
    assert "cancelAction" in pending.links()
    assert "deploymentBase" in installing.links()
    assert installing.feedback(in_flight, "closed", "success") == 200
    # A device that had not polled yet is offered nothing.
    assert "deploymentBase" not in late.links()


def test_bad_timing_is_refused_and_nothing_is_created(served: Served) -> None:
    env = served.env
    release = _release(env)
    now = served.clock.now
    past = rfc3339(now - timedelta(days=1)) or ""
    soon, later = rfc3339(now + timedelta(hours=2)) or "", rfc3339(now + timedelta(hours=1)) or ""
    cli_cases = [
        (["--start-at", "2020-01-01T00:00:00Z"], "--start-at"),
        (["--start-at", soon, "--end-at", later], "--end-at"),
        (["--end-at", "2020-01-01T00:00:00Z"], "--end-at"),
        (["--retries", "-1"], "--retries"),
        (["--retries", "100000000000000000000"], "--retries"),
        (["--timeout", "soon"], "--timeout"),
        (["--timeout", "10s"], "--timeout"),
        (["--start-at", "tomorrow"], "--start-at"),
    ]
    for flags, named in cli_cases:
        result = env.cli("campaign", "create", str(release.id), *flags)
        assert result.code == 2, (flags, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines and named in lines[0] and "Traceback" not in result.stderr, (flags, lines)
    api_cases: list[dict[str, Any]] = [
        {"start_at": past},
        {"start_at": soon, "end_at": later},
        {"retries": -1},
        {"retries": 10**12},
        {"timeout": "PT10S"},
        {"timeout": "whenever"},
        {"end_at": "not a time"},
    ]
    with served.api() as client:
        for case in api_cases:
            answer = client.post("/api/v1/campaigns", json={"release_id": release.id, **case})
            assert answer.status_code in (400, 422), (case, answer.text)
            assert answer.json()["message"], case
        assert client.get("/api/v1/campaigns").json()["campaigns"] == []
