"""The poll runs the campaign core's whole decision, on both backends, through the server's
poll path: an open action of a halted or superseded campaign is cancelled at the device's
next poll, a transient failure is retried by the execution policy, ``decide`` runs once per
offer, and the simulator's fold of the same events reaches the same decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.services import actions as action_service
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands
from tests.campaign_support import HW, Clock, Fleet, release, started, status
from tests.conftest import Env


def test_an_open_action_of_a_halted_campaign_is_cancelled_at_the_next_poll(env: Env) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("late", "1.0.0", "qa")
    campaign = started(env, made, stages="qa,100")
    commands.halt(env.ctx, campaign, reason="boot loop", actor="test")
    # An action of the halted campaign that the halt did not see (made after it, as a
    # poll that raced it would have): the next poll answers cancelAction.
    device = device_service.show_device(env.ctx, "late")
    offer = core.Offer(campaign, made.id, "2.0.0", "rollout", 0, "forced", "forced", False, None)
    action = action_service.create_from_offer(env.ctx, device.id, offer, actor="test")
    assert action is not None
    fleet.feedback("late", action.id, "download")  # the device accepted it
    assert fleet.links("late") - {"configData"} == {"cancelAction"}
    assert action_service.get_action(env.ctx, action.id).action.status == "canceling"


def test_an_open_action_superseded_by_a_newer_security_release_is_cancelled(env: Env) -> None:
    older, newer = release(env, "2.0.0", 2), release(env, "3.0.0", 3)
    fleet = Fleet(env)
    fleet.add("dev", "1.0.0", "qa")
    fleet.add("ringer", "1.0.0", "ring")
    first = started(env, older, stages="qa,100")
    assert fleet.offered("dev") == older.id
    # The newer campaign targets a group the device joins only after it started, so the
    # start's sweep did not see it: the device's next poll does.
    started(env, newer, stages="ring,100", groups=("ring",))
    device_service.tag_device(env.ctx, "dev", ["ring"], actor="test")
    assert fleet.links("dev") - {"configData"} == {"cancelAction"}
    pending = action_service.device_actions(env.ctx, "dev")[0]
    assert pending.campaign_id == first and pending.status == "canceling"


def test_a_failure_before_installing_is_retried_by_the_execution_policy(env: Env) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("flaky", "1.0.0", "qa")
    clock = Clock(env)
    campaign = started(env, made, stages="qa,100")
    policy = ex.DEFAULT_EXECUTION_POLICY
    offers = []
    for attempt in range(1, policy.max_retries + 2):
        state = fleet.poll("flaky")
        assert state.open_action_release_id == made.id, attempt
        offers.append(state.open_action_id)
        fleet.feedback("flaky", state.open_action_id or 0, "download")
        fleet.feedback("flaky", state.open_action_id or 0, "closed", "failure")
        assert fleet.poll("flaky").open_action_id is None  # backing off
        counts = status(env, campaign)["counts"]
        if attempt <= policy.max_retries:
            assert counts["retrying"] == 1 and counts["failed"] == 0
        clock.advance(seconds=(policy.retry_backoff * 2 ** (attempt - 1)).total_seconds() + 1)
    assert len(set(offers)) == policy.max_retries + 1  # a new action per attempt
    # The budget is spent: the last failure counts, and nothing more is offered.
    assert fleet.poll("flaky").open_action_id is None
    counts = status(env, campaign)["counts"]
    assert counts["failed"] == 1 and counts["retrying"] == 0


def test_a_failure_while_installing_is_not_retried(env: Env) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("bricked", "1.0.0", "qa")
    clock = Clock(env)
    campaign = started(env, made, stages="qa,100")
    action = fleet.poll("bricked").open_action_id or 0
    fleet.feedback("bricked", action, "proceeding")
    fleet.feedback("bricked", action, "closed", "failure")
    clock.advance(hours=6)
    assert fleet.poll("bricked").open_action_id is None
    assert status(env, campaign)["counts"]["failed"] == 1


def test_decide_runs_once_per_offer_and_once_per_quiet_poll(env: Env) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("one", "1.0.0", "qa")
    fleet.add("other", "1.0.0")
    started(env, made, stages="qa,100")
    before = fleet.engine.decisions
    assert fleet.offered("one") == made.id
    assert fleet.engine.decisions == before + 1
    assert fleet.offered("other") is None  # not in the first stage: no write at all
    assert fleet.engine.decisions == before + 2
    assert fleet.offered("one") == made.id  # its open action, answered from the row
    assert fleet.engine.decisions == before + 3


@dataclass(frozen=True)
class Seen:
    """What a decision says: the rule, the kind of offer, whether it cancels."""

    reason: str
    offer: str | None
    cancel: bool


def _seen(decision: core.Decision) -> Seen:
    kind = decision.offer.kind if decision.offer is not None else None
    return Seen(decision.reason, kind, decision.cancel is not None)


class SimDevice:
    """One device as the simulator keeps it (sim/engine.py): an execution folded with
    ``executions.step`` from the device's events, its open action from
    ``campaigns.open_action_of`` (the function the simulator calls)."""

    def __init__(self, cid: str, release_ref: core.ReleaseRef, campaign_id: int) -> None:
        self.cid = cid
        self.release = release_ref
        self.campaign_id = campaign_id
        self.execution = ex.NEW
        self.action = 0

    def event(self, kind: str, at: datetime, *, transient: bool = False) -> None:
        event = ex.Event(kind, at, transient=transient)
        self.execution = ex.step(ex.settle(self.execution, at), event, self.release.version)

    def facts(self, product: str | None, now: datetime) -> core.DeviceFacts:
        execution = ex.settle(self.execution, now)
        action = core.open_action_of(execution, self.action, self.campaign_id, self.release)
        finished = frozenset({self.campaign_id}) if execution.status in ex.TERMINAL else frozenset()
        return core.DeviceFacts(
            self.cid,
            product,
            hardware=HW,
            groups=frozenset({"qa"}),
            installed_version="1.0.0",
            open_action=action,
            finished_campaigns=finished,
        )


def test_the_simulator_and_the_server_decide_alike_on_the_same_events(env: Env) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("twin", "1.0.0", "qa")
    clock = Clock(env)
    campaign = started(env, made, stages="qa,100")

    def decisions() -> tuple[Seen, Seen]:
        """The server's decision (its poll row, the device's record read afresh) and the
        simulator's (its own fold of the same events), over the one snapshot."""
        row = fleet.caller("twin").row
        assert row.device_id is not None
        snapshot = fleet.poller.snapshots.get(row.state_version)
        fleet.engine.refresh(row.device_id, snapshot, clock.now)
        server = _seen(fleet.engine.decide(row, snapshot, clock.now))
        facts = twin.facts(snapshot.products.get(HW), clock.now)
        return server, _seen(core.decide(facts, snapshot, clock.now))

    twin = SimDevice("twin", core.ReleaseRef(made.id, "", "2.0.0", 2), campaign)
    steps: list[tuple[str, Seen]] = []

    def expect(label: str, seen: Seen) -> None:
        server, simulated = decisions()
        assert server == simulated == seen, (label, server, simulated)
        steps.append((label, seen))

    expect("first poll", Seen(core.OFFERED, "rollout", False))
    action = fleet.poll("twin").open_action_id or 0
    twin.action = action
    twin.event(ex.OFFERED, clock.now)
    expect("offered", Seen(core.OPEN_ACTION, None, False))
    fleet.feedback("twin", action, "download")
    twin.event(ex.DOWNLOADING, clock.now)
    expect("downloading", Seen(core.OPEN_ACTION, None, False))
    fleet.feedback("twin", action, "closed", "failure")
    twin.event(ex.FAILURE_REPORTED, clock.now, transient=True)
    expect("download failed", Seen(core.RETRY_BACKOFF, None, False))
    clock.advance(minutes=11)
    expect("back-off over", Seen(core.OFFERED, "retry", False))
    action = fleet.poll("twin").open_action_id or 0
    twin.action = action
    twin.event(ex.OFFERED, clock.now)
    expect("offered again", Seen(core.OPEN_ACTION, None, False))
    # A halt: the halt's commit leaves the action's row as it was (docs/campaigns.md,
    # "Halt"), so the server decides from its poll row what the simulator decides, and
    # answers cancelAction without writing.
    commands.halt(env.ctx, campaign, reason="field reports", actor="test")
    expect("halted", Seen(core.CANCEL_HALTED, None, True))
    assert fleet.poller.answer_without_writing(fleet.caller("twin")) is not None
    assert fleet.links("twin") - {"configData"} == {"cancelAction"}
    assert len(steps) == 7
