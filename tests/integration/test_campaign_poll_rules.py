"""The poll runs the campaign core's whole decision, on both backends, through the server's
poll path: an open action of a halted or superseded campaign is cancelled at the device's
next poll, a transient failure is retried by the execution policy, ``decide`` runs once per
offer, and the simulator's fold of the same events reaches the same decisions."""

from __future__ import annotations

from dataclasses import dataclass

from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.domain.campaign_states import HaltCampaign, Progress, StartCampaign, transition
from patchgate.services import actions as action_service
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands
from patchgate.sim.devices import abort
from patchgate.sim.engine import Run
from patchgate.sim.model import at
from patchgate.sim.scenario import Fleet as SimFleet
from patchgate.sim.scenario import Scenario
from tests.campaign_support import Clock, Fleet, release, started, status
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


def test_the_simulator_and_the_server_decide_alike_on_the_same_events(env: Env) -> None:
    """The server (its poll path over a real database) and the simulator (its own
    ``sim.engine.Run``: its campaign, its device model and its fold of the device's
    reports) receive the same events for one first-stage device and decide alike."""
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("twin", "1.0.0", "qa")
    clock = Clock(env)
    campaign = started(env, made, stages="qa,100")
    scenario = Scenario(devices=200, internal=20, seed=1)
    run = Run(scenario, SimFleet(scenario), "patchgate")
    minutes = 0.0
    run._set_progress(
        transition(Progress(), StartCampaign(), stages=len(run.stages), now=at(0)).progress
    )
    twin = next(i for i in range(scenario.devices) if run.stage_of[i] == 0)

    def decisions() -> tuple[Seen, Seen, core.Decision]:
        """The server's decision (its poll row, the device's record read afresh) and the
        simulator's (what its poll handler asks ``decide`` for that device)."""
        row = fleet.caller("twin").row
        assert row.device_id is not None
        snapshot = fleet.poller.snapshots.get(row.state_version)
        fleet.engine.refresh(row.device_id, snapshot, clock.now)
        server = _seen(fleet.engine.decide(row, snapshot, clock.now))
        simulated = core.decide(run._facts(twin), run.snapshot, at(minutes), run.tokens)
        return server, _seen(simulated), simulated

    steps: list[tuple[str, Seen]] = []

    def expect(label: str, seen: Seen) -> core.Decision:
        server, simulated, decision = decisions()
        assert server == simulated == seen, (label, server, simulated)
        steps.append((label, seen))
        return decision

    offer = expect("first poll", Seen(core.OFFERED, "rollout", False)).offer
    assert offer is not None
    action = fleet.poll("twin").open_action_id or 0
    fleet.feedback("twin", action, "download")
    run._start(twin, minutes, offer)  # the simulated device: offered, then downloading
    expect("downloading", Seen(core.OPEN_ACTION, None, False))
    fleet.feedback("twin", action, "closed", "failure")
    run._event(twin, ex.Event(ex.FAILURE_REPORTED, at(minutes), transient=True))
    run.env[twin] = abort(run.table, run.env[twin], "download failed")  # its slots idle again
    expect("download failed", Seen(core.RETRY_BACKOFF, None, False))
    clock.advance(minutes=11)
    minutes += 11
    offer = expect("back-off over", Seen(core.OFFERED, "retry", False)).offer
    assert offer is not None
    action = fleet.poll("twin").open_action_id or 0
    fleet.feedback("twin", action, "download")
    run._start(twin, minutes, offer)
    expect("downloading again", Seen(core.OPEN_ACTION, None, False))
    # A halt: the halt's commit leaves the action's row as it was (docs/campaigns.md,
    # "Halt"), so the server decides from its poll row what the simulator decides, and
    # answers cancelAction without writing. The simulator halts as its gate would.
    commands.halt(env.ctx, campaign, reason="field reports", actor="test")
    run.now = minutes
    halted = transition(
        run.plan.progress, HaltCampaign("field reports"), stages=len(run.stages), now=at(minutes)
    )
    run._set_progress(halted.progress)
    expect("halted", Seen(core.CANCEL_HALTED, None, True))
    assert fleet.answer_without_writing("twin") is not None
    assert fleet.links("twin") - {"configData"} == {"cancelAction"}
    assert len(steps) == 6
