"""A device's end of life: removal (decommissioning) and token rotation, through the CLI
and through the REST API of a real server, with the device polling over real DDI."""

from __future__ import annotations

from typing import Any

import httpx

from patchgate.services import devices as device_service
from patchgate.services import policy as policy_service
from patchgate.services.setup import demo_policy_source
from tests.conftest import Env
from tests.factories import make_release
from tests.support import LiveServer

HW = "demo-gw-1"


def _ddi(server: LiveServer, cid: str, token: str, path: str = "") -> httpx.Response:
    return httpx.get(
        f"{server.url}/DEFAULT/controller/v1/{cid}{path}",
        headers={"Authorization": f"TargetToken {token}", "Accept": "application/hal+json"},
        timeout=30,
    )


def _feedback(server: LiveServer, cid: str, token: str, action: int) -> httpx.Response:
    status = {"execution": "proceeding", "result": {"finished": "none"}}
    return httpx.post(
        f"{server.url}/DEFAULT/controller/v1/{cid}/deploymentBase/{action}/feedback",
        json={"id": str(action), "status": status},
        headers={"Authorization": f"TargetToken {token}"},
        timeout=30,
    )


def _stored(env: Env, cid: str) -> Any:
    with env.ctx.read_uow() as uow:
        return uow.devices.get("DEFAULT", cid)


def test_a_removed_device_that_polls_gets_401_and_changes_nothing(
    env: Env, server: LiveServer
) -> None:
    release = make_release(env, "2.0.0", {"fw.bin": b"new image"}, hardware=[HW])
    with server.client(env.admin_token) as client:
        made = client.post("/api/v1/devices", json={"id": "gw-1", "hardware": HW})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        client.post("/api/v1/devices", json={"id": "gw-2", "hardware": HW})
        offered = client.post("/api/v1/devices/gw-1/actions", json={"release_id": release.id})
        action = offered.json()["id"]
        # The device takes the offer and starts downloading.
        assert "deploymentBase" in _ddi(server, "gw-1", token).json()["_links"]
        assert _feedback(server, "gw-1", token, action).status_code == 200

        removed = client.delete("/api/v1/devices/gw-1", params={"reason": "returned (RMA)"})
        assert removed.status_code == 200, removed.text
        body = removed.json()
        assert body["id"] == "gw-1" and body["removed_at"] is not None
        assert body["cancelled_actions"] == [action] and body["open_action"] is None

        # The token stops at once: poll, deployment, feedback are all refused.
        assert _ddi(server, "gw-1", token).status_code == 401
        assert _ddi(server, "gw-1", token, f"/deploymentBase/{action}").status_code == 401
        assert _feedback(server, "gw-1", token, action).status_code == 401
        # No contact is recorded after the removal.
        after = _stored(env, "gw-1")
        assert after.last_seen is None or after.last_seen <= after.removed_at
        assert after.open_action_id is None

        # Its history stays: the action (closed as cancelled) and the audit entry.
        detail = client.get("/api/v1/devices/gw-1").json()
        assert detail["removed_at"] == body["removed_at"]
        assert [(a["id"], a["status"]) for a in detail["actions"]] == [(action, "canceled")]
        events = client.get(f"/api/v1/actions/{action}").json()["events"]
        assert "device removed" in events[-1]["details"][0]
        # It leaves the fleet: not listed, not offered anything, not removable twice.
        listed = client.get("/api/v1/devices").json()["devices"]
        assert [d["id"] for d in listed] == ["gw-2"]
        again = client.post("/api/v1/devices/gw-1/actions", json={"release_id": release.id})
        assert again.status_code == 409 and "removed" in again.json()["message"]
        twice = client.delete("/api/v1/devices/gw-1")
        assert twice.status_code == 409 and "removed" in twice.json()["message"]
        assert client.delete("/api/v1/devices/nope").status_code == 404
        readded = client.post("/api/v1/devices", json={"id": "gw-1"})
        assert readded.status_code == 409 and "not reused" in readded.json()["message"]
    removal = [e for e in _audit(env) if e["action"] == "device.remove"]
    assert removal and removal[0]["subject"] == "device:gw-1"
    assert removal[0]["details"]["reason"] == "returned (RMA)"
    assert env.cli("audit", "verify").code == 0


def test_a_removed_device_cannot_come_back_through_the_gateway_token(
    env: Env, server: LiveServer
) -> None:
    device_service.add_device(env.ctx, "gw-1", actor="t")
    gateway = device_service.create_gateway_token(env.ctx, actor="t")
    headers = {"Authorization": f"GatewayToken {gateway}"}
    base = f"{server.url}/DEFAULT/controller/v1"
    assert httpx.get(f"{base}/gw-1", headers=headers, timeout=30).status_code == 200
    result = env.cli("device", "remove", "gw-1", "--reason", "scrapped")
    assert result.code == 0, result.stderr
    assert "gw-1 removed" in result.stdout
    assert httpx.get(f"{base}/gw-1", headers=headers, timeout=30).status_code == 401
    # The gateway still registers devices it has never seen.
    assert httpx.get(f"{base}/gw-9", headers=headers, timeout=30).status_code == 200
    assert [d.controller_id for d in device_service.iter_devices(env.ctx)] == ["gw-9"]
    again = env.cli("device", "remove", "gw-1")
    assert again.code == 2 and "was removed" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert env.cli("device", "tag", "gw-1", "qa").code == 2
    assert env.cli("device", "rotate-token", "gw-1").code == 2
    assert env.cli("device", "remove", "nope").code == 2


def test_a_rotated_token_replaces_the_old_one_at_once(env: Env, server: LiveServer) -> None:
    first = device_service.add_device(env.ctx, "gw-1", actor="t").token
    assert _ddi(server, "gw-1", first).status_code == 200
    with server.client(env.admin_token) as client:
        rotated = client.post("/api/v1/devices/gw-1/token")
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()["token"]
        assert second != first and rotated.json()["id"] == "gw-1"
        assert client.post("/api/v1/devices/nope/token").status_code == 404
    assert _ddi(server, "gw-1", first).status_code == 401
    assert _ddi(server, "gw-1", second).status_code == 200
    # The CLI does the same and prints the token once.
    result = env.cli("device", "rotate-token", "gw-1", "--json")
    assert result.code == 0, result.stderr
    third = result.json()["token"]
    assert _ddi(server, "gw-1", second).status_code == 401
    assert _ddi(server, "gw-1", third).status_code == 200
    text = env.cli("device", "rotate-token", "gw-1")
    assert text.code == 0 and "shown once" in text.stdout
    assert _ddi(server, "gw-1", third).status_code == 401
    actions = [e["action"] for e in _audit(env)]
    assert actions.count("device.rotate_token") == 3


def test_removal_and_rotation_need_a_release_manager(env: Env, server: LiveServer) -> None:
    device_service.add_device(env.ctx, "gw-1", actor="t")
    viewer = env.cli("token", "create", "ro", "--role", "viewer", "--json")
    assert viewer.code == 0, viewer.stderr
    with server.client(viewer.json()["token"]) as client:
        assert client.delete("/api/v1/devices/gw-1").status_code == 403
        assert client.post("/api/v1/devices/gw-1/token").status_code == 403
    assert _stored(env, "gw-1").removed_at is None


def _audit(env: Env) -> list[dict[str, Any]]:
    return list(env.cli("audit", "list", "--json").json()["entries"])


def test_a_removed_device_leaves_exposure_counts_and_new_campaigns(env: Env) -> None:
    policy_service.apply(env.ctx, demo_policy_source(), actor="t")
    for cid in ("gw-1", "gw-2", "gw-3"):
        device_service.add_device(env.ctx, cid, hardware=HW, version="1.0.0", actor="t")
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    args = ("--title", "t", "--cvss", vector, "--product", "Demo Gateway", "--affected", "<2.0.0")
    added = env.cli("vuln", "add", "CVE-2026-0001", *args, "--json")
    assert added.code == 0, added.stderr
    assert added.json()["exposed_devices"] == 3
    assert env.cli("device", "remove", "gw-2").code == 0
    shown = env.cli("vuln", "show", "CVE-2026-0001", "--json").json()
    assert shown["exposed_devices"] == 2
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, hardware=[HW])
    made = env.cli("campaign", "create", str(release.id), "--stages", "100", "--json")
    assert made.code == 0, made.stderr
    started = env.cli("campaign", "start", str(made.json()["id"]), "--json")
    assert started.code == 0, started.stderr
    assert started.json()["counts"]["eligible"] == 2


def test_a_removed_device_counts_as_cancelled_in_its_campaign(env: Env, server: LiveServer) -> None:
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, hardware=[HW])
    tokens = {
        cid: device_service.add_device(env.ctx, cid, hardware=HW, version="1.0.0", actor="t").token
        for cid in ("gw-1", "gw-2")
    }
    made = env.cli("campaign", "create", str(release.id), "--stages", "100", "--json")
    campaign = made.json()["id"]
    assert env.cli("campaign", "start", str(campaign)).code == 0
    assert "deploymentBase" in _ddi(server, "gw-1", tokens["gw-1"]).json()["_links"]
    with server.client(env.admin_token) as client:
        removed = client.delete("/api/v1/devices/gw-1").json()
        assert len(removed["cancelled_actions"]) == 1
        counts = client.get(f"/api/v1/campaigns/{campaign}").json()["counts"]
    # The campaign keeps the device it reached, now as cancelled (no evidence either way),
    # and the other device is still offered the release.
    assert counts["eligible"] == 2 and counts["cancelled"] == 1 and counts["failed"] == 0
    assert "deploymentBase" in _ddi(server, "gw-2", tokens["gw-2"]).json()["_links"]
    assert _ddi(server, "gw-1", tokens["gw-1"]).status_code == 401
