"""Optional push over MQTT against a real Mosquitto: a management action publishes one
"poll now" wake-up on the device's own topic after it commits, the publisher never makes a
caller wait for the broker, and what it could not send in time is dropped oldest first and
counted."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from patchgate.adapters.mqtt_push import MqttWakeups
from patchgate.domain.errors import Conflict
from patchgate.domain.push import wake_topic
from patchgate.services import actions
from patchgate.services.context import Context
from tests.conftest import Env
from tests.factories import make_release
from tests.mqtt_support import (
    BROKER_URL,
    PrivateBroker,
    Subscriber,
    require_broker,
    unique_id,
)
from tests.support import free_port, run_cli

IMAGE = b"push-test-image" * 100


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    require_broker()
    sub = Subscriber()
    yield sub
    sub.close()


def samples(wakeups: MqttWakeups) -> dict[str, float]:
    """The adapter's Prometheus counters, read through a registry as /metrics reads them."""
    registry = CollectorRegistry()
    for collector in wakeups.collectors:
        registry.register(collector)
    out: dict[str, float] = {}
    for outcome in ("queued", "sent", "acknowledged", "dropped", "skipped"):
        value = registry.get_sample_value("patchgate_push_messages_total", {"outcome": outcome})
        out[outcome] = value or 0.0
    out["queue_length"] = registry.get_sample_value("patchgate_push_queue_length") or 0.0
    return out


def add_device(env: Env, cid: str) -> None:
    result = env.cli("device", "add", cid, "--hardware", "demo-gw-1", "--json")
    assert result.code == 0, result.stderr


def test_a_management_assignment_publishes_exactly_one_wake_on_the_devices_topic(
    env: Env, subscriber: Subscriber
) -> None:
    cid = unique_id()
    add_device(env, cid)
    release = make_release(env, "1.1.0", {"rootfs.img": IMAGE}, hardware=["demo-gw-1"])
    # Every patchgate topic, so a wake-up for this device sent anywhere else would show.
    subscriber.subscribe("patchgate/#")

    # The CLI as an operator runs it, with push configured: wired by bootstrap, and the
    # wake-up sent before the command's app closes.
    result = run_cli(
        ["device", "assign", cid, str(release.id), "--json"],
        {**env.vars, "PATCHGATE_MQTT_URL": BROKER_URL},
    )
    assert result.code == 0, result.stderr

    mine = [m for m in subscriber.drain() if cid in m.topic]
    assert [m.topic for m in mine] == [wake_topic("DEFAULT", cid)]
    message = mine[0]
    assert message.qos == 1 and message.retain is False
    body = message.json()
    assert set(body) == {"type", "at"} and body["type"] == "poll"
    assert body["at"].endswith("Z")


def test_a_refused_assignment_publishes_nothing(env: Env, subscriber: Subscriber) -> None:
    cid = unique_id()
    add_device(env, cid)
    release = make_release(env, "1.1.0", {"rootfs.img": IMAGE}, hardware=["demo-gw-1"])
    wakeups = MqttWakeups(BROKER_URL)
    ctx = dataclasses.replace(env.ctx, wakeups=wakeups)
    subscriber.subscribe(wake_topic("DEFAULT", cid))
    actions.assign(ctx, cid, release.id, actor="test")
    assert len(subscriber.wait_for(1, timeout=5)) == 1

    with pytest.raises(Conflict):  # an action is open: rolled back, so nothing is sent
        actions.assign(ctx, cid, release.id, actor="test")
    wakeups.close()
    assert len(subscriber.drain()) == 1
    assert samples(wakeups)["acknowledged"] == 1


def test_cancelling_an_accepted_action_wakes_the_device_to_see_cancel_action(
    env: Env, subscriber: Subscriber
) -> None:
    cid = unique_id()
    add_device(env, cid)
    release = make_release(env, "1.1.0", {"rootfs.img": IMAGE}, hardware=["demo-gw-1"])
    action = actions.assign(env.ctx, cid, release.id, actor="test")  # push off: no wake-up
    subscriber.subscribe(wake_topic("DEFAULT", cid))
    ctx: Context = dataclasses.replace(env.ctx, wakeups=MqttWakeups(BROKER_URL))

    canceled = actions.cancel(ctx, action.id, reason="wrong release", actor="test")
    assert ctx.wakeups is not None
    ctx.wakeups.close()

    assert canceled.status == "canceling"
    assert len(subscriber.wait_for(1, timeout=5)) == 1


def test_the_publisher_never_blocks_the_caller_when_the_broker_is_down_and_counts_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The caller must never wait on the network: every connection attempt is paho's, on its
    # own thread. Record any made on the caller's thread.
    caller = threading.current_thread()
    on_caller: list[object] = []
    connect = socket.create_connection

    def watched(*args: Any, **kwargs: Any) -> socket.socket:
        if threading.current_thread() is caller:
            on_caller.append(args[0])
        return connect(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", watched)
    dead = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    wakeups = MqttWakeups(dead, queue_limit=10)
    for index in range(25):
        wakeups.wake("DEFAULT", [f"dev-{index}"])
    wakeups.wake("DEFAULT", ["bad/id", "bad+id"])  # never a valid single topic level
    try:
        counts = samples(wakeups)
        assert counts["queued"] == 25
        assert counts["dropped"] == 15  # the oldest fifteen, so the newest ten wait
        assert counts["skipped"] == 2
        assert counts["sent"] == 0 and counts["queue_length"] == 10
        assert wakeups._queue[0][0] == wake_topic("DEFAULT", "dev-15")
        # Queuing is all a caller does: no connection attempt on its thread.
        assert on_caller == []
    finally:
        wakeups.close(timeout=0.1)


def test_wake_ups_queued_while_the_broker_is_down_are_delivered_when_it_is_back(
    tmp_path: Path,
) -> None:
    broker = PrivateBroker(tmp_path, free_port()).start()
    # A persistent session: the broker keeps the subscription and queues for it.
    sub = Subscriber(port=broker.port, persistent=True).subscribe("patchgate/+/+/wake")
    wakeups = MqttWakeups(broker.url)
    try:
        wakeups.wake("DEFAULT", ["before"])
        assert len(sub.wait_for(1, timeout=5)) == 1
        broker.stop()
        wakeups.wake("DEFAULT", ["during-1", "during-2"])
        assert samples(wakeups)["acknowledged"] == 1  # queued: nobody to acknowledge them
        broker.start()
        got = sub.wait_for(3, timeout=20)  # paho reconnects after 1 s, 2 s, 4 s …
        assert sorted(m.topic.split("/")[2] for m in got) == ["before", "during-1", "during-2"]
        assert samples(wakeups)["acknowledged"] == 3
    finally:
        wakeups.close(timeout=1)
        sub.close()
        broker.stop()
