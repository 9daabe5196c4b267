"""Revert targets per device (docs/campaigns.md "Revert"): each device running a halted
release goes back to the last release it ran successfully that is neither halted,
withdrawn nor below the floor; overlapping reverts move a device once. Through the
campaign commands and the server's poll path, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from patchgate.domain.errors import Conflict
from patchgate.services import actions as action_service
from patchgate.services import releases
from patchgate.services.campaigns import commands
from tests.campaign_support import Fleet, release, started, status
from tests.conftest import Env

PRODUCT = "Demo Gateway"


def _install(fleet: Fleet, cid: str, release_id: int) -> None:
    """The device polls, is offered ``release_id`` and reports a healthy install."""
    state = fleet.poll(cid)
    assert state.open_action_release_id == release_id, cid
    action = state.open_action_id or 0
    fleet.feedback(cid, action, "proceeding")
    fleet.feedback(cid, action, "closed", "success")


def _installs_reverted(fleet: Fleet, cid: str, release_id: int) -> None:
    _install(fleet, cid, release_id)
    assert fleet.offered(cid) is None  # moved once: nothing more is offered


def test_each_device_goes_back_to_the_last_release_it_ran(env: Env) -> None:
    one = release(env, "1.0.0", 1)
    two = release(env, "2.0.0", 2)
    three = release(env, "3.0.0", 3)
    fleet = Fleet(env)
    fleet.add("via-two", "1.0.0", "qa")  # 1.0.0 → 2.0.0 → 3.0.0
    fleet.add("from-one", "1.0.0", "qa")  # 1.0.0 → 3.0.0 (missed campaign 1)
    fleet.add("no-history", "3.0.0", "qa")  # registered on 3.0.0: nothing to go back to
    first = started(env, two, stages="qa,100")
    _install(fleet, "via-two", two.id)
    commands.halt(env.ctx, first, reason="boot loops", actor="test")
    second = started(env, three, stages="qa,100")
    _install(fleet, "via-two", three.id)
    _install(fleet, "from-one", three.id)
    commands.halt(env.ctx, second, reason="boot loops", actor="test")

    commands.revert(env.ctx, second, actor="test")
    shown = status(env, second)
    # Release 2 was halted for boot loops: no device is sent back to it.
    assert shown["revert_to_release_id"] == one.id
    plan = shown["revert"]
    assert plan["targets"] == [{"release_id": one.id, "version": "1.0.0", "devices": 2}]
    assert plan["not_moved"] == 1
    assert list(plan["not_moved_reasons"]) == ["no release it ran before is known"]
    assert fleet.offered("no-history") is None
    _installs_reverted(fleet, "via-two", one.id)
    _installs_reverted(fleet, "from-one", one.id)

    # The second revert (campaign 1, release 2) overlaps: no device runs 2.0.0, so it
    # moves nobody, and nobody is moved twice.
    commands.revert(env.ctx, first, actor="test")
    assert status(env, first)["revert"]["devices"] == 0
    for cid in ("via-two", "from-one", "no-history"):
        assert fleet.offered(cid) is None
    text = env.cli("campaign", "status", str(second))
    assert text.code == 0, text.stderr
    assert "release 1 (1.0.0): 2 devices" in text.stdout
    assert "not moved: 1 devices" in text.stdout


def test_a_withdrawn_last_good_release_is_skipped(env: Env) -> None:
    one = release(env, "1.0.0", 1)
    two = release(env, "2.0.0", 1)
    three = release(env, "3.0.0", 2)
    fleet = Fleet(env)
    fleet.add("walked", "1.0.0", "qa")  # 1.0.0 → 2.0.0 (completed) → 3.0.0
    fleet.add("only-two", "2.0.0", "qa")  # registered on 2.0.0 → 3.0.0
    rollout = started(env, two, stages="qa", soak="0s", min_finished=1)
    _install(fleet, "walked", two.id)
    commands.complete(env.ctx, rollout, actor="test")
    bad = started(env, three, stages="qa,100")
    _install(fleet, "walked", three.id)
    _install(fleet, "only-two", three.id)
    commands.halt(env.ctx, bad, reason="crashes", actor="test")
    releases.withdraw_release(env.ctx, two.id, reason="key leaked in image", actor="test")
    # Naming the withdrawn release is refused, and changes nothing.
    with pytest.raises(Conflict, match="withdrawn"):
        commands.revert(env.ctx, bad, to_release=two.id, actor="test")
    assert status(env, bad)["state"] == "halted"

    commands.revert(env.ctx, bad, actor="test")
    plan = status(env, bad)["revert"]
    assert plan["targets"] == [{"release_id": one.id, "version": "1.0.0", "devices": 1}]
    assert plan["not_moved_reasons"] == {"no eligible release: 2.0.0 withdrawn": 1}
    _installs_reverted(fleet, "walked", one.id)
    assert fleet.offered("only-two") is None


def test_overlapping_reverts_of_one_release_move_each_device_once(env: Env) -> None:
    one = release(env, "1.0.0", 1)
    two = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    for cid in ("a", "b"):
        fleet.add(cid, "1.0.0", "qa")
    first = started(env, two, stages="qa,100")
    _install(fleet, "a", two.id)
    commands.halt(env.ctx, first, reason="boot loops", actor="test")
    second = started(env, two, stages="qa,100")  # tried again, halted again
    _install(fleet, "b", two.id)
    commands.halt(env.ctx, second, reason="boot loops again", actor="test")

    commands.revert(env.ctx, first, actor="test")
    commands.revert(env.ctx, second, actor="test")  # a second revert is allowed now
    assert status(env, first)["revert"]["targets"][0]["devices"] == 2
    later = status(env, second)["revert"]
    assert later["targets"] == []
    assert later["not_moved_reasons"] == {f"in the revert of campaign {first}": 2}
    for cid in ("a", "b"):
        state = fleet.poll(cid)
        assert state.open_action_release_id == one.id
        reverts = [a for a in action_service.device_actions(env.ctx, cid) if a.release_id == one.id]
        assert [a.campaign_id for a in reverts] == [first]


def test_to_overrides_and_is_refused_below_the_floor_or_halted(env: Env) -> None:
    one = release(env, "1.0.0", 1)
    release(env, "1.5.0", 2)
    bad = release(env, "2.0.0", 3)
    fleet = Fleet(env)
    fleet.add("d", "1.0.0", "qa")
    campaign = started(env, bad, stages="qa,100")
    _install(fleet, "d", bad.id)
    commands.halt(env.ctx, campaign, reason="boot loops", actor="test")
    with env.ctx.uow() as uow:
        releases.raise_floor(env.ctx, uow, product=PRODUCT, security_version=2)
        uow.commit()
    with pytest.raises(Conflict, match="below the security floor 2"):
        commands.revert(env.ctx, campaign, to_release=one.id, actor="test")
    assert status(env, campaign)["state"] == "halted"
    # Without --to the device's own last good release (1.0.0) is below the floor too.
    commands.revert(env.ctx, campaign, actor="test")
    plan = status(env, campaign)["revert"]
    assert plan["not_moved_reasons"] == {"no eligible release: 1.0.0 below the security floor": 1}
    assert fleet.offered("d") is None


def test_to_names_the_release_for_every_device(env: Env) -> None:
    release(env, "1.0.0", 1)
    one_five = release(env, "1.5.0", 1)
    bad = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("d", "1.0.0", "qa")
    campaign = started(env, bad, stages="qa,100")
    _install(fleet, "d", bad.id)
    commands.halt(env.ctx, campaign, reason="boot loops", actor="test")
    commands.revert(env.ctx, campaign, to_release=one_five.id, actor="test")
    shown = status(env, campaign)
    assert shown["revert_to_release_id"] == one_five.id
    assert shown["revert"]["targets"][0]["release_id"] == one_five.id
    _installs_reverted(fleet, "d", one_five.id)


def test_a_device_that_finishes_the_bad_install_after_the_revert_is_planned_at_the_tick(
    env: Env,
) -> None:
    one = release(env, "1.0.0", 1)
    bad = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("late", "1.0.0", "qa")
    campaign = started(env, bad, stages="qa,100")
    state = fleet.poll("late")
    action = state.open_action_id or 0
    fleet.feedback("late", action, "proceeding")  # installing: the halt lets it finish
    commands.halt(env.ctx, campaign, reason="boot loops", actor="test")
    commands.revert(env.ctx, campaign, actor="test")
    assert status(env, campaign)["revert"]["devices"] == 0
    fleet.feedback("late", action, "closed", "success")
    assert fleet.offered("late") is None  # not planned yet
    commands.tick(env.ctx)
    assert status(env, campaign)["revert"]["targets"][0]["devices"] == 1
    _installs_reverted(fleet, "late", one.id)
