"""Push over MQTT: a "poll now" notice on each device's own topic (``Wakeups`` port).

Callers (a management assignment, a stage that opens) only append to a bounded in-memory
queue; one background thread owns the paho-mqtt client, publishes with QoS 1 (not
retained: a notice is about now, and a device that connects later polls anyway), and lets
paho reconnect with exponential backoff. When the broker is away long enough for the queue
to fill, the oldest notices are dropped and counted: a dropped notice only means that
device polls at its usual interval.

Which device may read which topic is the broker's job (``docs/push.md``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Counter, Gauge

from patchgate.domain.clock import rfc3339, utcnow
from patchgate.domain.push import BrokerAddress, addressable, parse_broker_url, wake_topic
from patchgate.services.push_ports import Wakeups

__all__ = ["MqttWakeups", "make_client"]

log = logging.getLogger("patchgate.push")

QOS = 1


def make_client(address: BrokerAddress, client_id: str) -> mqtt.Client:
    """A paho client (MQTT 3.1.1) with the address's credentials and TLS applied."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    return client


class MqttWakeups(Wakeups):
    """Publishes ``{"type": "poll", "at": ...}`` to ``patchgate/{tenant}/{id}/wake``.

    Nothing starts until the first wake-up, so commands that never wake anyone open no
    connection. ``close()`` (called by ``App.close`` and at interpreter exit) sends what is
    queued within a short timeout, so a one-shot CLI command's notice is not lost.
    """

    def __init__(
        self,
        url: str,
        *,
        queue_limit: int = 10_000,
        max_inflight: int = 100,
        client_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.address = parse_broker_url(url)
        self.queue_limit = queue_limit
        self.max_inflight = max_inflight
        self.client_id = client_id or f"patchgate-server-{socket.gethostname()}-{os.getpid()}"
        self.clock = clock
        self._queue: deque[tuple[str, bytes]] = deque()
        self._inflight = 0  # sent, not yet acknowledged by the broker
        self._cond = threading.Condition()
        self._connected = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self.messages = Counter(
            "patchgate_push_messages_total",
            "Push wake-ups by outcome: queued, sent to the broker, acknowledged by it "
            "(QoS 1 PUBACK), dropped (queue full, oldest first), skipped (no valid topic)",
            ["outcome"],
            registry=None,
        )
        self.connections = Counter(
            "patchgate_push_connections_total",
            "Connections to the MQTT broker by event: connected, lost, failed",
            ["event"],
            registry=None,
        )
        self.queue_length = Gauge(
            "patchgate_push_queue_length",
            "Wake-ups waiting to be sent to the broker",
            registry=None,
        )
        self.queue_length.set_function(lambda: len(self._queue))
        for outcome in ("queued", "sent", "acknowledged", "dropped", "skipped"):
            self.messages.labels(outcome)
        for event in ("connected", "lost", "failed"):
            self.connections.labels(event)

    @property
    def collectors(self) -> tuple[Counter | Gauge, ...]:
        """The Prometheus metrics, for the server to register in its registry."""
        return (self.messages, self.connections, self.queue_length)

    # --- the port -------------------------------------------------------------------

    def wake(self, tenant: str, controller_ids: Sequence[str]) -> None:
        payload = json.dumps({"type": "poll", "at": rfc3339(self.clock())}).encode()
        items: list[tuple[str, bytes]] = []
        for controller_id in controller_ids:
            if not addressable(tenant, controller_id):
                self.messages.labels("skipped").inc()
                continue
            items.append((wake_topic(tenant, controller_id), payload))
        if not items:
            return
        dropped = 0
        with self._cond:
            if self._closing:
                return
            for item in items:
                if len(self._queue) >= self.queue_limit:
                    self._queue.popleft()
                    dropped += 1
                self._queue.append(item)
            self._cond.notify_all()
            self._ensure_started()
        self.messages.labels("queued").inc(len(items))
        if dropped:
            self.messages.labels("dropped").inc(dropped)

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            if self._thread is None:
                self._closing = True
                return
            # Let the publisher drain the queue and collect the broker's acknowledgements.
            self._cond.wait_for(lambda: not self._queue and self._inflight == 0, timeout)
            self._closing = True
            self._cond.notify_all()
            thread, client = self._thread, self._client
        thread.join(timeout=1.0)
        if client is not None:
            client.disconnect()
            client.loop_stop()
        atexit.unregister(self.close)

    # --- the publisher thread ----------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        client = make_client(self.address, self.client_id)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.max_inflight_messages_set(self.max_inflight)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(self.address.host, self.address.port, keepalive=60)
        client.loop_start()  # paho's network thread: connects and reconnects with backoff
        self._client = client
        self._thread = threading.Thread(target=self._publish_loop, name="mqtt-push", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _publish_loop(self) -> None:
        client = self._client
        assert client is not None
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: (
                        self._closing
                        or (
                            self._connected
                            and bool(self._queue)
                            and self._inflight < self.max_inflight
                        )
                    )
                )
                if self._closing:
                    return
                topic, payload = self._queue.popleft()
                self._inflight += 1
            # Outside the lock: paho calls on_publish holding its own mutex, which publish
            # also takes. MQTT_ERR_NO_CONN is fine: paho keeps a QoS 1 message and sends it
            # once it has reconnected.
            client.publish(topic, payload, qos=QOS, retain=False)
            self.messages.labels("sent").inc()

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _properties: object,
    ) -> None:
        if reason.is_failure:
            self.connections.labels("failed").inc()
            log.warning("MQTT broker %s refused the connection: %s", self.address, reason)
            return
        self.connections.labels("connected").inc()
        with self._cond:
            self._connected = True
            self._cond.notify_all()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        self.connections.labels("failed").inc()

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        _reason: ReasonCode,
        _properties: object,
    ) -> None:
        with self._cond:
            was, self._connected = self._connected, False
        if was and not self._closing:
            self.connections.labels("lost").inc()
            log.warning("lost the MQTT broker %s; reconnecting", self.address)

    def _on_publish(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        _reason: ReasonCode,
        _properties: object,
    ) -> None:
        self.messages.labels("acknowledged").inc()
        with self._cond:
            self._inflight = max(0, self._inflight - 1)
            self._cond.notify_all()
