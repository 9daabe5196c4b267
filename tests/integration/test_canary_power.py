"""``campaign create`` on a small fleet says when its canary is too small for the gates to
see a regression, and suggests a longer soak or a larger canary (docs/gates.md)."""

from __future__ import annotations

from patchgate.entrypoints.presenters import campaigns as present
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands as campaign_commands
from patchgate.services.campaigns import views as campaign_views
from patchgate.services.campaigns.options import CreateOptions
from tests.conftest import Env
from tests.factories import make_release

HW = "demo-gw-1"


def test_a_small_fleet_is_warned_at_creation(env: Env) -> None:
    release = make_release(env, "2.0.0", {"fw.bin": b"two"}, hardware=[HW])
    for index in range(300):
        groups = ("canary-optin",) if index % 10 == 0 else ()
        device_service.add_device(
            env.ctx, f"d-{index:04d}", groups=groups, hardware=HW, version="1.0.0", actor="t"
        )
    campaign = campaign_commands.create(
        env.ctx, release.id, CreateOptions(stages="canary:5,50,100"), actor="test"
    )
    view = campaign_views.status(env.ctx, campaign)
    (advice,) = [w for w in view.warnings if "holds" in w]
    assert advice.startswith("stage canary holds 15 devices")
    assert "longer soak or a larger stage" in advice
    assert f"  warning: {advice}" in present.status_text(view)
    assert advice in present.status_json(view)["warnings"]

    # A canary large enough for the failure-rate gate and a soak long enough for the
    # crash-rate test on this fleet: no advice.
    quiet = campaign_commands.create(
        env.ctx, release.id, CreateOptions(stages="canary:50,100", soak="60d"), actor="test"
    )
    assert not [w for w in campaign_views.status(env.ctx, quiet).warnings if "holds" in w]


def test_campaign_create_plans_for_the_offline_share_it_is_given(sqlite_env: Env) -> None:
    env = sqlite_env
    for index in range(200):
        device_service.add_device(env.ctx, f"d-{index:04d}", hardware=HW, actor="t")
    vuln = env.cli(
        "vuln",
        "add",
        "CVE-2026-0002",
        "--title",
        "remote code execution",
        "--cvss",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "--product",
        "Demo Gateway",
        "--json",
    )
    assert vuln.code == 0, vuln.stderr
    release = make_release(
        env, "2.0.0", {"fw.bin": b"x"}, security_version=2, fixes=["CVE-2026-0002"]
    )
    plans = {}
    for share in ("0", "0.2"):
        made = env.cli(
            "campaign",
            "create",
            str(release.id),
            "--stages",
            "canary:10,50,100",
            "--soak",
            "30h",
            "--offline-share",
            share,
            "--json",
        )
        assert made.code == 0, made.stderr
        plans[share] = made.json()["schedule"]
    blind, aware = plans["0"], plans["0.2"]
    assert blind["expected_patched_at_deadline"] == 1.0
    # With a fifth of the fleet offline the last stage comes earlier, and the plan says
    # what share it expects at the deadline.
    assert aware["last_stage_reached_at"] < blind["last_stage_reached_at"]
    assert 0.9 < aware["expected_patched_at_deadline"] < 1.0
    assert any("expected patched at the deadline" in w for w in aware["warnings"])
    bad = env.cli("campaign", "create", str(release.id), "--offline-share", "1.5")
    assert bad.code == 2 and "--offline-share" in bad.stderr
