"""hawkBit DDI conformance, written from hawkBit's DDI documentation, against a real server
on SQLite and PostgreSQL: every resource, its status codes and JSON fields, cancellation,
confirmation, and the bad inputs real clients (and attackers) send."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Env
from tests.e2e.ddi_support import NONE, Device, add_device, event_count
from tests.factories import MadeRelease, action_status, assign, make_release
from tests.support import LiveServer

IMAGE = bytes(range(256)) * 1200  # 300 KiB, so ranged reads cross many blocks


@pytest.fixture
def device(env: Env, server: LiveServer) -> Device:
    return add_device(env, server, "dev-1", "--group", "qa", "--hardware", "demo-gw-1")


@pytest.fixture
def release(env: Env) -> MadeRelease:
    return make_release(env, "1.1.0", {"rootfs.img": IMAGE}, hardware=["demo-gw-1"])


# --- the base poll -------------------------------------------------------------------------


def test_a_poll_without_an_action_gives_the_sleep_as_hh_mm_ss_and_asks_for_config_data(
    device: Device,
) -> None:
    body = device.poll()
    assert body["config"]["polling"]["sleep"] == "00:05:00"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", body["config"]["polling"]["sleep"])
    assert set(body["_links"]) == {"configData"}
    assert body["_links"]["configData"]["href"] == f"{device.base}/configData"


def test_an_assigned_release_appears_as_deployment_base_with_a_cache_key(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    href = device.poll()["_links"]["deploymentBase"]["href"]
    assert re.fullmatch(rf"{re.escape(device.base)}/deploymentBase/{action}\?c=-?\d+", href)
    assert device.get(href).status_code == 200
    # The cache key is only a cache buster: any value (or none) gives the same answer.
    assert device.get(f"/deploymentBase/{action}?c=123").json() == device.get(href).json()


# --- deploymentBase, artifacts --------------------------------------------------------------


def test_deployment_base_lists_chunks_artifacts_hashes_links_and_the_tuf_target(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    body = device.get(f"/deploymentBase/{action}").json()
    assert body["id"] == str(action)
    deployment = body["deployment"]
    assert deployment["download"] == "forced" and deployment["update"] == "forced"
    assert "maintenanceWindow" not in deployment
    (chunk,) = deployment["chunks"]
    assert chunk["part"] == "os" and chunk["version"] == "1.1.0" and chunk["name"]
    metadata = {m["key"]: m["value"] for m in chunk["metadata"]}
    assert metadata["tuf_target"] == release.artifacts["rootfs.img"]["tuf_target"]
    (artifact,) = chunk["artifacts"]
    expected = release.artifacts["rootfs.img"]
    assert artifact["filename"] == "rootfs.img"
    assert artifact["size"] == len(IMAGE)
    assert artifact["hashes"] == {
        "sha1": hashlib.sha1(IMAGE).hexdigest(),  # noqa: S324  # DDI's field
        "md5": hashlib.md5(IMAGE).hexdigest(),  # noqa: S324
        "sha256": expected["sha256"],
    }
    links = artifact["_links"]
    # hawkBit's "download"/"md5sum" are its HTTPS links; this server speaks plain HTTP.
    assert set(links) == {"download-http", "md5sum-http"}
    assert links["download-http"]["href"] == (
        f"{device.base}/softwaremodules/{release.id}/artifacts/rootfs.img"
    )
    md5sum = device.get(links["md5sum-http"]["href"])
    assert md5sum.text.split() == [hashlib.md5(IMAGE).hexdigest(), "rootfs.img"]  # noqa: S324


def test_artifacts_download_whole_and_in_many_small_ranges_with_etag_and_head(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    artifact = device.get(f"/deploymentBase/{action}").json()["deployment"]["chunks"][0][
        "artifacts"
    ][0]
    href = artifact["_links"]["download-http"]["href"]
    whole = device.get(href)
    assert whole.status_code == 200 and whole.content == IMAGE
    assert whole.headers.get("etag")
    head = httpx.head(href, headers={"Authorization": f"TargetToken {device.token}"})
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(IMAGE)
    # A streaming client reads in small pieces.
    got = bytearray()
    step = 64 * 1024
    with httpx.Client(headers={"Authorization": f"TargetToken {device.token}"}) as client:
        for start in range(0, len(IMAGE), step):
            end = min(start + step, len(IMAGE)) - 1
            part = client.get(href, headers={"Range": f"bytes={start}-{end}"})
            assert part.status_code == 206
            assert part.headers["content-range"] == f"bytes {start}-{end}/{len(IMAGE)}"
            got += part.content
    assert bytes(got) == IMAGE
    assert hashlib.sha1(bytes(got)).hexdigest() == artifact["hashes"]["sha1"]  # noqa: S324
    # Without a token, or for another device, the bytes are not served.
    assert httpx.get(href).status_code == 401


def test_soft_and_download_only_assignments_and_a_maintenance_window_set_the_handling_types(
    env: Env, server: LiveServer, release: MadeRelease
) -> None:
    soft = add_device(env, server, "soft-1")
    a = assign(env, "soft-1", release, "--type", "soft")
    assert soft.get(f"/deploymentBase/{a}").json()["deployment"] | {"chunks": []} == {
        "download": "attempt",
        "update": "attempt",
        "chunks": [],
    }
    dl = add_device(env, server, "dl-1")
    b = assign(env, "dl-1", release, "--type", "downloadonly")
    deployment = dl.get(f"/deploymentBase/{b}").json()["deployment"]
    assert (deployment["download"], deployment["update"]) == ("forced", "skip")
    # A download-only action is closed as downloaded once the device has the bytes, as
    # hawkBit does: nothing is installed (no installed version, no installedBase).
    assert dl.feedback(b, "downloaded").status_code == 200
    assert action_status(env, b) == "downloaded"
    assert dl.feedback(b, "closed", "success").status_code == 410
    assert env.cli("device", "show", "dl-1", "--json").json()["installed_version"] is None
    assert "installedBase" not in dl.poll()["_links"]
    assert dl.get(f"/installedBase/{b}").status_code == 404
    closed = add_device(env, server, "mw-closed")
    c = assign(env, "mw-closed", release, "--window", "2001-01-01T00:00:00Z/2001-01-01T01:00:00Z")
    deployment = closed.get(f"/deploymentBase/{c}").json()["deployment"]
    assert deployment["maintenanceWindow"] == "unavailable"
    assert (deployment["download"], deployment["update"]) == ("forced", "skip")
    opened = add_device(env, server, "mw-open")
    d = assign(env, "mw-open", release, "--window", "2001-01-01T00:00:00Z/2999-01-01T00:00:00Z")
    deployment = opened.get(f"/deploymentBase/{d}").json()["deployment"]
    assert deployment["maintenanceWindow"] == "available"
    assert deployment["update"] == "forced"


# --- feedback ------------------------------------------------------------------------------


def test_every_execution_value_is_accepted_and_closed_success_installs_the_release(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    steps = [
        ("download", "none", "downloading"),
        ("downloaded", "none", "downloaded"),
        ("scheduled", "none", "running"),
        ("resumed", "none", "running"),
        ("rejected", "none", "running"),
        ("proceeding", "none", "running"),
    ]
    for execution, finished, expected in steps:
        answer = device.feedback(action, execution, finished, progress={"cnt": 1, "of": 2})
        assert answer.status_code == 200, (execution, answer.text)
        assert action_status(env, action) == expected, execution
    assert device.feedback(action, "closed", "success", details=["installed"]).status_code == 200
    assert action_status(env, action) == "finished"
    shown = env.cli("device", "show", device.controller_id, "--json").json()
    assert shown["installed_version"] == "1.1.0"
    links = device.poll()["_links"]
    assert links["installedBase"]["href"] == f"{device.base}/installedBase/{action}"
    installed = device.get(f"/installedBase/{action}?actionHistory=-1").json()
    assert installed["id"] == str(action)
    assert installed["deployment"]["chunks"][0]["version"] == "1.1.0"
    assert installed["actionHistory"]["status"] == "FINISHED"
    # Only what the device said, newest first (its one message with details here).
    assert installed["actionHistory"]["messages"] == ["installed"]


def test_closed_failure_marks_the_action_failed_and_canceled_is_only_recorded(
    env: Env, server: LiveServer, release: MadeRelease
) -> None:
    failing = add_device(env, server, "fail-1")
    a = assign(env, "fail-1", release)
    assert (
        failing.feedback(a, "closed", "failure", details=["boot check failed"]).status_code == 200
    )
    assert action_status(env, a) == "error"
    assert env.cli("device", "show", "fail-1", "--json").json()["installed_version"] is None
    giving_up = add_device(env, server, "cancel-1")
    b = assign(env, "cancel-1", release)
    # hawkBit: a device cannot cancel an update on the deployment channel; the report is
    # kept in the history and the action stays active.
    events = event_count(env, b)
    assert giving_up.feedback(b, "canceled", details=["gave up"]).status_code == 200
    assert action_status(env, b) == "offered"
    assert event_count(env, b) == events + 1
    assert "deploymentBase" in giving_up.poll()["_links"]


def test_feedback_for_a_closed_action_is_gone_and_changes_nothing(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    assert device.feedback(action, "closed", "success").status_code == 200
    events = event_count(env, action)
    for execution, finished in (
        ("proceeding", "none"),
        ("closed", "failure"),
        ("closed", "success"),
    ):
        answer = device.feedback(action, execution, finished)
        assert answer.status_code == 410, answer.text
    assert action_status(env, action) == "finished"
    assert event_count(env, action) == events


def test_feedback_never_moves_an_action_backwards_and_repeats_are_idempotent(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    assert device.feedback(action, "downloaded").status_code == 200
    assert device.feedback(action, "download").status_code == 200
    assert action_status(env, action) == "downloaded"
    assert device.feedback(action, "proceeding", progress={"cnt": 1, "of": 3}).status_code == 200
    events = event_count(env, action)
    for _ in range(3):
        assert (
            device.feedback(action, "proceeding", progress={"cnt": 1, "of": 3}).status_code == 200
        )
    assert event_count(env, action) == events
    assert device.feedback(action, "downloaded").status_code == 200
    assert action_status(env, action) == "running"


def test_extra_fields_and_missing_optional_fields_are_tolerated(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    body = {
        "id": str(action),
        "time": "20260101T120000",
        "timestamp": 1767268800000,
        "unknown": {"anything": [1, 2]},
        "status": {"execution": "proceeding", "result": {"finished": "none"}, "vendor": "x"},
    }
    assert device.post(f"/deploymentBase/{action}/feedback", body).status_code == 200
    config = {
        "id": "",
        "time": "20260101T120000",
        "status": {"result": {"finished": "success"}, "execution": "closed", "details": []},
        "data": {"hw_model": "demo-gw-1", "version": "1.0.0", "slot_scheme": "ab"},
    }
    assert device.put("/configData", config).status_code == 200
    shown = env.cli("device", "show", device.controller_id, "--json").json()
    assert shown["attributes"]["slot_scheme"] == "ab"
    assert shown["installed_version"] == "1.0.0"


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        (None, b"{not json"),
        (None, b"\xff\xfe"),
        ({"status": {"execution": "finished", "result": {"finished": "none"}}}, None),
        ({"status": {"execution": "closed", "result": {"finished": "ok"}}}, None),
        ({"status": {"execution": 3}}, None),
        ({"status": {"execution": "proceeding"}}, None),
        ({"status": {"execution": "proceeding", "result": {}}}, None),
        ({"status": "closed"}, None),
        ({"status": {"execution": "proceeding", "details": "text", **NONE}}, None),
        ({"status": {"execution": "proceeding", "result": {"progress": {"cnt": "1"}}}}, None),
        ({"status": {"execution": "proceeding", "code": 1.5, **NONE}}, None),
        ([], None),
    ],
)
def test_malformed_feedback_is_refused_with_400_and_changes_nothing(
    env: Env, device: Device, release: MadeRelease, body: Any, raw: bytes | None
) -> None:
    action = assign(env, device.controller_id, release)
    before = (action_status(env, action), event_count(env, action))
    url = f"{device.base}/deploymentBase/{action}/feedback"
    headers = {"Authorization": f"TargetToken {device.token}", "Content-Type": "application/json"}
    answer = (
        httpx.post(url, content=raw, headers=headers)
        if raw
        else httpx.post(url, json=body, headers=headers)
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"]
    assert (action_status(env, action), event_count(env, action)) == before


def test_an_oversized_body_is_refused_with_413_and_changes_nothing(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    before = (action_status(env, action), event_count(env, action))
    huge = {"status": {"execution": "proceeding", "details": ["x" * 1000] * 2000, **NONE}}
    answer = device.post(f"/deploymentBase/{action}/feedback", huge)
    assert answer.status_code == 413
    config = device.put("/configData", {"data": {f"k{i}": "v" * 500 for i in range(3000)}})
    assert config.status_code == 413
    assert (action_status(env, action), event_count(env, action)) == before
    assert env.cli("device", "show", device.controller_id, "--json").json()["attributes"] == {}


# --- authentication and isolation -----------------------------------------------------------


def test_a_wrong_or_missing_token_gets_401_without_saying_whether_the_device_exists(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    ghost = Device(device.server, "no-such-device", device.token)
    answers = [
        device.get(auth=""),
        device.get(auth="TargetToken wrong"),
        device.get(auth=f"GatewayToken {device.token}"),
        ghost.get(),
        Device(device.server, "no-such-device", "wrong").get(),
        Device(device.server, device.controller_id, device.token, tenant="OTHER").get(),
        device.get(f"/deploymentBase/{action}", auth="TargetToken wrong"),
        device.post(
            f"/deploymentBase/{action}/feedback", {"status": {"execution": "closed"}}, auth=""
        ),
    ]
    assert [a.status_code for a in answers] == [401] * len(answers)
    assert (
        len({(a.content, tuple(sorted(a.headers.get("www-authenticate", "")))) for a in answers})
        == 1
    )
    assert action_status(env, action) == "offered"


def test_another_devices_action_is_not_found(
    env: Env, server: LiveServer, device: Device, release: MadeRelease
) -> None:
    other = add_device(env, server, "dev-2", "--hardware", "demo-gw-1")
    theirs = assign(env, "dev-2", release)
    assert device.get(f"/deploymentBase/{theirs}").status_code == 404
    assert device.feedback(theirs, "closed", "success").status_code == 404
    assert device.get(f"/cancelAction/{theirs}").status_code == 404
    assert device.get(f"/installedBase/{theirs}").status_code == 404
    assert device.get("/deploymentBase/999999").status_code == 404
    assert action_status(env, theirs) == "offered"
    assert other.get(f"/deploymentBase/{theirs}").status_code == 200


def test_a_gateway_token_registers_a_device_on_its_first_poll(env: Env, server: LiveServer) -> None:
    token = env.cli("ddi", "gateway-token", "--json").json()["token"]
    gateway = Device(server, "fresh-1", "", tenant="DEFAULT")
    assert gateway.get(auth="").status_code == 401
    body = gateway.get(auth=f"GatewayToken {token}").json()
    assert "configData" in body["_links"]
    shown = env.cli("device", "show", "fresh-1", "--json")
    assert shown.code == 0 and shown.json()["id"] == "fresh-1"
    assert gateway.get(auth=f"GatewayToken {token}x").status_code == 401


def test_anonymous_mode_is_off_by_default_and_explicitly_switched_on(
    env: Env, server: LiveServer
) -> None:
    lab = Device(server, "lab-1", "")
    assert lab.get(auth="").status_code == 401
    assert env.cli("ddi", "anonymous", "on").code == 0
    assert lab.get(auth="").status_code == 200
    assert env.cli("ddi", "anonymous", "off").code == 0
    assert lab.get(auth="").status_code == 401


# --- cancellation ---------------------------------------------------------------------------


def test_a_cancelled_action_is_offered_as_cancel_action_and_closed_by_the_devices_feedback(
    env: Env, server: LiveServer, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    assert device.get(f"/cancelAction/{action}").status_code == 404
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {env.admin_token}"}
    )
    assert (
        admin.post(f"/api/v1/actions/{action}/cancel", json={"reason": "halted"}).status_code == 200
    )
    links = device.poll()["_links"]
    assert set(links) >= {"cancelAction"} and "deploymentBase" not in links
    assert links["cancelAction"]["href"] == f"{device.base}/cancelAction/{action}"
    body = device.get(f"/cancelAction/{action}").json()
    assert body == {"id": str(action), "cancelAction": {"stopId": str(action)}}
    # Deployment progress still arrives while the device stops; it does not undo the cancel.
    assert device.feedback(action, "proceeding").status_code == 200
    assert action_status(env, action) == "canceling"
    assert device.feedback(action, "proceeding", channel="cancelAction").status_code == 200
    assert device.feedback(action, "closed", "success", channel="cancelAction").status_code == 200
    assert action_status(env, action) == "canceled"
    assert device.feedback(action, "closed", "success", channel="cancelAction").status_code == 200
    assert device.feedback(action, "closed", "success").status_code == 410
    assert set(device.poll()["_links"]) <= {"configData"}
    history = admin.get(f"/api/v1/actions/{action}").json()["events"]
    assert [e["status"] for e in history][-1] == "canceled"


def test_a_device_may_reject_a_cancellation_and_the_update_goes_on(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    assert device.feedback(action, "proceeding").status_code == 200
    assert env.cli("device", "cancel", str(action)).code == 0
    assert device.feedback(action, "rejected", channel="cancelAction").status_code == 200
    assert action_status(env, action) == "running"
    assert "deploymentBase" in device.poll()["_links"]


# --- confirmation (user consent) ------------------------------------------------------------


def test_an_update_that_needs_consent_waits_until_the_user_confirms(
    env: Env, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release, "--confirm-required")
    links = device.poll()["_links"]
    assert "deploymentBase" not in links
    assert re.fullmatch(
        rf"{re.escape(device.base)}/confirmationBase/{action}\?c=-?\d+",
        links["confirmationBase"]["href"],
    )
    body = device.get(f"/confirmationBase/{action}").json()
    assert body["id"] == str(action) and body["confirmation"]["chunks"]
    assert device.get(f"/deploymentBase/{action}").status_code == 404
    assert device.feedback(action, "proceeding").status_code == 404
    state = device.get("/confirmationBase").json()
    assert state["autoConfirm"] == {"active": False}
    assert "activateAutoConfirm" in state["_links"] and "confirmationBase" in state["_links"]
    deny = {"confirmation": "denied", "code": 7, "details": ["user postponed"]}
    assert device.post(f"/confirmationBase/{action}/feedback", deny).status_code == 200
    assert action_status(env, action) == "waiting_confirmation"
    bad = device.post(f"/confirmationBase/{action}/feedback", {"confirmation": "maybe"})
    assert bad.status_code == 400
    ok = device.post(f"/confirmationBase/{action}/feedback", {"confirmation": "confirmed"})
    assert ok.status_code == 200
    assert action_status(env, action) == "offered"
    assert "deploymentBase" in device.poll()["_links"]
    again = device.post(f"/confirmationBase/{action}/feedback", {"confirmation": "confirmed"})
    assert again.status_code == 404


def test_auto_confirm_confirms_the_waiting_action_and_can_be_switched_off(
    env: Env, server: LiveServer, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release, "--confirm-required")
    on = device.post(
        "/confirmationBase/activateAutoConfirm", {"initiator": "alice", "remark": "kiosk"}
    )
    assert on.status_code == 200
    assert action_status(env, action) == "offered"
    state = device.get("/confirmationBase").json()
    assert state["autoConfirm"]["active"] is True
    assert state["autoConfirm"]["initiator"] == "alice"
    assert "deactivateAutoConfirm" in state["_links"]
    assert device.feedback(action, "closed", "success").status_code == 200
    second = make_release(env, "1.2.0", {"rootfs.img": b"two"}, hardware=["demo-gw-1"])
    b = assign(env, device.controller_id, second, "--confirm-required")
    assert action_status(env, b) == "offered"  # auto-confirmed at assignment
    assert device.feedback(b, "closed", "success").status_code == 200
    assert device.post("/confirmationBase/deactivateAutoConfirm").status_code == 200
    third = make_release(env, "1.3.0", {"rootfs.img": b"three"}, hardware=["demo-gw-1"])
    c = assign(env, device.controller_id, third, "--confirm-required")
    assert action_status(env, c) == "waiting_confirmation"


# --- configData, installedBase, health ------------------------------------------------------


def test_config_data_merges_replaces_and_removes_attributes(env: Env, device: Device) -> None:
    assert "configData" in device.poll()["_links"]
    assert device.put("/configData", {"data": {"a": "1", "b": "2"}}).status_code == 200
    assert "configData" not in device.poll()["_links"]
    assert (
        device.put("/configData", {"mode": "merge", "data": {"b": "3", "c": "4"}}).status_code
        == 200
    )
    attrs = env.cli("device", "show", device.controller_id, "--json").json()["attributes"]
    assert attrs == {"a": "1", "b": "3", "c": "4"}
    assert device.put("/configData", {"mode": "remove", "data": {"a": ""}}).status_code == 200
    assert device.put("/configData", {"mode": "replace", "data": {"z": "9"}}).status_code == 200
    attrs = env.cli("device", "show", device.controller_id, "--json").json()["attributes"]
    assert attrs == {"z": "9"}
    for bad in (
        {"mode": "append", "data": {}},
        {"data": {"n": 1}},
        {"data": ["x"]},
        {"mode": 1, "data": {}},
    ):
        assert device.put("/configData", bad).status_code == 400, bad
    assert env.cli("device", "show", device.controller_id, "--json").json()["attributes"] == {
        "z": "9"
    }


def test_a_device_reports_an_offline_installed_version_through_installed_base(
    env: Env, device: Device, release: MadeRelease
) -> None:
    answer = device.put("/installedBase", {"name": "Demo Gateway", "version": "1.1.0"})
    assert answer.status_code == 201, answer.text
    action = int(answer.json()["id"])
    assert (
        env.cli("device", "show", device.controller_id, "--json").json()["installed_version"]
        == "1.1.0"
    )
    assert device.poll()["_links"]["installedBase"]["href"].endswith(f"/installedBase/{action}")
    assert (
        device.put("/installedBase", {"name": "Demo Gateway", "version": "9.9"}).status_code == 404
    )
    assert device.put("/installedBase", {"version": 3}).status_code == 400


def test_health_telemetry_is_kept_per_device_and_per_release(
    env: Env, server: LiveServer, device: Device, release: MadeRelease
) -> None:
    action = assign(env, device.controller_id, release)
    assert device.feedback(action, "closed", "success").status_code == 200
    report = {
        "boot_count": 2,
        "uptime_s": 61.5,
        "crash_count": 1,
        "watchdog_count": 0,
        "running_version": "1.1.0",
        "metrics": {"temp_c": 41.5, "fs": "ok"},
    }
    answer = device.post("/health", report)
    assert answer.status_code == 200 and answer.json()["release_id"] == release.id
    assert device.post("/health", {"boot_count": "two"}).status_code == 400
    assert device.post("/health", report, auth="").status_code == 401
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {env.admin_token}"}
    )
    summary = admin.get(f"/api/v1/releases/{release.id}/health").json()
    assert summary["reports"] == 1 and summary["crash_count"] == 1
    shown = admin.get(f"/api/v1/devices/{device.controller_id}").json()
    assert shown["health"][0]["metrics"]["temp_c"] == 41.5


def test_last_seen_is_written_behind_the_poll_and_polls_are_counted(
    env: Env, server: LiveServer, device: Device
) -> None:
    assert env.cli("device", "show", device.controller_id, "--json").json()["last_seen"] is None
    device.poll()
    deadline = time.monotonic() + 10
    while env.cli("device", "show", device.controller_id, "--json").json()["last_seen"] is None:
        assert time.monotonic() < deadline, "last-seen never written"
        time.sleep(0.2)
    device.get(auth="TargetToken nope")
    metrics = httpx.get(f"{server.url}/metrics").text
    assert re.search(r'patchgate_ddi_polls_total\{outcome="ok"\} [1-9]', metrics)
    assert re.search(r'patchgate_ddi_polls_total\{outcome="unauthorized"\} [1-9]', metrics)


def test_unknown_resources_and_methods_are_refused(device: Device) -> None:
    assert device.get("/nothing").status_code == 404
    assert device.post("", {}).status_code == 405
    assert device.get("/configData").status_code == 405
    assert device.get("/deploymentBase/abc").status_code == 404


def test_health_fields_beyond_the_known_ones_are_kept_as_free_form_metrics(
    env: Env, server: LiveServer, device: Device
) -> None:
    report = {
        "running_version": "1.0.0",
        "crash_count": 0,
        "crashes": 3,
        "exposure_hours": 1.25,
        "booted_slot": "a",
        "nested": {"ignored": True},
        "metrics": {"temp_c": 40, "crashes": 4},
    }
    assert device.post("/health", report).status_code == 200
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {env.admin_token}"}
    )
    metrics = admin.get(f"/api/v1/devices/{device.controller_id}").json()["health"][0]["metrics"]
    assert metrics == {"temp_c": 40, "crashes": 4, "exposure_hours": 1.25, "booted_slot": "a"}
