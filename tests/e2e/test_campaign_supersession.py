"""Supersession and version-range selectors through real DDI polls against a real server,
on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx

from patchgate.services import audit
from tests.conftest import Env
from tests.e2e.test_campaigns import Device, add_device, api, create
from tests.factories import make_release
from tests.support import LiveServer


def _start(env: Env, campaign_id: int) -> None:
    started = env.cli("campaign", "start", str(campaign_id), "--json")
    assert started.code == 0, started.stderr
    assert started.json()["state"] == "running"


def _offered(device: Device) -> tuple[int, dict[str, Any]] | None:
    """The offered deployment's action id and body, fetched as a client does."""
    link = device.poll().get("deploymentBase")
    if link is None:
        return None
    body = httpx.get(link["href"], headers=device._headers(), timeout=30).json()
    return int(body["id"]), dict(body)


def _confirm_cancel(device: Device, action: int) -> None:
    answer = httpx.post(
        f"{device.base}/cancelAction/{action}/feedback",
        json={
            "id": str(action),
            "status": {"execution": "closed", "result": {"finished": "success"}},
        },
        headers=device._headers(),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_a_newer_security_release_supersedes_a_pending_action_but_never_one_installing(
    env: Env, server: LiveServer
) -> None:
    older = make_release(env, "1.0.1", {"fw.bin": b"older fix"}, security_version=1)
    newer = make_release(env, "1.0.2", {"fw.bin": b"newer fix"}, security_version=2)
    pending = add_device(env, server, "dev-pending")
    installing = add_device(env, server, "dev-installing")
    campaign_a = int(create(env, older, "--stages", "100")["id"])
    _start(env, campaign_a)
    offered_a = _offered(pending)
    installing_a = _offered(installing)
    assert offered_a is not None and installing_a is not None
    action_a, first = offered_a
    assert "1.0.1" in str(first)
    installing.feedback(installing_a[0], "proceeding")

    campaign_b = int(create(env, newer, "--stages", "100")["id"])
    _start(env, campaign_b)

    # The pending action is cancelled through DDI cancelAction, and nothing else offered.
    links = pending.poll()
    assert "deploymentBase" not in links
    assert links["cancelAction"]["href"].endswith(f"/cancelAction/{action_a}")
    _confirm_cancel(pending, action_a)
    offered_b = _offered(pending)
    assert offered_b is not None
    action_b, body = offered_b
    assert action_b != action_a and "1.0.2" in str(body) and "1.0.1" not in str(body)

    # The action already installing goes on: no cancelAction, still its own deployment.
    links = installing.poll()
    assert "cancelAction" not in links
    still = _offered(installing)
    assert still is not None and still[0] == installing_a[0]

    # Why, in the audit log for the campaign and in the action's history.
    found = audit.entries(
        env.ctx, subject=f"campaign:{campaign_b}", action_prefix="campaign.supersede"
    )
    assert [e.details["action_id"] for e in found] == [action_a]
    assert found[0].details["superseded_campaign"] == campaign_a
    assert "superseded by campaign" in found[0].details["reason"]
    cancels = audit.entries(env.ctx, subject=f"action:{action_a}", action_prefix="action.cancel")
    assert f"superseded by campaign {campaign_b}" in cancels[0].details["reason"]
    with api(server, env) as client:
        status = client.get(f"/api/v1/campaigns/{campaign_a}").json()
    assert status["counts"]["eligible"] == 2


def test_a_campaign_supersedes_nothing_for_a_lower_security_version_or_a_feature_release(
    env: Env, server: LiveServer
) -> None:
    fix = make_release(env, "1.0.2", {"fw.bin": b"fix"}, security_version=2)
    feature = make_release(
        env, "1.1.0", {"fw.bin": b"feature"}, security_version=3, update_type="feature"
    )
    stale = make_release(env, "1.0.1", {"fw.bin": b"stale"}, security_version=1)
    device = add_device(env, server, "dev-1")
    _start(env, int(create(env, fix, "--stages", "100")["id"]))
    offered = _offered(device)
    assert offered is not None
    _start(env, int(create(env, feature, "--stages", "100")["id"]))
    _start(env, int(create(env, stale, "--stages", "100")["id"]))
    assert env.cli("campaign", "tick", "--json").code == 0
    links = device.poll()
    assert "cancelAction" not in links
    assert _offered(device) == offered


def test_a_version_range_selector_offers_only_to_devices_on_versions_inside_it(
    env: Env, server: LiveServer
) -> None:
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, security_version=2)
    inside = add_device(env, server, "dev-old", version="1.0.0")
    outside = add_device(env, server, "dev-newer", version="1.0.1")
    made = create(env, release, "--stages", "100", "--versions", "<1.0.1")
    assert made["selector"]["versions"] == "<1.0.1"
    _start(env, int(made["id"]))
    shown = env.cli("campaign", "status", str(made["id"]), "--json")
    assert shown.code == 0 and shown.json()["selector"]["versions"] == "<1.0.1"
    assert shown.json()["counts"]["eligible"] == 1
    assert _offered(inside) is not None
    assert "deploymentBase" not in outside.poll()


def test_a_bad_version_range_is_refused_naming_the_problem_on_the_cli_and_the_api(
    env: Env, server: LiveServer
) -> None:
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, security_version=2)
    refused = env.cli("campaign", "create", str(release.id), "--versions", "<<banana", "--json")
    assert refused.code == 2
    assert "target versions" in refused.stderr and "banana" in refused.stderr
    assert "Traceback" not in refused.stderr
    with api(server, env) as client:
        answer = client.post(
            "/api/v1/campaigns", json={"release_id": release.id, "versions": ">=two"}
        )
        assert answer.status_code == 422, answer.text
        assert "target versions" in answer.text
        made = client.post(
            "/api/v1/campaigns", json={"release_id": release.id, "versions": ">=1.0, <2.0"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["selector"]["versions"] == ">=1.0, <2.0"
