"""A campaign's stored figures (docs/campaigns.md, "Figures"), on SQLite and PostgreSQL:
kept current from what changed, they equal the figures built from the whole fleet at
every step — offers, feedback, health reports, devices registered after the start,
timeouts, a halt — and neither a gate tick nor ``campaign status`` scans the fleet."""

from __future__ import annotations

import pytest

from patchgate.adapters.db.campaign_repos import SqlCampaignRepository
from patchgate.services import actions, ddi
from patchgate.services.campaigns import commands, views
from patchgate.services.campaigns.figures import Figures, build, figures
from patchgate.services.campaigns.plans import get_campaign, plan_of
from tests.campaign_support import Clock, Fleet, release, started
from tests.conftest import Env


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fleet scans (``scan_devices`` batches) made while it is active."""
    made: list[int] = []
    original = SqlCampaignRepository.scan_devices

    def counted(self: SqlCampaignRepository, **kwargs: object) -> object:
        made.append(1)
        return original(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlCampaignRepository, "scan_devices", counted)
    return made


def _both(env: Env, campaign: int) -> tuple[Figures, Figures]:
    """(the stored figures caught up, the figures built from the whole fleet)."""
    ctx = env.ctx
    with ctx.read_uow() as uow:
        rec = get_campaign(uow, campaign)
        plan = plan_of(uow, rec)
        return figures(ctx, uow, rec, plan, ctx.clock()), build(
            ctx, uow, rec, plan, ctx.clock()
        ).figures


def _same(env: Env, campaign: int) -> Figures:
    kept, full = _both(env, campaign)
    assert kept == full
    return kept


def test_kept_figures_equal_the_full_build_at_every_step(env: Env) -> None:
    clock = Clock(env)
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    qa = [f"qa-{i}" for i in range(6)]
    rest = [f"dev-{i}" for i in range(30)]
    for cid in qa:
        fleet.add(cid, "1.0.0", "qa")
    for cid in rest:
        fleet.add(cid, "1.0.0")
    campaign = started(
        env,
        made,
        stages="qa,50,100",
        soak="1h",
        min_finished=1,
    )
    assert _same(env, campaign).stages[0].eligible == 6
    actions = {cid: fleet.poll(cid).open_action_id or 0 for cid in qa}
    kept = _same(env, campaign)
    assert kept.stages[0].offered == 6
    commands.tick(env.ctx)
    fleet.feedback("qa-0", actions["qa-0"], "download")
    fleet.feedback("qa-1", actions["qa-1"], "proceeding")
    fleet.feedback("qa-2", actions["qa-2"], "closed", "success")
    fleet.feedback("qa-3", actions["qa-3"], "closed", "failure")
    kept = _same(env, campaign)
    assert (kept.stages[0].downloading, kept.stages[0].installing) == (1, 1)
    commands.tick(env.ctx)
    # Health: the updated device confirms its boot; a baseline device reports crashes.
    ddi.report_health(
        env.ctx,
        fleet.caller("qa-2"),
        ddi.Health(running_version="2.0.0", uptime_s=7200, crash_count=0),
    )
    ddi.report_health(
        env.ctx,
        fleet.caller("dev-0"),
        ddi.Health(running_version="1.0.0", uptime_s=3600, crash_count=2),
    )
    kept = _same(env, campaign)
    assert kept.baseline.crashes == 2 and kept.updated.exposure_hours == 2.0
    # A device registered after the start joins the eligible count of its stage.
    fleet.add("qa-late", "1.0.0", "qa")
    assert _same(env, campaign).stages[0].eligible == 7
    commands.tick(env.ctx)
    # Timeouts apply at read time from the stored due times (rule 2).
    clock.advance(hours=25)
    kept = _same(env, campaign)
    assert kept.stages[0].timed_out >= 2
    commands.tick(env.ctx)  # the failures and timeouts breach the gate: it halts
    _same(env, campaign)
    assert views.status(env.ctx, campaign).state == "halted"
    commands.tick(env.ctx)
    kept = _same(env, campaign)
    shown = views.status(env.ctx, campaign)
    assert shown.counts == kept.total and shown.state == "halted"


def test_neither_a_tick_nor_status_nor_a_halt_scans_the_fleet(env: Env, scans: list[int]) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    for i in range(8):
        fleet.add(f"qa-{i}", "1.0.0", "qa")
    for i in range(20):
        fleet.add(f"dev-{i}", "1.0.0")
    campaign = started(env, made, stages="qa,50,100", soak="1h")
    for i in range(8):
        fleet.poll(f"qa-{i}")
    scans.clear()
    for command in (
        lambda: commands.tick(env.ctx),
        lambda: views.status(env.ctx, campaign),
        lambda: commands.pause(env.ctx, campaign, actor="test"),
        lambda: commands.resume(env.ctx, campaign, actor="test"),
        lambda: env.cli("campaign", "status", str(campaign), "--json"),
        lambda: commands.halt(env.ctx, campaign, reason="test", actor="test"),
        lambda: env.cli("campaign", "status", str(campaign)),
        lambda: commands.tick(env.ctx),
    ):
        command()
        assert scans == [], command


def test_a_campaign_reads_its_own_events_after_its_mark_not_the_fleets(env: Env) -> None:
    """Events of other actions (a manual offer to a device the campaign does not target)
    that come after a campaign's mark are not read for it, and its figures still equal
    the full build as its own devices report."""
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    for i in range(4):
        fleet.add(f"qa-{i}", "1.0.0", "qa")
    fleet.add("lab-0", "1.0.0", "lab")
    campaign = started(env, made, stages="qa", soak="1h")
    offered = {f"qa-{i}": fleet.poll(f"qa-{i}").open_action_id or 0 for i in range(4)}
    fleet.feedback("qa-0", offered["qa-0"], "closed", "success")
    commands.tick(env.ctx)  # the figures stored, their marks moved
    actions.assign(env.ctx, "lab-0", made.id, actor="test")
    other = actions.device_actions(env.ctx, "lab-0")[0].id
    fleet.feedback("lab-0", other, "proceeding")
    fleet.feedback("lab-0", other, "closed", "success")
    fleet.feedback("qa-1", offered["qa-1"], "closed", "failure")
    with env.ctx.read_uow() as uow:
        stored = uow.campaigns.stored_figures(campaign)
        assert stored is not None
        read = uow.campaigns.events_after(campaign, stored.marks.event, limit=100)
    assert read and {e.device_id for e in read} == {fleet.caller("qa-1").device_id}
    kept = _same(env, campaign)
    assert (kept.stages[0].succeeded, kept.stages[0].failed + kept.stages[0].retrying) == (1, 1)
    commands.tick(env.ctx)
    _same(env, campaign)
