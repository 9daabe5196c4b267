"""A real MQTT subscriber (paho) and throw-away Mosquitto brokers for the push tests.

The suite's broker is the machine's Mosquitto on 127.0.0.1:1883 (``.ci/run`` and ``make
services`` start it); ``private_broker`` starts one more on a free port for tests that stop
and restart a broker.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 1883
BROKER_URL = f"mqtt://{BROKER_HOST}:{BROKER_PORT}"


def broker_answers(host: str = BROKER_HOST, port: int = BROKER_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_broker() -> None:
    """Fail (not skip) when the suite's broker is down: push is part of the product."""
    if not broker_answers():
        pytest.fail(f"no MQTT broker on {BROKER_URL}; start it with `make services`")


def unique_id(prefix: str = "dev") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Subscriber:
    """A paho client subscribed to some topics, recording what arrives."""

    port: int = BROKER_PORT
    client_id: str = field(default_factory=lambda: unique_id("test-sub"))
    persistent: bool = False
    messages: list[Received] = field(default_factory=list)

    @property
    def marker_topic(self) -> str:
        return f"patchgate-test/marker/{self.client_id}"

    def __post_init__(self) -> None:
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._markers: set[str] = set()
        self.topics: list[str] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=not self.persistent,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message

    def subscribe(self, *topics: str) -> Subscriber:
        self.topics = [*topics, self.marker_topic]
        self.client.connect(BROKER_HOST, self.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the broker did not confirm the subscription"
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        for topic in self.topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.topic == self.marker_topic:
                self._markers.add(msg.payload.decode())
                return
            self.messages.append(Received(msg.topic, msg.payload, msg.qos, msg.retain))

    def drain(self, timeout: float = 10.0) -> list[Received]:
        """Everything the broker had accepted for this subscriber before now, and nothing
        more to come from it: publish a marker and wait for it. Mosquitto forwards to one
        subscriber in the order it accepted the messages (MQTT 3.1.1 §4.6 ordered topics), so
        once the marker is here, every earlier message is too — no sleep standing for
        "nothing else arrives"."""
        marker = uuid.uuid4().hex
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        publisher.connect(BROKER_HOST, self.port)
        publisher.loop_start()
        try:
            publisher.publish(self.marker_topic, marker, qos=1).wait_for_publish(timeout)
        finally:
            publisher.disconnect()
            publisher.loop_stop()
        deadline = time.monotonic() + timeout
        while marker not in self._markers:
            assert time.monotonic() < deadline, "the marker did not come back from the broker"
            time.sleep(0.01)
        with self._lock:
            return list(self.messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` messages arrived (or the timeout); returns what arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.02)
        with self._lock:
            return list(self.messages)


@dataclass
class PrivateBroker:
    """A Mosquitto of the test's own on a free port, with persistence in the test folder,
    so it can be stopped and started again with sessions kept."""

    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{BROKER_HOST}:{self.port}"

    def start(self) -> PrivateBroker:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {BROKER_HOST}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.folder}/\n"
            "user root\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "mosquitto.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        while not broker_answers(port=self.port):
            assert time.monotonic() < deadline, (self.folder / "mosquitto.log").read_text()
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # Mosquitto saves its sessions on SIGTERM
            self.proc.wait(10)
        self.proc = None
