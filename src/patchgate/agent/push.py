"""Wake-ups for the agent (docs/push.md): listen on the device's own MQTT
topic and poll at once when the server says something waits.

Push only shortens the wait: the DDI poll stays the one channel that decides anything, and
the loop keeps honouring ``config.polling.sleep`` whether or not the broker answers. A
paho-mqtt client runs in a background thread with a persistent session (QoS 1), so
wake-ups published while the device was briefly disconnected are delivered when it comes
back; it reconnects with exponential backoff and full jitter, so a fleet does not return
all at once after a broker restart.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from patchgate.agent.core import backoff_delay
from patchgate.agent.errors import AgentSetupError
from patchgate.domain.push import BrokerAddress, addressable, parse_broker_url, wake_topic

__all__ = ["WakeListener", "WakeSignal", "parse_broker_url"]


class WakeSignal:
    """What the loop waits on instead of sleeping: set by a wake-up, cleared by the wait
    that sees it. A wake-up that arrives during a pass makes the next wait return at once,
    so none is lost."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when woken."""
        woken = self._event.wait(max(0.0, timeout))
        self._event.clear()
        return woken


class WakeListener:
    """Subscribes to ``patchgate/{tenant}/{controllerId}/wake`` and sets ``signal`` for
    every message on it. The message body is not trusted for anything: any message only
    means "poll now", and the loop rate-limits polls that wake-ups cause."""

    def __init__(
        self,
        address: BrokerAddress,
        *,
        tenant: str,
        controller_id: str,
        signal: WakeSignal,
        log: Callable[[str], None],
        client_id: str | None = None,
    ) -> None:
        if not addressable(tenant, controller_id):
            raise AgentSetupError(
                f"cannot listen for wake-ups: {tenant}/{controller_id} is not a valid topic level"
            )
        self.address = address
        self.topic = wake_topic(tenant, controller_id)
        self.signal = signal
        self.log = log
        # The controllerId by default, so a broker ACL can grant `pattern read
        # patchgate/+/%c/wake` (docs/push.md); stable, so the session persists.
        self.client_id = client_id or controller_id
        self.rng = random.Random()  # noqa: S311 (jitter, not secrets)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WakeListener:
        self._thread = threading.Thread(target=self._run, name="mqtt-wake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            client = self._make_client()
            self._client = client
            try:
                client.connect(self.address.host, self.address.port, keepalive=60)
                client.loop_forever()  # returns when the connection ends
            except (OSError, ValueError) as exc:
                if failures == 0:
                    self.log(f"MQTT broker {self.address} unreachable ({exc}); still polling")
            if self.connected.is_set():
                failures = 0
                self.connected.clear()
                if not self._stop.is_set():
                    self.log(f"lost the MQTT broker {self.address}; reconnecting")
            failures += 1
            self._stop.wait(backoff_delay(failures, base=1.0, cap=300.0, rng=self.rng))

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _properties: object,
    ) -> None:
        if reason.is_failure:
            self.log(f"MQTT broker {self.address} refused the connection: {reason}")
            client.disconnect()
            return
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: object,
    ) -> None:
        if any(r.is_failure for r in reasons):
            self.log(f"the MQTT broker refused the subscription to {self.topic}")
            return
        if not self.connected.is_set():
            self.log(f"listening for wake-ups on {self.topic}")
        self.connected.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object, _msg: mqtt.MQTTMessage) -> None:
        self.signal.set()
