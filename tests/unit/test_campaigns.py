from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchgate.domain import campaigns as c
from patchgate.domain.campaigns import (
    CampaignPlan,
    Delivery,
    DeviceFacts,
    OpenAction,
    Progress,
    ReleaseRef,
    Selector,
    Snapshot,
    decide,
    transition,
)
from patchgate.domain.cohorts import CANARY_OPTIN_GROUP, cohort_bucket
from patchgate.domain.errors import Conflict, InvalidInput, TransitionRefused
from patchgate.domain.executions import S_DOWNLOADING, S_INSTALLING, S_OFFERED, S_RETRYING
from patchgate.domain.gates import GateResult
from patchgate.domain.ratelimit import RateLimit
from patchgate.domain.stages import default_stages, parse_stages
from patchgate.domain.versions import parse_range
from patchgate.domain.windows import MaintenanceWindow

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OLD = ReleaseRef(1, "gw", "1.0", security_version=3)
NEW = ReleaseRef(2, "gw", "1.1", security_version=4, hardware=frozenset({"gw-a"}))
STAGES = default_stages({"internal", "qa"})


def make_plan(
    state: str = c.RUNNING,
    stage: int = 0,
    release: ReleaseRef = NEW,
    delivery: Delivery | None = None,
    campaign_id: int = 7,
    **kwargs: object,
) -> CampaignPlan:
    cuts = tuple(s.cut(fleet=10_000, optin=1000, fill_from_others=False) for s in STAGES)
    return CampaignPlan(
        id=campaign_id,
        salt=f"salt-{campaign_id}",
        release=release,
        selector=Selector(product="gw"),
        stages=STAGES,
        cuts=cuts,
        progress=Progress(state=state, stage_index=stage, stage_started_at=T0),
        delivery=delivery or Delivery(),
        **kwargs,  # type: ignore[arg-type]
    )


def device(
    device_id: str = "d-1", groups: frozenset[str] = frozenset(), **kwargs: object
) -> DeviceFacts:
    base = DeviceFacts(
        device_id=device_id,
        product="gw",
        hardware="gw-a",
        groups=groups,
        installed_version="1.0",
        security_floor=3,
    )
    return replace(base, **kwargs)  # type: ignore[arg-type]


def in_percent(percent: float, campaign_id: int = 7, outside: bool = False) -> str:
    """A device id whose bucket is inside (or outside) the first ``percent`` % cut-off."""
    for i in range(100_000):
        did = f"dev-{i}"
        inside = cohort_bucket(f"salt-{campaign_id}", did) < percent * 100
        if inside != outside:
            return did
    raise AssertionError("no such device")


# ---- state machine ----------------------------------------------------------------------


def test_a_campaign_runs_through_its_stages_and_completes_raising_the_floor() -> None:
    p = Progress()
    t = transition(p, c.StartCampaign(), stages=3, now=T0)
    assert t.progress.state == c.RUNNING and t.events[0].kind == c.CAMPAIGN_STARTED
    for to in (1, 2):
        t = transition(t.progress, c.AdvanceStage(), stages=3, now=T0)
        assert t.progress.stage_index == to and t.events[0].details["to"] == to
    t = transition(t.progress, c.AdvanceStage(), stages=3, now=T0)
    assert t.progress.state == c.COMPLETED and t.progress.floor_raised
    assert t.events[0].kind == c.CAMPAIGN_COMPLETED
    assert c.floor_after(3, 4, t.progress) == 4


def test_pause_and_resume() -> None:
    running = transition(Progress(), c.StartCampaign(), stages=2, now=T0).progress
    paused = transition(running, c.PauseCampaign(), stages=2, now=T0)
    assert paused.progress.state == c.PAUSED and paused.events[0].kind == c.CAMPAIGN_PAUSED
    resumed = transition(paused.progress, c.ResumeCampaign(), stages=2, now=T0)
    assert resumed.progress.state == c.RUNNING


def test_a_halted_campaign_cannot_be_started_or_resumed_and_says_what_is_allowed() -> None:
    running = transition(Progress(), c.StartCampaign(), stages=2, now=T0).progress
    halted = transition(running, c.HaltCampaign("crash loop"), stages=2, now=T0)
    assert halted.progress.halt_reason == "crash loop" and halted.progress.halted_at == T0
    for command in (c.StartCampaign(), c.ResumeCampaign()):
        with pytest.raises(TransitionRefused, match="allowed: revert, cancel") as info:
            transition(halted.progress, command, stages=2, now=T0)
        assert "roll forward" in str(info.value)


def test_revert_then_complete_does_not_raise_the_floor() -> None:
    running = transition(Progress(), c.StartCampaign(), stages=2, now=T0).progress
    halted = transition(running, c.HaltCampaign("bad"), stages=2, now=T0).progress
    reverting = transition(halted, c.RevertCampaign(), stages=2, now=T0).progress
    assert reverting.state == c.REVERTING
    done = transition(reverting, c.CompleteCampaign(), stages=2, now=T0).progress
    assert done.state == c.COMPLETED and not done.floor_raised
    assert c.floor_after(3, 4, done) == 3


def test_complete_is_refused_before_the_last_stage() -> None:
    running = transition(Progress(), c.StartCampaign(), stages=3, now=T0).progress
    with pytest.raises(TransitionRefused, match="last stage"):
        transition(running, c.CompleteCampaign(), stages=3, now=T0)


def test_halt_needs_a_reason_and_records_gate_figures() -> None:
    running = transition(Progress(), c.StartCampaign(), stages=2, now=T0).progress
    with pytest.raises(InvalidInput, match="reason"):
        transition(running, c.HaltCampaign(" "), stages=2, now=T0)
    gate = GateResult("halt", ("too many failures",), {"failures": 9})
    t = c.apply_verdict(running, gate, stages=2, now=T0)
    assert t.progress.state == c.HALTED
    assert t.events[0].details["gate"]["failures"] == 9


def test_a_breached_gate_halts_a_paused_campaign_but_never_advances_it() -> None:
    running = transition(Progress(), c.StartCampaign(), stages=2, now=T0).progress
    paused = transition(running, c.PauseCampaign(), stages=2, now=T0).progress
    assert c.apply_verdict(paused, GateResult("advance", (), {}), stages=2, now=T0).events == ()
    halted = c.apply_verdict(paused, GateResult("halt", ("x",), {}), stages=2, now=T0)
    assert halted.progress.state == c.HALTED
    done = Progress(state=c.COMPLETED)
    assert c.apply_verdict(done, GateResult("halt", ("x",), {}), stages=2, now=T0).events == ()


def test_verdicts_that_wait_change_nothing_and_approval_is_recorded() -> None:
    running = transition(Progress(), c.StartCampaign(), stages=2, now=T0).progress
    waiting = GateResult("await_approval", ("approve",), {})
    assert c.apply_verdict(running, waiting, stages=2, now=T0).events == ()
    assert c.awaiting_approval(waiting)
    approved = transition(running, c.ApproveStage(), stages=2, now=T0).progress
    assert approved.approved
    advanced = c.apply_verdict(approved, GateResult("advance", (), {}), stages=2, now=T0)
    assert advanced.progress.stage_index == 1 and not advanced.progress.approved


@pytest.mark.parametrize("state", [c.COMPLETED, c.CANCELLED])
def test_finished_campaigns_allow_nothing(state: str) -> None:
    with pytest.raises(TransitionRefused, match="none"):
        transition(Progress(state=state), c.CancelCampaign(), stages=1, now=T0)


commands = st.sampled_from(
    [
        c.StartCampaign(),
        c.PauseCampaign(),
        c.ResumeCampaign(),
        c.ApproveStage(),
        c.AdvanceStage(),
        c.HaltCampaign("r"),
        c.RevertCampaign(),
        c.CompleteCampaign(),
        c.CancelCampaign(),
    ]
)


@given(st.lists(commands, max_size=20))
def test_the_state_machine_only_takes_listed_transitions(steps: list[c.Command]) -> None:
    p = Progress()
    seen_halt = False
    for command in steps:
        try:
            t = transition(p, command, stages=3, now=T0)
        except TransitionRefused:
            assert command.name not in c.ALLOWED[p.state] or command.name == "complete"
            continue
        assert command.name in c.ALLOWED[p.state]
        p = t.progress
        seen_halt = seen_halt or p.state == c.HALTED
        if seen_halt:
            assert p.state in (c.HALTED, c.REVERTING, c.COMPLETED, c.CANCELLED)
            assert not (p.state == c.COMPLETED and p.floor_raised)


# ---- decide -----------------------------------------------------------------------------


def test_internal_devices_get_the_offer_in_the_first_stage_and_others_wait() -> None:
    snap = Snapshot.build(1, [make_plan(stage=0)])
    d = decide(device(groups=frozenset({"qa"})), snap, T0)
    assert d.offer is not None and d.offer.release_id == NEW.id and d.offer.kind == "rollout"
    assert d.offer.download == "attempt" and d.offer.update == "attempt"
    assert decide(device(), snap, T0).reason == c.NOT_IN_STAGE


def test_canary_admits_opt_in_devices_only() -> None:
    snap = Snapshot.build(1, [make_plan(stage=1)])
    optin = frozenset({CANARY_OPTIN_GROUP})
    # 2 % of 10,000 from 1,000 opt-ins: opt-in devices below bucket 2000.
    inside = in_percent(20)
    assert decide(device(inside, groups=optin), snap, T0).offer is not None
    assert decide(device(inside), snap, T0).reason == c.NOT_IN_STAGE


def test_later_stages_keep_every_earlier_device() -> None:
    optin = frozenset({CANARY_OPTIN_GROUP})
    inside = in_percent(20)
    for stage in range(1, 5):
        snap = Snapshot.build(1, [make_plan(stage=stage)])
        assert decide(device(inside, groups=optin), snap, T0).offer is not None


@pytest.mark.parametrize("state", [c.DRAFT, c.PAUSED, c.HALTED, c.CANCELLED])
def test_campaigns_that_are_not_running_offer_nothing(state: str) -> None:
    snap = Snapshot.build(1, [make_plan(state=state, stage=4)])
    assert decide(device(), snap, T0).offer is None


def test_a_completed_rollout_still_serves_stragglers() -> None:
    plan = make_plan(stage=4)
    done = replace(plan, progress=replace(plan.progress, state=c.COMPLETED, floor_raised=True))
    assert decide(device(), Snapshot.build(1, [done]), T0).offer is not None


def test_targeting_by_product_hardware_groups_and_version_range() -> None:
    plan = make_plan(stage=4)
    snap = Snapshot.build(1, [plan])
    assert decide(device(product="other"), snap, T0).reason == c.NO_CAMPAIGN
    assert decide(device(hardware="gw-b"), snap, T0).reason == c.NOT_TARGETED
    ranged = replace(plan, selector=Selector("gw", versions=parse_range(">=0.9,<1.0")))
    assert decide(device(), Snapshot.build(1, [ranged]), T0).reason == c.NOT_TARGETED
    grouped = replace(plan, selector=Selector("gw", groups=frozenset({"beta"})))
    snap_g = Snapshot.build(1, [grouped])
    assert decide(device(), snap_g, T0).reason == c.NOT_TARGETED
    assert decide(device(groups=frozenset({"beta"})), snap_g, T0).offer is not None
    hw = replace(plan, selector=Selector("gw", hardware=frozenset({"gw-z"})))
    assert decide(device(), Snapshot.build(1, [hw]), T0).reason == c.NOT_TARGETED


def test_no_offer_of_what_is_installed_already_done_or_below_the_floor() -> None:
    snap = Snapshot.build(1, [make_plan(stage=4)])
    assert decide(device(installed_version="1.1"), snap, T0).reason == c.ALREADY_DONE
    assert decide(device(finished_campaigns=frozenset({7})), snap, T0).reason == c.ALREADY_DONE
    assert decide(device(security_floor=5), snap, T0).reason == c.BELOW_FLOOR
    withdrawn = make_plan(stage=4, release=replace(NEW, withdrawn=True))
    assert decide(device(), Snapshot.build(1, [withdrawn]), T0).offer is None


def test_soft_forced_download_only_and_confirmation() -> None:
    forced = make_plan(stage=4, delivery=Delivery(forced=True, download_only=True))
    offer = decide(device(), Snapshot.build(1, [forced]), T0).offer
    assert offer is not None and offer.download == "forced" and offer.update == "skip"
    confirm = make_plan(stage=4, delivery=Delivery(confirm_required=True))
    offer = decide(device(), Snapshot.build(1, [confirm]), T0).offer
    assert offer is not None and offer.confirmation_required


def test_maintenance_window_holds_back_new_offers() -> None:
    window = MaintenanceWindow.parse("0 2 * * *,2h,UTC")
    plan = make_plan(stage=4, delivery=Delivery(window=window))
    snap = Snapshot.build(1, [plan])
    assert decide(device(), snap, T0).reason == c.OUTSIDE_WINDOW
    inside = T0.replace(hour=3)
    offer = decide(device(), snap, inside).offer
    assert offer is not None and offer.maintenance_window == "available"
    assert plan.window_state(T0) == "unavailable"


def test_rate_limit_spends_tokens_returned_to_the_caller() -> None:
    plan = make_plan(stage=4, delivery=Delivery(rate=RateLimit.per_min(2)))
    snap = Snapshot.build(1, [plan])
    tokens: dict[int, c.TokenBucket] = {}
    offers = 0
    for i in range(5):
        d = decide(device(f"d{i}"), snap, T0, tokens)
        if d.offer is not None:
            offers += 1
            assert d.tokens is not None
            tokens[plan.id] = d.tokens
        else:
            assert d.reason == c.RATE_LIMITED
    assert offers == 2
    assert decide(device("d9"), snap, T0 + timedelta(seconds=30), tokens).offer is not None


def test_one_open_action_per_device() -> None:
    snap = Snapshot.build(1, [make_plan(stage=4)])
    action = OpenAction(100, 7, NEW.id, 4, S_DOWNLOADING)
    assert decide(device(open_action=action), snap, T0).reason == c.OPEN_ACTION


@pytest.mark.parametrize("status", [S_OFFERED, S_DOWNLOADING, S_RETRYING])
def test_pending_actions_of_a_halted_campaign_are_cancelled(status: str) -> None:
    snap = Snapshot.build(2, [make_plan(state=c.HALTED, stage=1)])
    action = OpenAction(100, 7, NEW.id, 4, status)
    d = decide(device(open_action=action), snap, T0)
    assert d.offer is None and d.cancel is not None and d.cancel.action_id == 100


def test_an_action_already_installing_finishes_after_a_halt() -> None:
    snap = Snapshot.build(2, [make_plan(state=c.HALTED, stage=1)])
    action = OpenAction(100, 7, NEW.id, 4, S_INSTALLING)
    d = decide(device(open_action=action), snap, T0)
    assert d.offer is None and d.cancel is None


def test_retries_are_offered_again_after_their_backoff() -> None:
    snap = Snapshot.build(1, [make_plan(stage=4)])
    action = OpenAction(100, 7, NEW.id, 4, S_RETRYING, retry_after=T0 + timedelta(minutes=5))
    facts = device(open_action=action)
    assert decide(facts, snap, T0).reason == c.RETRY_BACKOFF
    later = decide(facts, snap, T0 + timedelta(minutes=5))
    assert later.offer is not None and later.offer.kind == "retry"


def test_a_newer_security_release_supersedes_an_older_pending_one() -> None:
    newer = ReleaseRef(3, "gw", "1.2", security_version=5)
    old_plan = make_plan(stage=4, campaign_id=7)
    new_plan = make_plan(stage=4, release=newer, campaign_id=8)
    snap = Snapshot.build(1, [old_plan, new_plan])
    pending = OpenAction(100, 7, NEW.id, 4, S_OFFERED)
    d = decide(device(open_action=pending), snap, T0)
    assert d.cancel is not None and d.reason == c.CANCEL_SUPERSEDED
    installing = replace(pending, status=S_INSTALLING)
    assert decide(device(open_action=installing), snap, T0).reason == c.OPEN_ACTION
    # Without an open action, the higher security version is offered first.
    offer = decide(device(), snap, T0).offer
    assert offer is not None and offer.release_id == newer.id
    feature = make_plan(stage=4, release=replace(newer, type="feature"), campaign_id=8)
    snap_f = Snapshot.build(1, [old_plan, feature])
    assert decide(device(open_action=pending), snap_f, T0).reason == c.OPEN_ACTION


def test_revert_offers_the_known_good_release_to_devices_on_the_bad_one() -> None:
    plan = make_plan(state=c.REVERTING, stage=1, revert_to=OLD)
    snap = Snapshot.build(3, [plan])
    d = decide(device(installed_version="1.1"), snap, T0)
    assert d.offer is not None and d.offer.kind == "revert" and d.offer.release_id == OLD.id
    assert d.offer.update == "forced"
    assert decide(device(installed_version="1.0"), snap, T0).offer is None
    # Below the device's floor the revert would be refused by the device: not offered.
    assert decide(device(installed_version="1.1", security_floor=4), snap, T0).offer is None
    # A revert that ended (even failed) is not offered again.
    done = device(installed_version="1.1", finished_reverts=frozenset({7}))
    assert decide(done, snap, T0).reason == c.ALREADY_DONE


def test_stage_of_names_the_first_admitting_stage() -> None:
    plan = make_plan()
    assert plan.stage_of("anyone", frozenset({"qa"})) == 0
    inside = in_percent(20)
    assert plan.stage_of(inside, frozenset({CANARY_OPTIN_GROUP})) == 1
    ten = in_percent(10)
    assert plan.stage_of(ten, frozenset()) == 2
    assert plan.stage_of(in_percent(100, outside=False), frozenset()) is not None


def test_roll_forward_serves_devices_on_the_halted_release_first() -> None:
    halted = make_plan(state=c.HALTED, stage=1)
    fix = ReleaseRef(3, "gw", "1.2", security_version=5)
    priority = c.plan_roll_forward(halted, fix)
    assert priority == frozenset({"1.1"})
    forward = make_plan(stage=0, release=fix, campaign_id=9, priority_versions=priority)
    snap = Snapshot.build(4, [halted, forward])
    d = decide(device(installed_version="1.1", security_floor=4), snap, T0)
    assert d.offer is not None and d.offer.release_id == fix.id
    assert decide(device(), snap, T0).reason == c.NOT_IN_STAGE
    with pytest.raises(Conflict, match="below the halted"):
        c.plan_roll_forward(halted, replace(fix, security_version=1))
    with pytest.raises(Conflict, match="not halted"):
        c.plan_roll_forward(make_plan(), fix)


def test_release_problems_name_the_rule() -> None:
    assert c.release_problems(NEW, signed=True, artifacts=1) == []
    found = c.release_problems(replace(NEW, withdrawn=True), signed=False, artifacts=0)
    assert len(found) == 3 and "withdrawn" in found[0] and "not signed" in found[1]


@settings(max_examples=60)
@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30, unique=True),
    st.integers(0, 4),
    st.sampled_from([S_OFFERED, S_DOWNLOADING, S_INSTALLING, S_RETRYING, None]),
    st.booleans(),
)
def test_after_a_halt_no_poll_gets_the_release(
    ids: list[str], stage: int, status: str | None, optin: bool
) -> None:
    halted = make_plan(state=c.HALTED, stage=stage)
    snap = Snapshot.build(9, [halted])
    groups = frozenset({CANARY_OPTIN_GROUP, "qa"}) if optin else frozenset()
    for did in ids:
        action = None if status is None else OpenAction(1, 7, NEW.id, 4, status, T0)
        d = decide(device(did, groups=groups, open_action=action), snap, T0 + timedelta(days=1))
        assert d.offer is None
        if status in (S_OFFERED, S_DOWNLOADING, S_RETRYING):
            assert d.cancel is not None


@settings(max_examples=60)
@given(st.text(min_size=1, max_size=12), st.integers(0, 3))
def test_a_device_offered_at_one_stage_is_offered_at_every_later_stage(
    did: str, stage: int
) -> None:
    groups = frozenset({CANARY_OPTIN_GROUP})
    first = decide(device(did, groups=groups), Snapshot.build(1, [make_plan(stage=stage)]), T0)
    if first.offer is not None:
        for later in range(stage + 1, 5):
            snap = Snapshot.build(1, [make_plan(stage=later)])
            assert decide(device(did, groups=groups), snap, T0).offer is not None


def test_stage_specs_with_unknown_groups_never_reach_a_plan() -> None:
    with pytest.raises(InvalidInput):
        parse_stages("ghosts,100", {"internal"})


def test_a_stop_cancels_the_pending_actions_it_names_and_no_other() -> None:
    halted_at = datetime(2026, 1, 1, tzinfo=UTC)
    ended_at = halted_at + timedelta(hours=1)
    halted = c.StopFacts(7, c.HALTED, 3, halted_at, None, "boot loop")
    reverting = replace(halted, state=c.REVERTING)
    cancelled = c.StopFacts(8, c.CANCELLED, 3, None, ended_at)
    halt_step = (halted_at, "cancellation requested: campaign 7 halted: boot loop")
    for status in ("offered", "downloading", "downloaded"):
        assert c.stop_cancel(status, True, 3, halted) == halt_step
        assert c.stop_cancel(status, True, 3, reverting) == halt_step  # still cancelled
        assert c.stop_cancel(status, True, 4, cancelled) == (
            ended_at,
            "cancellation requested: campaign 8 cancelled",
        )
    # A revert's own offer (another release), an install under way, an action waiting for
    # confirmation (closed in the stop itself), a closed one, a running campaign: not so.
    assert c.stop_cancel("offered", True, 2, reverting) is None
    assert c.stop_cancel("running", True, 3, halted) is None
    assert c.stop_cancel("waiting_confirmation", True, 3, halted) is None
    assert c.stop_cancel("downloaded", False, 3, halted) is None
    running = c.StopFacts(9, c.RUNNING, 3, None, None)
    assert c.stop_cancel("offered", True, 3, running) is None
    assert c.stop_cancel("offered", True, 3, None) is None


@pytest.mark.parametrize("percent", [10, 50])
def test_a_known_cohort_bucket_decides_as_the_hash_and_only_for_its_salt(percent: int) -> None:
    plan = make_plan(stage=2 if percent == 10 else 3)  # the 10 % and 50 % stages
    snap = Snapshot.build(1, [plan])
    inside, outside = in_percent(percent), in_percent(percent, outside=True)
    for did in (inside, outside):
        bucket = cohort_bucket(plan.salt, did)
        hashed = decide(device(did), snap, T0)
        known = decide(device(did, cohort=(plan.salt, bucket)), snap, T0)
        assert known == hashed
    assert decide(device(inside), snap, T0).offer is not None
    assert decide(device(outside), snap, T0).reason == c.NOT_IN_STAGE
    # The poll reads the caller's bucket for the plan's salt: a bucket outside the stage
    # keeps the device out, one inside lets it in ...
    assert decide(device(inside, cohort=(plan.salt, 9_999)), snap, T0).reason == c.NOT_IN_STAGE
    assert decide(device(outside, cohort=(plan.salt, 0)), snap, T0).offer is not None
    # ... and ignores a bucket of another salt, hashing the id as always.
    assert decide(device(outside, cohort=("other-salt", 0)), snap, T0).reason == c.NOT_IN_STAGE
    assert decide(device(inside, cohort=("other-salt", 9_999)), snap, T0).offer is not None
