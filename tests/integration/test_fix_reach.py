"""The fix rollout counted in the database (``facts.rollouts`` through ``fix_reach``) says
what the rule over every run says (``facts.reach`` over ``fix_runs``): fixing and later
unaffected releases count, an older affected one does not, a failure does not, a device
back on an affected version does not; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from patchgate.adapters.db.models import Device
from patchgate.domain import versions
from patchgate.services import actions, ddi
from patchgate.services import devices as device_service
from patchgate.services.policy import in_force
from patchgate.services.vulnerabilities import commands
from patchgate.services.vulnerabilities import facts as fx
from patchgate.services.vulnerability_ports import FixReach, FixShare
from tests.conftest import Env
from tests.factories import make_release

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
HIGH = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"
PRODUCT = "Demo Gateway"
HW = "demo-gw-1"
VULN = "CVE-2026-7070"


def _run(env: Env, cid: str, token: str, release: int, hours: int, finished: str) -> None:
    env.ctx.clock = lambda: T0 + timedelta(hours=hours)
    actions.assign(env.ctx, cid, release, actor="t")
    action = actions.device_actions(env.ctx, cid)[0]
    caller = ddi.authenticate(env.ctx, "DEFAULT", cid, f"TargetToken {token}")
    ddi.deployment_feedback(
        env.ctx, caller, action.id,
        ddi.Feedback(ddi.rules.Execution("closed"), ddi.rules.Finished(finished)),
    )  # fmt: skip


def _both(env: Env) -> tuple[fx.Rollout, fx.Rollout]:
    """(counted in the database, the rule over every run)."""
    policy = in_force(env.ctx).policy
    with env.ctx.read_uow() as uow:
        record = uow.vulnerabilities.get(VULN)
        assert record is not None
        facts = fx.gather(uow, record, policy, env.ctx.clock())
        analysis = record.products[0]
        fixes = fx.fixing(analysis, facts.releases)
        rng = fx.affected_range(analysis, facts.releases)
        assert rng is not None
        first_fix = min((r.version for r in fixes), key=versions.version_key)
        runs = uow.vulnerabilities.fix_runs([HW], PRODUCT)
        exposed = facts.exposure[PRODUCT]
        assert exposed is not None
        rule = fx.reach(exposed, runs, {r.release_id for r in fixes}, rng, first_fix)
    return facts.rollout[PRODUCT], rule


def test_the_database_count_agrees_with_the_rule(demo_env: Env) -> None:
    env = demo_env
    env.ctx.clock = lambda: T0
    commands.add(env.ctx, vuln_id=VULN, title="t", cvss=HIGH, actor="t", aware_at=T0,
                 products=[PRODUCT], affected=["<2.0.0"])  # fmt: skip
    older = make_release(env, "1.5.0", {"fw.bin": b"old"}, hardware=[HW])
    fix = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW], fixes=[VULN])
    later = make_release(env, "2.1.0", {"fw.bin": b"later"}, hardware=[HW])
    tokens = {
        f"gw-{i:02d}": device_service.add_device(
            env.ctx, f"gw-{i:02d}", hardware=HW, version="1.0.0", actor="t"
        ).token
        for i in range(12)
    }
    cids = sorted(tokens)
    for i, cid in enumerate(cids[:5]):  # the fix
        _run(env, cid, tokens[cid], fix.id, i + 1, "success")
    for i, cid in enumerate(cids[5:8]):  # a later release that is not affected
        _run(env, cid, tokens[cid], later.id, 10 + i, "success")
    _run(env, cids[8], tokens[cids[8]], older.id, 20, "success")  # still affected
    _run(env, cids[9], tokens[cids[9]], fix.id, 21, "failure")
    _run(env, cids[10], tokens[cids[10]], fix.id, 22, "success")
    with env.app.engines.write.begin() as conn:  # then back on an affected version
        conn.execute(
            update(Device).where(Device.controller_id == cids[10]).values(installed_version="1.0.0")
        )
    counted, rule = _both(env)
    assert counted == rule
    assert (counted.affected, counted.ran_fix, counted.reached_at) == (12, 8, None)

    for i, cid in enumerate([cids[8], cids[9], cids[10], cids[11]]):
        _run(env, cid, tokens[cid], fix.id, 30 + i, "success")
    counted, rule = _both(env)
    assert counted == rule
    assert (counted.affected, counted.ran_fix) == (12, 12)
    assert counted.reached_at == T0 + timedelta(hours=33)  # the 12th of 12 (95 % of 12)


def test_the_nth_device_that_makes_the_share(demo_env: Env) -> None:
    """``fix_reach`` finds the n-th earliest first finish for any share, not only the last
    device; each device counts once, at its earliest finish; nothing while fewer devices
    ran the fix than the share needs."""
    env = demo_env
    fix = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW])
    other = make_release(env, "2.1.0", {"fw.bin": b"other"}, hardware=[HW])
    tokens = {}
    for i in range(6):
        cid = f"gw-{i:02d}"
        tokens[cid] = device_service.add_device(
            env.ctx, cid, hardware=HW, version="1.0.0", actor="t"
        ).token
        _run(env, cid, tokens[cid], fix.id, 6 - i, "success")  # gw-00 at hour 6 … gw-05 at 1
    _run(env, "gw-00", tokens["gw-00"], other.id, 0, "success")  # then 2.1.0, timed hour 0

    def reach(base: int, percent: int, releases: list[int], skip: list[str]) -> FixReach:
        with env.ctx.read_uow() as uow:
            return uow.vulnerabilities.fix_reach(
                [HW], release_ids=releases, skip_versions=skip, share=FixShare(base, percent)
            )

    at = [T0 + timedelta(hours=h) for h in range(7)]
    assert reach(2, 50, [fix.id], []) == FixReach(6, at[4])  # 50 % of 2 + 6: the 4th
    assert reach(0, 95, [fix.id], []) == FixReach(6, at[6])  # 95 % of 6: all six
    assert reach(0, 1, [fix.id], []) == FixReach(6, at[1])  # the first
    assert reach(10, 95, [fix.id], []) == FixReach(6, None)  # 16 needed, 6 ran it
    assert reach(0, 50, [fix.id], ["2.1.0"]) == FixReach(5, at[3])  # gw-00 left out
    assert reach(0, 95, [fix.id, other.id], []) == FixReach(6, at[5])  # gw-00 at hour 0
    assert reach(0, 95, [], []) == FixReach(0, None)
    assert reach(0, 95, [fix.id], ["2.0.0", "2.1.0"]) == FixReach(0, None)
