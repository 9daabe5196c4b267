"""Recovery after a halt (revert, roll forward), the security floor rule, and the halt
property, through the campaign service and the real poll path (``ddi.Poller`` with the
engine plugged in as the server plugs it), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchgate.domain.errors import Conflict
from patchgate.services import ddi, releases
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.options import CreateOptions
from tests.campaign_support import Fleet, halted, release, started, status
from tests.conftest import Env
from tests.factories import MadeRelease


def _status(env: Env, campaign_id: int) -> dict[str, Any]:
    return status(env, campaign_id)


def _release(env: Env, version: str, security_version: int) -> MadeRelease:
    return release(env, version, security_version)


def _halted(env: Env, made: MadeRelease, stages: str = "qa,100") -> int:
    return halted(env, made, stages)


def test_revert_offers_the_known_good_release_to_devices_on_the_bad_one(env: Env) -> None:
    good, bad = _release(env, "1.0.0", 1), _release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("took-bad", "1.0.0", "qa")
    fleet.add("stayed-good", "1.0.0")
    campaign = started(env, bad, stages="qa,100")
    action = fleet.poll("took-bad").open_action_id or 0
    fleet.feedback("took-bad", action, "closed", "success")
    commands.halt(env.ctx, campaign, reason="boot loop in the field", actor="test")
    assert fleet.offered("stayed-good") is None
    commands.revert(env.ctx, campaign, actor="test")
    status = _status(env, campaign)
    assert status["state"] == "reverting" and status["revert_to_release_id"] == good.id
    assert fleet.offered("took-bad") == good.id
    assert fleet.offered("stayed-good") is None
    # A revert never raises the floor; completing it does not either.
    commands.complete(env.ctx, campaign, actor="test")
    done = _status(env, campaign)
    assert done["state"] == "completed" and done["floor_raised"] is False
    assert releases.security_floor(env.ctx, "Demo Gateway") == 0


def test_a_device_that_failed_a_rollout_is_answered_without_the_write_path(env: Env) -> None:
    bad = _release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("fails", "1.0.0", "qa")
    made = commands.create(env.ctx, bad.id, CreateOptions(stages="qa,100"), actor="test")
    commands.start(env.ctx, made, actor="test")
    caller = ddi.authenticate(env.ctx, "DEFAULT", "fails", f"TargetToken {fleet.tokens['fails']}")
    action_id = fleet.poller.poll(caller).open_action_id
    assert action_id is not None
    failure = ddi.Feedback(ddi.rules.Execution.CLOSED, ddi.rules.Finished.FAILURE)
    ddi.deployment_feedback(env.ctx, caller, action_id, failure)

    def again() -> ddi.Caller:
        return ddi.authenticate(env.ctx, "DEFAULT", "fails", f"TargetToken {fleet.tokens['fails']}")

    # The first poll after the failure learns that the device finished this campaign (the
    # offer is refused under the device's lock); every later poll answers from the one read.
    assert fleet.poller.poll(again()).open_action_id is None
    for _ in range(3):
        state = fleet.answer_without_writing("fails")
        assert state is not None and state.open_action_id is None
    assert [a.id for a in ddi.action_service.device_actions(env.ctx, "fails")] == [action_id]


def test_a_revert_below_the_security_floor_is_refused_and_changes_nothing(env: Env) -> None:
    good, bad = _release(env, "1.0.0", 1), _release(env, "2.0.0", 3)
    newer_good = _release(env, "1.5.0", 2)
    Fleet(env).add("qa-1", "1.0.0", "qa")
    campaign = _halted(env, bad)
    with env.ctx.uow() as uow:  # a completed rollout of 1.5.0 raised the floor to 2
        releases.raise_floor(env.ctx, uow, product="Demo Gateway", security_version=2)
        uow.commit()
    with pytest.raises(Conflict, match="below the security floor 2"):
        commands.revert(env.ctx, campaign, to_release=good.id, actor="test")
    assert _status(env, campaign)["state"] == "halted"
    refused = env.cli("campaign", "revert", str(campaign), "--to", str(good.id))
    assert refused.code == 2 and "security floor" in refused.stderr
    commands.revert(env.ctx, campaign, to_release=newer_good.id, actor="test")
    status = _status(env, campaign)
    assert status["revert_to_release_id"] == newer_good.id


def test_roll_forward_offers_the_fix_first_to_devices_that_took_the_halted_release(
    env: Env,
) -> None:
    _release(env, "1.0.0", 1)
    bad = _release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("took-bad", "2.0.0")
    fleet.add("on-old", "1.0.0")
    fleet.add("qa-dev", "1.0.0", "qa")
    halted = _halted(env, bad)
    fixed = _release(env, "2.0.1", 3)
    made = commands.create(
        env.ctx, fixed.id, CreateOptions(stages="qa,100", manual=True), actor="test"
    )
    created = _status(env, made)
    assert created["supersedes"] == halted and created["priority_versions"] == ["2.0.0"]
    commands.start(env.ctx, made, actor="test")
    assert fleet.offered("took-bad") == fixed.id  # not in qa, yet first
    assert fleet.offered("qa-dev") == fixed.id
    assert fleet.offered("on-old") is None  # waits for the 100 % stage
    lower = _release(env, "1.9.0", 1)
    with pytest.raises(Conflict, match="below the halted release"):
        commands.create(env.ctx, lower.id, CreateOptions(supersedes=halted), actor="test")


def test_only_a_completed_rollout_raises_the_security_floor(env: Env) -> None:
    release = _release(env, "2.0.0", 4)
    fleet = Fleet(env)
    fleet.add("qa-1", "1.0.0", "qa")
    made = commands.create(
        env.ctx, release.id, CreateOptions(stages="qa", soak="0s", min_finished=1), actor="test"
    )
    commands.start(env.ctx, made, actor="test")
    assert releases.security_floor(env.ctx, "Demo Gateway") == 0
    assert fleet.offered("qa-1") == release.id
    action = ddi.action_service.device_actions(env.ctx, "qa-1")[0]
    caller = ddi.authenticate(env.ctx, "DEFAULT", "qa-1", f"TargetToken {fleet.tokens['qa-1']}")
    ddi.deployment_feedback(
        env.ctx,
        caller,
        action.id,
        ddi.Feedback(ddi.rules.Execution("closed"), ddi.rules.Finished("success")),
    )
    assert releases.security_floor(env.ctx, "Demo Gateway") == 0  # installed is not enough
    assert commands.evaluate(env.ctx, made) is not None
    status = _status(env, made)
    assert status["state"] == "completed" and status["floor_raised"] is True
    assert releases.security_floor(env.ctx, "Demo Gateway") == 4


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    polled_before=st.integers(min_value=0, max_value=6),
    minutes_after=st.integers(min_value=0, max_value=60 * 24 * 30),
)
def test_after_a_halt_no_poll_gets_the_release(
    sqlite_env: Env, polled_before: int, minutes_after: int
) -> None:
    env = sqlite_env
    stamp = f"{polled_before}-{minutes_after}"
    release = _release(env, f"9.{polled_before}.{minutes_after}", 1)
    fleet = Fleet(env)
    cids = [f"d{stamp}-{i}" for i in range(6)]
    for cid in cids:
        fleet.add(cid, "1.0.0", "qa")
    made = commands.create(env.ctx, release.id, CreateOptions(stages="qa"), actor="test")
    commands.start(env.ctx, made, actor="test")
    for cid in cids[:polled_before]:
        assert fleet.offered(cid) == release.id
    commands.halt(env.ctx, made, reason="property", actor="test")
    later = env.ctx.clock() + timedelta(minutes=minutes_after)
    original = env.ctx.clock
    env.ctx.clock = lambda: later
    try:
        for cid in cids:
            assert fleet.offered(cid) is None
    finally:
        env.ctx.clock = original


def test_the_rate_limit_is_shared_by_every_server_process(env: Env) -> None:
    release = _release(env, "2.0.0", 2)
    one, two = Fleet(env), Fleet(env)  # two pollers with engines of their own
    for cid in ("a", "b", "c"):
        one.add(cid, "1.0.0", "qa")
    two.tokens = one.tokens
    made = commands.create(
        env.ctx, release.id, CreateOptions(stages="qa", rate="1/min"), actor="test"
    )
    commands.start(env.ctx, made, actor="test")
    assert one.offered("a") == release.id
    assert two.offered("b") is None  # the other process finds the bucket empty
    original = env.ctx.clock
    later = original() + timedelta(seconds=61)
    env.ctx.clock = lambda: later
    try:
        assert two.offered("b") == release.id
        assert one.offered("c") is None
    finally:
        env.ctx.clock = original


def test_a_device_that_goes_quiet_past_the_action_timeout_counts_as_timed_out(env: Env) -> None:
    release = _release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("quiet", "1.0.0", "qa")
    made = commands.create(env.ctx, release.id, CreateOptions(stages="qa,100"), actor="test")
    commands.start(env.ctx, made, actor="test")
    assert fleet.offered("quiet") == release.id
    assert _status(env, made)["counts"]["offered"] == 1
    original = env.ctx.clock
    later = original() + timedelta(hours=25)
    env.ctx.clock = lambda: later
    try:
        status = _status(env, made)
    finally:
        env.ctx.clock = original
    assert status["counts"]["timed_out"] == 1 and status["counts"]["offered"] == 0
