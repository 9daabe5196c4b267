"""The compliance checklist from live data (both backends): each of the six items is
flipped between pass, warn and fail by changing the data behind it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from patchgate.adapters.db.models import Device
from patchgate.adapters.notice_channels import HttpWebhookSender
from patchgate.domain.notices import Routes
from patchgate.services import ddi, notifications
from patchgate.services import devices as device_service
from patchgate.services import policy as policy_service
from patchgate.services.campaigns import commands as campaign_commands
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.compliance import checklist, techfile
from patchgate.services.notice_ports import Channels
from patchgate.services.setup import demo_policy_source
from tests import vuln_views as vulns
from tests.conftest import Env
from tests.factories import make_release
from tests.integration.test_campaign_notices import Receiver

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def state(env: Env, item: str, product: str | None = None) -> str:
    report = checklist.view(env.ctx, base_url="https://pg.example", product=product).to_json()
    assert report["total"] == 6
    assert report["passed"] == sum(i["state"] == "pass" for i in report["items"])
    found = {i["id"]: i for i in report["items"]}[item]
    assert found["summary"] and all("label" in e and "url" in e for e in found["evidence"])
    return str(found["state"])


SOURCE = demo_policy_source() + "\n# in force from NOW\n"


@pytest.fixture
def env(demo_env: Env) -> Env:
    """The demo installation at NOW, with its policy applied then."""
    demo_env.ctx.clock = lambda: NOW
    policy_service.apply(demo_env.ctx, SOURCE, actor="t")
    return demo_env


def test_public_policy(env: Env) -> None:
    source = SOURCE
    policy_file = env.data_dir / "policy.toml"
    policy_file.write_text(source)
    assert state(env, "public_policy") == "pass"
    without = re.sub(r"\[disclosure\][^\[]*", "", source)
    policy_service.apply(env.ctx, without, actor="t")
    policy_file.write_text(without)
    assert state(env, "public_policy") == "warn"
    policy_file.write_text(without + "\n# edited, not applied\n")
    assert state(env, "public_policy") == "fail"


def _vuln(env: Env, vuln_id: str, aware: datetime, closed_at: datetime | None) -> None:
    vulns.add(env.ctx, vuln_id=vuln_id, title="t", cvss=CRITICAL, actor="t",
              aware_at=aware, products=["Demo Gateway"])  # fmt: skip
    if closed_at is not None:
        vulns.triage(env.ctx, vuln_id, status="closed", actor="t", at=closed_at)


def test_defined_cadence(env: Env) -> None:
    assert state(env, "defined_cadence") == "pass"  # nothing fell due
    start = NOW - timedelta(days=30)
    _vuln(env, "CVE-2026-0101", start, start + timedelta(hours=10))  # in time (72 h)
    assert state(env, "defined_cadence") == "pass"
    _vuln(env, "CVE-2026-0102", start, None)  # overdue: 1 of 2 in time
    assert state(env, "defined_cadence") == "warn"
    _vuln(env, "CVE-2026-0103", start, start + timedelta(days=20))  # missed: 1 of 3
    assert state(env, "defined_cadence") == "fail"


def test_phased_rollouts(env: Env) -> None:
    assert state(env, "phased_rollouts") == "fail"  # no campaign at all
    release = make_release(env, "1.0.2", {"fw.bin": b"x"}, hardware=["demo-gw-1"])
    campaign_commands.create(env.ctx, release.id, CreateOptions(), actor="t")  # the guide's plan
    assert state(env, "phased_rollouts") == "pass"
    campaign_commands.create(env.ctx, release.id, CreateOptions(stages="100"), actor="t")
    assert state(env, "phased_rollouts") == "warn"


def _device(env: Env, cid: str, attributes: dict[str, str]) -> ddi.Caller:
    """A device that reports ``attributes`` through DDI configData."""
    made = device_service.add_device(env.ctx, cid, hardware="demo-gw-1", actor="t")
    caller = ddi.authenticate(env.ctx, "DEFAULT", cid, f"TargetToken {made.token}")
    ddi.config_data(env.ctx, caller, attributes, "merge")
    return caller


def test_atomic_updates(env: Env) -> None:
    assert state(env, "atomic_updates") == "warn"  # no devices yet
    first = _device(env, "gw-1", {"version": "1.0.1"})
    assert state(env, "atomic_updates") == "fail"
    ddi.config_data(env.ctx, first, {"slot": "b", "agent": "patchgate-agent"}, "merge")
    _device(env, "gw-2", {"rauc_booted_slot": "A"})
    assert state(env, "atomic_updates") == "pass"
    _device(env, "gw-3", {"version": "1.0.1"})
    assert state(env, "atomic_updates") == "warn"


def test_the_fleet_read_the_dashboard_shares(env: Env) -> None:
    """Devices in service (with any hardware model or none; removed ones not), those seen
    in the last day, and per model of the policy's products those reporting A/B; a kept
    read stays as it was for ``max_age`` seconds, a fresh one counts again."""
    _device(env, "gw-1", {"slot": "a"})
    _device(env, "gw-2", {"version": "1.0.1"})
    device_service.add_device(env.ctx, "odd-1", actor="t")  # no hardware model yet
    device_service.add_device(env.ctx, "gone-1", hardware="demo-gw-1", actor="t")
    device_service.remove_device(env.ctx, "gone-1", actor="t")
    with env.app.engines.write.begin() as conn:
        seen = {"gw-1": NOW - timedelta(hours=23), "odd-1": NOW - timedelta(hours=1),
                "gw-2": NOW - timedelta(hours=25), "gone-1": NOW}  # fmt: skip
        for cid, at in seen.items():
            conn.execute(update(Device).where(Device.controller_id == cid).values(last_seen=at))
    found = checklist.fleet(env.ctx)
    assert (found.total, found.seen) == (3, 2)
    assert found.schemes == {"demo-gw-1": (2, 1)}
    kept = checklist.fleet(env.ctx, max_age=60)
    device_service.add_device(env.ctx, "gw-3", hardware="demo-gw-1", actor="t")
    assert checklist.fleet(env.ctx, max_age=60) == kept
    assert checklist.fleet(env.ctx).total == 4


def test_eol_communication_and_the_notices(env: Env, tmp_path: Path) -> None:
    assert state(env, "eol_communication") == "pass"  # ends December 2031, nothing due
    receiver = Receiver(failures=0)
    channels = Channels(
        routes=Routes(),
        mailer=None,
        webhook_urls=(receiver.url,),
        webhooks=HttpWebhookSender(timeout=5),
        base_url="",
    )
    try:
        env.ctx.clock = lambda: datetime(2031, 7, 2, tzinfo=UTC)  # past the 6-month mark
        assert state(env, "eol_communication") == "warn"
        assert notifications.run_once(env.ctx, channels).sent == 1
        assert notifications.run_once(env.ctx, channels).sent == 0  # once each
        assert [b["notice"] for b in receiver.bodies] == ["6 months"]
        assert receiver.bodies[0]["product"] == "Demo Gateway"
        assert receiver.bodies[0]["event"] == "support.ending"
        assert state(env, "eol_communication") == "pass"
        env.ctx.clock = lambda: datetime(2031, 12, 31, 9, tzinfo=UTC)
        notifications.run_once(env.ctx, channels)
        assert [b["event"] for b in receiver.bodies] == ["support.ending", "support.ended"]
        env.ctx.clock = lambda: datetime(2032, 1, 5, tzinfo=UTC)  # past the end, on sale
        assert state(env, "eol_communication") == "fail"
    finally:
        receiver.httpd.shutdown()


def test_process_documentation(env: Env, tmp_path: Path) -> None:
    assert state(env, "process_documentation") == "fail"
    techfile.export(env.ctx, str(tmp_path / "tf"), base_url="https://pg.example", actor="t")
    assert state(env, "process_documentation") == "pass"
    env.ctx.clock = lambda: NOW + timedelta(days=91)
    assert state(env, "process_documentation") == "warn"
    env.ctx.clock = lambda: NOW + timedelta(days=2)
    techfile.export(env.ctx, str(tmp_path / "tf2"), base_url="https://pg.example", actor="t")
    assert state(env, "process_documentation") == "pass"
    env.ctx.clock = lambda: NOW + timedelta(days=3)
    policy_service.apply(env.ctx, SOURCE + "\n# v2\n", actor="t")
    assert state(env, "process_documentation") == "warn"


def test_the_cli_prints_the_contract_shape(env: Env) -> None:
    out: dict[str, Any] = json.loads(env.cli("report", "checklist", "--json").stdout)
    assert out["total"] == 6 and [i["id"] for i in out["items"]] == list(checklist.rules.ITEMS)
    assert {i["state"] for i in out["items"]} <= {"pass", "warn", "fail"}
    for bad in ("../x", "Nope"):
        r = env.cli("report", "checklist", "--product", bad)
        assert r.code == 2 and r.stderr.startswith("error:")
