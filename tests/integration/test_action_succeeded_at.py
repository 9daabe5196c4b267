"""``actions.succeeded_at``: the time of an action's first successful finish, written with
the deployment feedback that finished it (through the real DDI path, from a direct offer or
a campaign), left empty by failures, cancellations, removals, time-outs and halts, never
changed after; and the fix rollout read from it (``fix_runs``, ``fix_reach``) says what the
feedback events say on a fleet with mixed histories. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from patchgate.adapters.db.models import Action, ActionEvent, Device
from patchgate.domain.actions import ActionGone
from patchgate.domain.clock import as_utc
from patchgate.services import actions, ddi
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.timing import close_timed_out
from patchgate.services.device_ports import NewActionEvent
from patchgate.services.vulnerability_ports import FixReach, FixShare
from tests.campaign_support import Clock, Fleet, started
from tests.campaign_support import release as campaign_release
from tests.conftest import Env
from tests.factories import make_release

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
PRODUCT = "Demo Gateway"
HW = "demo-gw-1"


def _at(env: Env, hours: float) -> datetime:
    when = T0 + timedelta(hours=hours)
    env.ctx.clock = lambda: when
    return when


def _device(env: Env, cid: str) -> str:
    return device_service.add_device(env.ctx, cid, hardware=HW, version="1.0.0", actor="t").token


def _offer(env: Env, cid: str, release: int, hours: float) -> int:
    _at(env, hours)
    actions.assign(env.ctx, cid, release, actor="t")
    return actions.device_actions(env.ctx, cid)[0].id


def _report(
    env: Env, cid: str, token: str, action: int, hours: float, execution: str, finished: str
) -> None:
    _at(env, hours)
    caller = ddi.authenticate(env.ctx, "DEFAULT", cid, f"TargetToken {token}")
    fb = ddi.Feedback(ddi.rules.Execution(execution), ddi.rules.Finished(finished))
    ddi.deployment_feedback(env.ctx, caller, action, fb)


def _succeeded(env: Env, action: int) -> datetime | None:
    with env.app.engines.write.connect() as conn:
        value = conn.execute(select(Action.succeeded_at).where(Action.id == action)).scalar_one()
    return as_utc(value) if value is not None else None


def test_a_successful_finish_is_kept_and_never_changed(demo_env: Env) -> None:
    env = demo_env
    fix = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW])
    token = _device(env, "gw-00")
    action = _offer(env, "gw-00", fix.id, 0)
    _report(env, "gw-00", token, action, 1, "proceeding", "none")
    assert _succeeded(env, action) is None
    _report(env, "gw-00", token, action, 2, "closed", "success")
    assert _succeeded(env, action) == T0 + timedelta(hours=2)

    # The action is closed: later feedback, success or failure, is refused and changes nothing.
    for finished in ("success", "failure"):
        with pytest.raises(ActionGone):
            _report(env, "gw-00", token, action, 3, "closed", finished)
    assert _succeeded(env, action) == T0 + timedelta(hours=2)

    # Even a later success written past the service's checks leaves the first one.
    with env.ctx.uow() as uow:
        uow.actions.add_event(
            NewActionEvent(action_id=action, at=T0 + timedelta(hours=4), channel="deployment",
                           status_after="finished", execution="closed", finished="success")
        )  # fmt: skip
        uow.commit()
    assert _succeeded(env, action) == T0 + timedelta(hours=2)


def test_failures_cancellations_and_removals_leave_it_empty(demo_env: Env) -> None:
    env = demo_env
    fix = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW])
    tokens = {cid: _device(env, cid) for cid in ("gw-00", "gw-01", "gw-02", "gw-03")}

    failed = _offer(env, "gw-00", fix.id, 0)
    _report(env, "gw-00", tokens["gw-00"], failed, 1, "closed", "failure")

    # A cancellation the device confirms with success: the action is cancelled, not finished.
    cancelled = _offer(env, "gw-01", fix.id, 0)
    _report(env, "gw-01", tokens["gw-01"], cancelled, 1, "proceeding", "none")
    _at(env, 2)
    actions.cancel(env.ctx, cancelled, actor="t")
    caller = ddi.authenticate(env.ctx, "DEFAULT", "gw-01", f"TargetToken {tokens['gw-01']}")
    fb = ddi.Feedback(ddi.rules.Execution("closed"), ddi.rules.Finished("success"))
    ddi.cancel_feedback(env.ctx, caller, cancelled, fb)

    removed = _offer(env, "gw-02", fix.id, 0)
    _at(env, 3)
    device_service.remove_device(env.ctx, "gw-02", actor="t")

    retried = _offer(env, "gw-03", fix.id, 0)
    _report(env, "gw-03", tokens["gw-03"], retried, 1, "closed", "failure")
    again = _offer(env, "gw-03", fix.id, 5)
    _report(env, "gw-03", tokens["gw-03"], again, 6, "closed", "success")

    assert [_succeeded(env, a) for a in (failed, cancelled, removed, retried)] == [None] * 4
    assert _succeeded(env, again) == T0 + timedelta(hours=6)


def test_campaign_actions_time_outs_and_halts(env: Env) -> None:
    """A campaign's action finished by DDI feedback keeps its time; the campaign's own
    writers (the time-out, the halt's steps) set none and change none."""
    clock = Clock(env)
    fleet = Fleet(env)
    for cid in ("c-00", "c-01", "c-02"):
        fleet.add(cid, "1.0.0")
    made = campaign_release(env, "2.0.0", 2)
    campaign = started(env, made, stages="100")
    for cid in ("c-00", "c-01", "c-02"):
        fleet.poll(cid)
    ids = {cid: actions.device_actions(env.ctx, cid)[0].id for cid in ("c-00", "c-01", "c-02")}
    clock.advance(minutes=10)
    fleet.feedback("c-00", ids["c-00"], "closed", "success")
    finished_at = clock.now
    clock.advance(hours=2)
    assert close_timed_out(env.ctx, campaign, timedelta(hours=1), clock.now) == 2
    commands.halt(env.ctx, campaign, reason="boot loop in the field", actor="test")
    assert _succeeded(env, ids["c-00"]) == finished_at
    assert _succeeded(env, ids["c-01"]) is None
    assert _succeeded(env, ids["c-02"]) is None


def _from_events(env: Env) -> dict[tuple[int, int], datetime]:
    """The first successful finish per (device, release), read from the feedback events
    (how the rollout was read before the actions kept it)."""
    with env.app.engines.write.connect() as conn:
        rows = conn.execute(
            select(Action.device_id, Action.release_id, func.min(ActionEvent.at))
            .join(ActionEvent, ActionEvent.action_id == Action.id)
            .where(
                ActionEvent.channel == "deployment",
                ActionEvent.status_after == "finished",
                ActionEvent.finished == "success",
            )
            .group_by(Action.device_id, Action.release_id)
        ).all()
    return {(d, r): as_utc(at) for d, r, at in rows}


def test_the_rollout_reads_what_the_events_say(demo_env: Env) -> None:
    env = demo_env
    fix = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW])
    later = make_release(env, "2.1.0", {"fw.bin": b"later"}, hardware=[HW])
    tokens = {f"gw-{i:02d}": _device(env, f"gw-{i:02d}") for i in range(10)}

    def run(cid: str, release: int, hours: float, *results: str) -> None:
        for n, finished in enumerate(results):
            action = _offer(env, cid, release, hours + 2 * n)
            _report(env, cid, tokens[cid], action, hours + 2 * n + 1, "closed", finished)

    run("gw-00", fix.id, 0, "success")
    run("gw-01", fix.id, 1, "failure", "success")  # a retry that worked
    run("gw-02", fix.id, 2, "success", "success")  # offered again and finished again
    run("gw-03", fix.id, 3, "failure")
    run("gw-04", fix.id, 4, "success")
    run("gw-04", later.id, 8, "success")  # then the later release
    run("gw-05", later.id, 5, "success")
    _offer(env, "gw-06", fix.id, 6)  # still open
    run("gw-07", fix.id, 7, "success")
    _at(env, 20)
    device_service.remove_device(env.ctx, "gw-07", actor="t")  # removed: still counted

    expected = _from_events(env)  # every device is of HW, every release of PRODUCT
    with env.ctx.read_uow() as uow:
        runs = uow.vulnerabilities.fix_runs([HW], PRODUCT)
    with env.app.engines.write.connect() as conn:
        versions = dict(conn.execute(select(Device.id, Device.installed_version)).all())
    assert {(run.device_id, run.release_id): run.at for run in runs} == expected
    assert all(run.installed_version == versions[run.device_id] for run in runs)
    assert len(expected) == 7

    def reach(releases: list[int], skip: list[str], base: int, percent: int) -> FixReach:
        with env.ctx.read_uow() as uow:
            return uow.vulnerabilities.fix_reach(
                [HW], release_ids=releases, skip_versions=skip, share=FixShare(base, percent)
            )

    def reference(releases: list[int], skip: list[str], base: int, percent: int) -> FixReach:
        first: dict[int, datetime] = {}
        for (d, r), at in expected.items():
            if r in releases and versions[d] not in skip:
                first[d] = min(at, first.get(d, at))
        times = sorted(first.values())
        needed = FixShare(base, percent).needed(len(times))
        found = times[needed - 1] if 0 < needed <= len(times) else None
        return FixReach(len(times), found)

    for releases in ([fix.id], [later.id], [fix.id, later.id]):
        for skip in ([], ["2.1.0"], ["1.0.0"], ["2.0.0", "2.1.0"]):
            for base, percent in ((0, 95), (3, 95), (0, 50), (1, 1), (20, 95)):
                assert reach(releases, skip, base, percent) == reference(
                    releases, skip, base, percent
                ), (releases, skip, base, percent)
