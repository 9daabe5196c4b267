"""Push end to end: a real ``patchgate serve`` with ``PATCHGATE_MQTT_URL``, the real Mosquitto,
and a real ``patchgate agent --mqtt`` process told to sleep an hour between polls. An
assignment made through the REST API wakes the agent, which polls and starts the update at
once instead of an hour later."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from patchgate.domain.push import wake_topic
from tests.conftest import Env
from tests.factories import make_release
from tests.mqtt_support import BROKER_URL, Subscriber, require_broker, unique_id
from tests.support import LiveServer

IMAGE = bytes(range(256)) * 64
FACTORY = b"factory image" * 64
POLL_SLEEP = 3600  # an hour: without a wake-up the agent would not poll again in the test


@pytest.fixture
def push_server(env: Env, tmp_path: Path) -> Iterator[LiveServer]:
    require_broker()
    srv = LiveServer(
        {**env.vars, "PATCHGATE_MQTT_URL": BROKER_URL, "PATCHGATE_POLL_SLEEP": str(POLL_SLEEP)},
        tmp_path / "server.log",
    ).start()
    yield srv
    srv.stop()


def _wait(predicate: object, timeout: float, what: str, log: Path | None = None) -> float:
    """Poll ``predicate`` every 20 ms; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.02)
    detail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


def test_an_agent_woken_over_mqtt_polls_at_once_instead_of_after_its_poll_interval(
    env: Env, push_server: LiveServer, tmp_path: Path
) -> None:
    cid = unique_id("agent")
    added = env.cli("device", "add", cid, "--hardware", "demo-gw-1", "--json")
    assert added.code == 0, added.stderr
    token = added.json()["token"]
    release = make_release(
        env, "1.1.0", {"rootfs.img": IMAGE}, hardware=["demo-gw-1"], security_version=1
    )
    root = httpx.get(f"{push_server.url}/tuf/metadata/1.root.json", timeout=10)
    assert root.status_code == 200
    (tmp_path / "root.json").write_bytes(root.content)
    (tmp_path / "a.img").write_bytes(FACTORY)
    (tmp_path / "b.img").write_bytes(b"")
    agent_log = tmp_path / "agent.log"
    # A test subscriber on the same topic, to tell "the server published" from "the agent
    # heard it" if this test ever fails.
    watcher = Subscriber().subscribe(wake_topic("DEFAULT", cid))
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "patchgate.entrypoints.cli",
            "agent",
            "--server",
            push_server.url,
            "--device-id",
            cid,
            "--token",
            token,
            "--state-dir",
            str(tmp_path / "state"),
            "--trusted-root",
            str(tmp_path / "root.json"),
            "--slot-a",
            str(tmp_path / "a.img"),
            "--slot-b",
            str(tmp_path / "b.img"),
            "--hardware",
            "demo-gw-1",
            "--initial-version",
            "1.0.0",
            "--mqtt",
            BROKER_URL,
        ],
        env={**os.environ, **env.vars},
        stdout=subprocess.DEVNULL,
        stderr=agent_log.open("wb"),
    )
    try:
        with push_server.client(env.admin_token) as http:
            # The agent has made its first poll (and now sleeps an hour) and listens.
            _wait(
                lambda: "listening for wake-ups" in agent_log.read_text(),
                20,
                "the agent to subscribe",
                agent_log,
            )
            _wait(
                lambda: http.get(f"/api/v1/devices/{cid}").json().get("last_seen"),
                20,
                "the agent's first poll",
                agent_log,
            )
            # The first poll is over (its time is recorded), so the release assigned now can
            # reach the agent only through a poll that the wake-up causes: the next one on
            # its own comes in an hour.
            assert agent.poll() is None, agent_log.read_text()

            answer = http.post(f"/api/v1/devices/{cid}/actions", json={"release_id": release.id})
            assert answer.status_code == 201, answer.text
            action_id = answer.json()["id"]

            def started() -> bool:
                status = http.get(f"/api/v1/actions/{action_id}").json()["status"]
                return status not in ("offered",)

            # Any time short of the hour is the wake-up's doing (no time limit asserted).
            _wait(started, 60, "the woken agent to start the update", agent_log)
        assert len(watcher.drain()) == 1
        # It goes on to install into slot b as usual (and stops for the reboot).
        assert agent.wait(30) == 0, agent_log.read_text()
        assert (tmp_path / "b.img").read_bytes() == IMAGE
    finally:
        watcher.close()
        if agent.poll() is None:
            agent.terminate()
            agent.wait(10)
