"""When 95 % of the affected devices ran the fix, from real actions and real DDI feedback
(SQLite and PostgreSQL): ``fix_95pct_at`` in ``vuln show`` and time to deploy in
``report sla``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from patchgate.services import actions, ddi
from patchgate.services import devices as device_service
from tests import vuln_views as vulns
from tests.conftest import Env
from tests.factories import make_release

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
HIGH = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"  # 8.8
PRODUCT = "Demo Gateway"
HW = "demo-gw-1"
VULN = "CVE-2026-9595"


def at(env: Env, when: datetime) -> None:
    env.ctx.clock = lambda: when


def succeed(env: Env, cid: str, token: str, when: datetime, finished: str = "success") -> None:
    """The device reports its open action closed with ``finished`` (success) at ``when``."""
    at(env, when)
    action = actions.device_actions(env.ctx, cid)[0]
    caller = ddi.authenticate(env.ctx, "DEFAULT", cid, f"TargetToken {token}")
    ddi.deployment_feedback(
        env.ctx,
        caller,
        action.id,
        ddi.Feedback(ddi.rules.Execution("closed"), ddi.rules.Finished(finished)),
    )


def fleet_with_fix(env: Env, size: int) -> dict[str, str]:
    at(env, T0)
    vulns.add(
        env.ctx,
        vuln_id=VULN,
        title="heap overflow in the update agent",
        cvss=HIGH,
        actor="test",
        aware_at=T0,
        products=[PRODUCT],
        affected=["<2.0.0"],
    )
    fix = make_release(env, "2.0.0", {"fw.bin": b"fixed"}, hardware=[HW], fixes=[VULN])
    tokens: dict[str, str] = {}
    for i in range(size):
        cid = f"gw-{i:02d}"
        made = device_service.add_device(env.ctx, cid, hardware=HW, version="1.0.0", actor="test")
        tokens[cid] = made.token
        actions.assign(env.ctx, cid, fix.id, actor="test")
    return tokens


def test_the_95_percent_moment_is_the_19th_of_20_successes_and_sets_time_to_deploy(
    demo_env: Env,
) -> None:
    env = demo_env
    tokens = fleet_with_fix(env, 20)
    cids = sorted(tokens)
    for i, cid in enumerate(cids[:18]):
        succeed(env, cid, tokens[cid], T0 + timedelta(hours=i + 1))
    shown = vulns.show(env.ctx, VULN)
    product = shown["products"][0]
    assert product["fix_95pct_at"] is None and shown["fix_95pct_at"] is None
    assert product["time_to_95pct_hours"] is None
    assert (product["fix_affected_devices"], product["fix_running_devices"]) == (20, 18)
    assert product["fix_running_share"] == 0.9
    assert product["exposed_devices"] == 2
    # The campaign's last stage (here: the transition by hand) does not stand in for the
    # 95 % moment once devices report runs of the fix.
    vulns.triage(env.ctx, VULN, status="fix_deployed", actor="test", at=T0 + timedelta(hours=10))
    report = vulns.sla_report(env.ctx)["severities"]["high"]
    assert report["time_to_deploy_hours"]["n"] == 0

    succeed(env, cids[18], tokens[cids[18]], T0 + timedelta(hours=30))
    shown = vulns.show(env.ctx, VULN)
    product = shown["products"][0]
    assert product["fix_95pct_at"] == "2026-03-05T18:00:00Z"
    assert product["time_to_95pct_hours"] == 30
    assert shown["fix_95pct_at"] == "2026-03-05T18:00:00Z"
    assert shown["time_to_95pct_hours"] == 30
    assert product["fix_running_share"] == 0.95

    # The 20th success later does not move the moment 95 % was reached.
    succeed(env, cids[19], tokens[cids[19]], T0 + timedelta(hours=50))
    cli = env.cli("vuln", "show", VULN, "--json")
    assert cli.code == 0, cli.stderr
    assert json.loads(cli.stdout)["products"][0]["fix_95pct_at"] == "2026-03-05T18:00:00Z"
    sla = env.cli("report", "sla", "--json")
    assert sla.code == 0, sla.stderr
    deploy = json.loads(sla.stdout)["severities"]["high"]["time_to_deploy_hours"]
    assert deploy == {"median": 30, "p90": 30, "n": 1}


def test_a_failed_install_does_not_count_as_running_the_fix(demo_env: Env) -> None:
    env = demo_env
    tokens = fleet_with_fix(env, 2)
    first, second = sorted(tokens)
    succeed(env, first, tokens[first], T0 + timedelta(hours=1))
    succeed(env, second, tokens[second], T0 + timedelta(hours=2), finished="failure")
    product = vulns.show(env.ctx, VULN)["products"][0]
    assert (product["fix_affected_devices"], product["fix_running_devices"]) == (2, 1)
    assert product["fix_95pct_at"] is None
