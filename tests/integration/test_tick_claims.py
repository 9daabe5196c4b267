"""Periodic jobs claimed once per tick across processes (services/state.py ``claim_tick``),
on SQLite and PostgreSQL, with threads racing as processes would; and the state version
pushed at its commit on PostgreSQL (adapters/db/pg_notify.py)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from patchgate.bootstrap import make_state_feed
from patchgate.services import state
from tests.conftest import Env

T0 = datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC)


def _at(_env: Env, when: datetime) -> Callable[[], datetime]:
    return lambda: when


def test_one_claim_per_tick_however_many_race(env: Env) -> None:
    start = state.tick_start(T0 + timedelta(seconds=7.5), 5.0)
    assert start == T0 + timedelta(seconds=5)
    ctx = dataclasses.replace(env.ctx, clock=_at(env, start + timedelta(seconds=0.1)))
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _: state.claim_tick(ctx, "campaign:1", start), range(16)))
    assert won.count(True) == 1
    # Another job is claimed on its own.
    assert state.claim_tick(ctx, "notices", start)
    # The next tick is claimed again, once.
    later = start + timedelta(seconds=5)
    ctx = dataclasses.replace(env.ctx, clock=_at(env, later + timedelta(seconds=0.2)))
    assert state.claim_tick(ctx, "campaign:1", later)
    assert not state.claim_tick(ctx, "campaign:1", later)
    # Feedback that arrived after the last claim asks for another evaluation; feedback
    # that arrived before it is covered by it.
    after = dataclasses.replace(env.ctx, clock=_at(env, later + timedelta(seconds=1)))
    assert not state.claim_tick(after, "campaign:1", later + timedelta(seconds=0.1))
    assert state.claim_tick(after, "campaign:1", later + timedelta(seconds=0.5))


def test_a_committed_version_is_pushed_to_listeners_at_its_commit(env: Env) -> None:
    feed = make_state_feed(env.app)
    if feed is None:
        assert env.app.engines.write.dialect.name == "sqlite"  # the version read only
        return
    heard: list[int | None] = []
    arrived = threading.Event()

    def on_change(version: int | None) -> None:
        heard.append(version)
        arrived.set()

    feed.start(on_change)
    try:
        assert feed.wait_listening(10)
        with env.ctx.uow() as uow:
            version = state.changed(env.ctx, uow)
            assert not arrived.wait(0.3)  # nothing before the commit
            uow.commit()
        assert arrived.wait(5)
        assert heard == [version]
        arrived.clear()
        with env.ctx.uow() as uow:
            state.changed(env.ctx, uow)  # rolled back: never heard
        assert not arrived.wait(0.5)
        assert heard == [version]
    finally:
        feed.stop()
