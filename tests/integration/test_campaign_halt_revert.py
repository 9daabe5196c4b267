"""A halt in one transaction, the revert target rule, and the security floor rule, through
the campaign commands and the server's poll path, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from patchgate.domain.errors import Conflict
from patchgate.services import actions as action_service
from patchgate.services import audit, releases, state
from patchgate.services.campaigns import commands
from tests.campaign_support import Fleet, release, started, status
from tests.conftest import Env

PRODUCT = "Demo Gateway"


def test_a_halt_cancels_every_pending_action_at_its_commit_without_rewriting_them(
    env: Env,
) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    for cid in ("offered", "downloading", "installing", "reporting", "untouched"):
        fleet.add(cid, "1.0.0", "qa")
    campaign = started(env, made, stages="qa,100")
    actions = {
        cid: fleet.poll(cid).open_action_id or 0
        for cid in ("offered", "downloading", "installing", "reporting")
    }
    fleet.feedback("downloading", actions["downloading"], "download")
    fleet.feedback("installing", actions["installing"], "proceeding")
    version = state.current_version(env.ctx)
    commands.halt(env.ctx, campaign, reason="boot loop", actor="test")
    halted_at = env.ctx.clock()
    # One state-version change and one audit entry, naming the count.
    assert state.current_version(env.ctx) == version + 1
    entries = audit.entries(env.ctx, limit=5)
    assert entries[0].action == "campaign.halted"
    assert entries[0].details["cancelled_actions"] == 3
    assert not [e for e in entries if e.action == "action.cancel"]
    # The halt rewrote no action row: its commit is O(1) in the pending actions.
    with env.ctx.read_uow() as uow:
        listed = {a.id: a for a in uow.campaigns.actions(campaign)}
        stored = [len(uow.actions.events(a)) for a in actions.values()]
    assert stored == [1, 2, 2, 1]  # the offer step (and the feedback), no cancellation step
    # Every read says what the halt did, from its commit.
    statuses = {
        cid: action_service.get_action(env.ctx, a).action.status for cid, a in actions.items()
    }
    expected = {
        "offered": "canceling",
        "downloading": "canceling",
        "installing": "running",  # already installing: it finishes and is recorded
        "reporting": "canceling",
    }
    assert statuses == expected
    assert {cid: listed[a].status for cid, a in actions.items()} == expected
    # Every process answers from its next poll, this one and a fresh one, without writing.
    other = Fleet(env)
    other.tokens = fleet.tokens
    for poller in (fleet, other):
        for cid in ("offered", "downloading", "reporting"):
            ready = poller.answer_without_writing(cid)
            assert ready is not None and ready.open_action_status == "canceling"
            assert "cancelAction" in poller.links(cid)
        assert "deploymentBase" not in poller.links("untouched")
    # A device reporting before its row is marked: the row is marked first (the halt's
    # step at the halt's time), then the report is applied to a cancelling action.
    fleet.feedback("reporting", actions["reporting"], "proceeding")
    detail = action_service.get_action(env.ctx, actions["reporting"])
    assert detail.action.status == "canceling"
    assert [e.status_after for e in detail.events][-2:] == ["canceling", "canceling"]
    # The sweep (each tick of a stopped campaign) marks the rest, at the halt's time, with
    # no audit entry of its own: the halt's named them.
    commands.tick(env.ctx)
    for cid in ("offered", "downloading", "reporting"):
        detail = action_service.get_action(env.ctx, actions[cid])
        marked = [e for e in detail.events if e.details and "halted" in e.details[0]]
        assert len(marked) == 1 and marked[0].at == detail.action.cancel_requested_at, cid
        assert abs((marked[0].at - halted_at).total_seconds()) < 5
    assert action_service.get_action(env.ctx, actions["installing"]).action.status == "running"
    assert not [e for e in audit.entries(env.ctx, limit=10) if e.action == "campaign.sweep"]
    assert status(env, campaign)["state"] == "halted"


def test_a_revert_never_targets_a_halted_release(env: Env) -> None:
    good = release(env, "1.0.0", 1)
    bad = release(env, "2.0.0", 2)
    worse = release(env, "3.0.0", 3)
    fleet = Fleet(env)
    fleet.add("qa-1", "1.0.0", "qa")
    first = started(env, bad, stages="qa,100")
    action = fleet.poll("qa-1").open_action_id or 0
    fleet.feedback("qa-1", action, "closed", "success")
    commands.halt(env.ctx, first, reason="boot loops", actor="test")
    second = started(env, worse, stages="qa,100")
    action = fleet.poll("qa-1").open_action_id or 0
    fleet.feedback("qa-1", action, "closed", "success")
    commands.halt(env.ctx, second, reason="boot loops", actor="test")
    # Naming the halted release explicitly is refused.
    with pytest.raises(Conflict, match="was halted"):
        commands.revert(env.ctx, second, to_release=bad.id, actor="test")
    refused = env.cli("campaign", "revert", str(second), "--to", str(bad.id))
    assert refused.code == 2 and "was halted" in refused.stderr
    commands.revert(env.ctx, second, actor="test")
    assert status(env, second)["revert_to_release_id"] == good.id
    assert fleet.offered("qa-1") == good.id


def test_the_floor_stays_through_a_middle_stage_advance_and_a_halt(env: Env) -> None:
    made = release(env, "2.0.0", 4)
    fleet = Fleet(env)
    fleet.add("qa-1", "1.0.0", "qa")
    campaign = started(env, made, stages="qa,50,100", soak="0s", min_finished=1)
    action = fleet.poll("qa-1").open_action_id or 0
    fleet.feedback("qa-1", action, "closed", "success")
    assert commands.evaluate(env.ctx, campaign) is not None
    moved = status(env, campaign)
    assert moved["state"] == "running" and moved["stage"]["index"] == 1  # the middle stage
    assert releases.security_floor(env.ctx, PRODUCT) == 0
    commands.halt(env.ctx, campaign, reason="field reports", actor="test")
    assert status(env, campaign)["floor_raised"] is False
    assert releases.security_floor(env.ctx, PRODUCT) == 0


def test_the_floor_rises_only_when_the_campaign_completes(env: Env) -> None:
    made = release(env, "2.0.0", 4)
    fleet = Fleet(env)
    fleet.add("qa-1", "1.0.0", "qa")
    campaign = started(env, made, stages="qa,50,100", soak="0s", min_finished=1, manual=True)
    action = fleet.poll("qa-1").open_action_id or 0
    fleet.feedback("qa-1", action, "closed", "success")
    for stage in (1, 2):
        commands.approve(env.ctx, campaign, actor="test")
        assert status(env, campaign)["stage"]["index"] == stage
        assert releases.security_floor(env.ctx, PRODUCT) == 0
    with pytest.raises(Conflict):
        commands.revert(env.ctx, campaign, actor="test")  # a running campaign: refused
    commands.complete(env.ctx, campaign, actor="test")
    assert status(env, campaign)["floor_raised"] is True
    assert releases.security_floor(env.ctx, PRODUCT) == 4
