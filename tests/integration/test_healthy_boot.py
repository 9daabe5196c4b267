"""Success counts only after a healthy boot, for every kind of DDI client: through the
real poll path, DDI feedback and the campaign's counts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from patchgate.domain.actions import ClientKind, Execution, Finished
from patchgate.services import ddi
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands as campaign_commands
from patchgate.services.campaigns import views as campaign_views
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.campaigns.poll import PollEngine
from tests.conftest import Env
from tests.factories import make_release

HW = "demo-gw-1"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


class Fleet:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.poller = ddi.Poller(env.ctx)
        engine = PollEngine(env.ctx)
        self.poller.plug(engine.decide, engine.load, engine.create)
        self.callers: dict[str, ddi.Caller] = {}

    def add(self, cid: str, *groups: str) -> None:
        made = device_service.add_device(
            self.env.ctx, cid, groups=groups, hardware=HW, version="1.0.0", actor="test"
        )
        self.callers[cid] = ddi.authenticate(
            self.env.ctx, "DEFAULT", cid, f"TargetToken {made.token}"
        )

    def take_offer(self, cid: str) -> int:
        state = self.poller.poll(self.callers[cid])
        assert state.open_action_id is not None
        return state.open_action_id

    def report(self, cid: str, action: int, execution: str, finished: str = "none") -> None:
        feedback = ddi.Feedback(Execution(execution), Finished(finished))
        ddi.deployment_feedback(self.env.ctx, self.callers[cid], action, feedback)


def at(env: Env, when: datetime) -> None:
    env.ctx.clock = lambda: when


def counts(env: Env, campaign: int) -> dict[str, int]:
    return campaign_views.status(env.ctx, campaign).counts.to_json()


def test_success_counts_only_once_the_device_is_seen_again_on_the_new_version(
    env: Env,
) -> None:
    at(env, T0)
    env.ctx.client_kinds = {"rauc": ClientKind.BEFORE_BOOT, "swu": ClientKind.AFTER_BOOT}
    release = make_release(env, "2.0.0", {"fw.bin": b"two"}, hardware=[HW])
    fleet = Fleet(env)
    for cid, group in (("rauc-1", "rauc"), ("swu-1", "swu"), ("fast-1", "lab"), ("late-1", "rauc")):
        fleet.add(cid, group)
    made = campaign_commands.create(env.ctx, release.id, CreateOptions(stages="100"), actor="test")
    campaign = made
    campaign_commands.start(env.ctx, campaign, actor="test")
    offers = {cid: fleet.take_offer(cid) for cid in fleet.callers}

    # swu-1 (configured after-boot) reports success after its reboot: confirmed at once.
    at(env, T0 + timedelta(minutes=5))
    fleet.report("swu-1", offers["swu-1"], "proceeding")
    at(env, T0 + timedelta(minutes=7))
    fleet.report("swu-1", offers["swu-1"], "closed", "success")
    # rauc-1 and late-1 (configured before-boot) report success, then reboot.
    fleet.report("rauc-1", offers["rauc-1"], "closed", "success")
    fleet.report("late-1", offers["late-1"], "closed", "success")
    # fast-1 has no configured kind: success two seconds after its install progress is
    # detected as sent before the reboot.
    fleet.report("fast-1", offers["fast-1"], "proceeding")
    at(env, T0 + timedelta(minutes=7, seconds=2))
    fleet.report("fast-1", offers["fast-1"], "closed", "success")
    now = counts(env, campaign)
    assert (now["succeeded"], now["confirming"]) == (1, 3)

    # Back after the reboot, on the new version: configData, installedBase, health report.
    at(env, T0 + timedelta(minutes=12))
    ddi.config_data(env.ctx, fleet.callers["rauc-1"], {"version": "2.0.0"}, "merge")
    answer = ddi.installed_version(env.ctx, fleet.callers["fast-1"], None, "2.0.0")
    assert answer.created is False and answer.action.id == offers["fast-1"]
    now = counts(env, campaign)
    assert (now["succeeded"], now["confirming"]) == (3, 1)

    # late-1 never comes back within the confirmation window: timed out, not a success.
    at(env, T0 + timedelta(hours=3))
    now = counts(env, campaign)
    assert (now["succeeded"], now["confirming"], now["timed_out"]) == (3, 0, 1)


def test_a_device_that_comes_back_on_the_old_version_is_reverted(env: Env) -> None:
    at(env, T0)
    env.ctx.client_kinds = {"rauc": ClientKind.BEFORE_BOOT}
    release = make_release(env, "2.0.0", {"fw.bin": b"two"}, hardware=[HW])
    fleet = Fleet(env)
    fleet.add("rauc-1", "rauc")
    made = campaign_commands.create(env.ctx, release.id, CreateOptions(stages="100"), actor="test")
    campaign = made
    campaign_commands.start(env.ctx, campaign, actor="test")
    action = fleet.take_offer("rauc-1")
    fleet.report("rauc-1", action, "closed", "success")
    at(env, T0 + timedelta(minutes=10))
    ddi.report_health(env.ctx, fleet.callers["rauc-1"], ddi.Health(running_version="1.0.0"))
    now = counts(env, campaign)
    assert (now["succeeded"], now["reverted"]) == (0, 1)
