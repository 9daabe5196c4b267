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
