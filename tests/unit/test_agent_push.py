"""The agent's loop with push: a wake-up ends the sleep at once, wake-ups never cause more
than one poll a second, and a broker that does not answer is retried in the background
while the polling goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from patchgate.agent import runner
from patchgate.agent.core import Agent, RebootRequested
from patchgate.agent.errors import AgentSetupError
from patchgate.agent.push import WakeListener, WakeSignal
from patchgate.domain.push import parse_broker_url
from tests.support import free_port


class CountingAgent(Agent):
    """An agent whose pass only counts itself; the loop around it is what is tested."""

    def __init__(
        self, delay: float, passes: int, until: Callable[[], bool] = lambda: False
    ) -> None:  # no device behind it
        self.delay = delay
        self.limit = passes
        self.until = until
        self.times: list[float] = []

    @property
    def config(self) -> object:  # type: ignore[override]
        return type("Config", (), {"reboot_cmd": ()})()

    def run_once(self) -> float:
        self.times.append(time.monotonic())
        if len(self.times) >= self.limit or self.until():
            raise RebootRequested("enough passes")
        return self.delay


def test_a_wake_up_ends_an_hour_long_sleep_at_once() -> None:
    agent = CountingAgent(delay=3600, passes=2)
    wake = WakeSignal()
    threading.Timer(1.2, wake.set).start()
    started = time.monotonic()
    assert runner.run(agent, once=False, log=lambda _l: None, wake=wake) == 0
    assert len(agent.times) == 2 and time.monotonic() - started < 10


def test_a_flood_of_wake_ups_gives_at_most_one_poll_a_second() -> None:
    agent = CountingAgent(delay=3600, passes=3)
    wake = WakeSignal()
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            wake.set()
            time.sleep(0.001)

    threading.Thread(target=flood, daemon=True).start()
    try:
        runner.run(agent, once=False, log=lambda _l: None, wake=wake)
    finally:
        stop.set()
    gaps = [b - a for a, b in zip(agent.times, agent.times[1:], strict=False)]
    assert all(gap >= runner.MIN_WAKE_GAP * 0.99 for gap in gaps), gaps


def test_a_broker_that_does_not_answer_is_retried_while_the_polling_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines: list[str] = []
    address = parse_broker_url(f"mqtt://127.0.0.1:{free_port()}")  # nothing listens there
    listener = WakeListener(
        address, tenant="DEFAULT", controller_id="dev-1", signal=WakeSignal(), log=lines.append
    )
    attempts: list[float] = []
    make_client = listener._make_client

    def counted() -> object:
        attempts.append(time.monotonic())
        return make_client()

    monkeypatch.setattr(listener, "_make_client", counted)
    # Poll every 50 ms until the listener tried the broker a second time (its first retry
    # comes within 2 s); 200 passes (~10 s) without it mean the listener gave up.
    agent = CountingAgent(delay=0.05, passes=200, until=lambda: len(attempts) >= 2)
    listener.start()
    try:
        assert runner.run(agent, once=False, log=lines.append, wake=listener.signal) == 0
    finally:
        listener.stop()
    assert len(attempts) >= 2, "the listener stopped retrying the broker"
    assert len(agent.times) >= 2 and agent.times[-1] >= attempts[1]  # polled all along
    unreachable = [line for line in lines if "unreachable" in line and "still polling" in line]
    assert len(unreachable) == 1  # said once, not at every retry


def test_a_device_id_that_is_no_topic_level_is_refused_as_agent_setup() -> None:
    address = parse_broker_url(f"mqtt://127.0.0.1:{free_port()}")
    with pytest.raises(AgentSetupError, match="not a valid topic level"):
        WakeListener(address, tenant="default", controller_id="a/+", signal=WakeSignal(), log=print)
