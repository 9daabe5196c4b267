"""hawkBit's own DDI tests, replayed against a real ``patchgate serve`` on SQLite and
PostgreSQL. Each test is named after the hawkBit test it follows
(``test_ddi_<class>_<method>``: ``DdiRootControllerTest``, ``DdiDeploymentBaseTest``,
``DdiCancelActionTest``, ``DdiInstalledBaseTest``, ``DdiConfirmationBaseTest``,
``DdiConfigDataTest``, ``DdiArtifactDownloadTest``) and checks what that test checks, in
patchgate's terms; the safety tests at the end check what no device may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import httpx

from tests.conftest import Env
from tests.e2e.ddi_support import NONE, Device, add_device, event_count
from tests.factories import MadeRelease, action_status, assign, make_release
from tests.support import LiveServer

HW = "demo-gw-1"


def _release(env: Env, version: str = "1.1.0", **files: bytes) -> MadeRelease:
    return make_release(env, version, files or {"rootfs.img": b"image " + version.encode()},
                        hardware=[HW])  # fmt: skip


def _device(env: Env, server: LiveServer, cid: str = "dev-1") -> Device:
    return add_device(env, server, cid, "--hardware", HW)


def _seconds(sleep: str) -> int:
    hours, minutes, secs = (int(x) for x in sleep.split(":"))
    return hours * 3600 + minutes * 60 + secs


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- DdiRootControllerTest ------------------------------------------------------------------


def test_ddi_root_controller_root_poll_resource_cbor(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    as_json = device.poll()
    answer = device.get(headers={"Accept": "application/cbor"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/cbor"
    assert cbor2.loads(answer.content) == as_json


def test_ddi_root_controller_api_returns_json_by_default(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    plain = httpx.get(device.base, headers={"Authorization": f"TargetToken {device.token}"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/hal+json")
    as_json = device.get(headers={"Accept": "application/json"})
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json() == plain.json()
    refused = device.get(headers={"Accept": "text/html"})
    assert refused.status_code == 406 and refused.json()["message"]


def test_ddi_root_controller_root_rs_not_modified(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    first = device.get()
    tag = first.headers["etag"]
    again = device.get(headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["etag"] == tag and again.content == b""
    action = assign(env, device.controller_id, _release(env))
    changed = device.get(headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert f"deploymentBase/{action}" in changed.json()["_links"]["deploymentBase"]["href"]


def test_ddi_root_controller_poll_with_modified_global_polling_time_and_maintenance_window(
    env: Env, tmp_path: Path
) -> None:
    # A day and more is beyond hawkBit's bounds: every client parses HH:MM:SS with HH < 24.
    server = LiveServer({**env.vars, "PATCHGATE_POLL_SLEEP": "90000"}, tmp_path / "s.log")
    server.start()
    try:
        device = _device(env, server)
        assert device.poll()["config"]["polling"]["sleep"] == "23:59:59"
        # sleepTimeResponseForDifferentMaintenanceWindowParameters: a window opening in
        # 30 minutes shortens the sleep to a third of that, so the device is there.
        start = datetime.now(UTC) + timedelta(minutes=30)
        window = f"{_iso(start)}/{_iso(start + timedelta(hours=1))}"
        assign(env, device.controller_id, _release(env), "--window", window)
        sleep = device.poll()["config"]["polling"]["sleep"]
        assert 590 <= _seconds(sleep) <= 600, sleep
    finally:
        server.stop()


def test_ddi_root_controller_root_rs_with_a_lower_case_tenant(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    for tenant in ("default", "Default", "DEFAULT"):
        lower = Device(server, device.controller_id, device.token, tenant=tenant)
        body = lower.poll()
        assert body["_links"]["configData"]["href"].startswith(f"{server.url}/{tenant}/")
    assert (
        Device(server, device.controller_id, device.token, tenant="other").get().status_code == 401
    )


def test_ddi_root_controller_test_action_history_count_zero_and_negative_input(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env))
    for i in range(1, 4):
        status = {"execution": "proceeding", "details": [f"step {i}"], **NONE}
        if i == 3:
            status["code"] = 12
        assert (
            device.post(f"/deploymentBase/{action}/feedback", {"status": status}).status_code == 200
        )
    two = device.get(f"/deploymentBase/{action}?actionHistory=2").json()["actionHistory"]
    assert two == {"status": "RUNNING", "messages": ["step 3", "Device reported status code: 12"]}
    every = device.get(f"/deploymentBase/{action}?actionHistory=-1").json()["actionHistory"]
    assert every["messages"] == ["step 3", "Device reported status code: 12", "step 2", "step 1"]
    for query in ("?actionHistory=0", "?actionHistory", "?actionHistory=", ""):
        answer = device.get(f"/deploymentBase/{action}{query}")
        assert answer.status_code == 200 and "actionHistory" not in answer.json(), query


def test_ddi_root_controller_try_to_finish_an_update_process_after_it_has_been_finished(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env))
    assert device.feedback(action, "closed", "success").status_code == 200
    events = event_count(env, action)
    assert device.feedback(action, "closed", "success").status_code == 410
    assert event_count(env, action) == events
    # hawkBit still answers the deployment of a finished action.
    assert device.get(f"/deploymentBase/{action}").status_code == 200


def test_ddi_root_controller_attribute_update_request_sending_after_successful_deployment(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    assert device.put("/configData", {"data": {"board": HW}}).status_code == 200
    assert "configData" not in device.poll()["_links"]
    action = assign(env, device.controller_id, _release(env))
    assert device.feedback(action, "closed", "success").status_code == 200
    assert "configData" in device.poll()["_links"]


def test_ddi_root_controller_quota_answers_429_with_retry_after(env: Env, tmp_path: Path) -> None:
    server = LiveServer({**env.vars, "PATCHGATE_DDI_QUOTA": "3"}, tmp_path / "s.log").start()
    try:
        device = _device(env, server)
        answers = [device.get() for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        # Feedback has a quota of its own; another device is not affected.
        action = assign(env, device.controller_id, _release(env))
        assert device.feedback(action, "proceeding").status_code == 200
        assert _device(env, server, "dev-2").get().status_code == 200
    finally:
        server.stop()


# --- DdiDeploymentBaseTest ------------------------------------------------------------------


def test_ddi_deployment_base_deployment_force_action_one_chunk_per_module(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    release = _release(env, "2.0.0", **{"update.swu": b"image", "update.swu.sig": b"sig"})
    action = assign(env, device.controller_id, release)
    deployment = device.get(f"/deploymentBase/{action}").json()["deployment"]
    assert (deployment["download"], deployment["update"]) == ("forced", "forced")
    (chunk,) = deployment["chunks"]
    assert (chunk["part"], chunk["version"]) == ("os", "2.0.0")
    assert sorted(a["filename"] for a in chunk["artifacts"]) == ["update.swu", "update.swu.sig"]
    metadata = {m["key"]: m["value"] for m in chunk["metadata"]}
    assert metadata["tuf_target:update.swu"] == release.artifacts["update.swu"]["tuf_target"]
    for artifact in chunk["artifacts"]:
        href = artifact["_links"]["download-http"]["href"]
        assert f"/softwaremodules/{release.id}/artifacts/" in href
        assert device.get(href).status_code == 200


def test_ddi_deployment_base_deployment_resource_cbor(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env))
    as_json = device.get(f"/deploymentBase/{action}").json()
    answer = device.get(f"/deploymentBase/{action}", headers={"Accept": "application/cbor"})
    assert cbor2.loads(answer.content) == as_json
    feedback = cbor2.dumps({"status": {"execution": "proceeding", **NONE}})
    headers = {"Authorization": f"TargetToken {device.token}", "Content-Type": "application/cbor"}
    posted = httpx.post(f"{device.base}/deploymentBase/{action}/feedback", content=feedback,
                        headers=headers)  # fmt: skip
    assert posted.status_code == 200, posted.text
    assert action_status(env, action) == "running"
    bad = httpx.post(f"{device.base}/deploymentBase/{action}/feedback", content=b"\xff\x00",
                     headers=headers)  # fmt: skip
    assert bad.status_code == 400 and "CBOR" in bad.json()["message"]


def test_ddi_deployment_base_deployment_download_only_action(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env), "--type", "downloadonly")
    assert device.feedback(action, "download").status_code == 200
    assert device.feedback(action, "downloaded").status_code == 200
    assert action_status(env, action) == "downloaded"
    assert "deploymentBase" not in device.poll()["_links"]
    assert env.cli("device", "show", "dev-1", "--json").json()["installed_version"] is None
    # Closed: there is nothing left to cancel.
    cancel = env.cli("device", "cancel", str(action))
    assert cancel.code != 0 and "closed" in cancel.stderr
    assert action_status(env, action) == "downloaded"


def test_ddi_deployment_base_missing_result_and_finished_attribute_return_bad_request(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env))
    for status in ({"execution": "closed"}, {"execution": "closed", "result": {}}):
        answer = device.post(f"/deploymentBase/{action}/feedback", {"status": status})
        assert answer.status_code == 400 and "finished" in answer.json()["message"]
    assert action_status(env, action) == "offered"


def test_ddi_deployment_base_canceled_feedback_is_recorded_and_the_action_stays(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env))
    assert device.feedback(action, "canceled", details=["user pressed stop"]).status_code == 200
    assert action_status(env, action) == "offered"
    assert device.feedback(action, "closed", "success").status_code == 200
    assert action_status(env, action) == "finished"


# --- DdiCancelActionTest --------------------------------------------------------------------


def test_ddi_cancel_action_root_rs_cancel_action_feedback(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env))
    assert device.feedback(action, "proceeding").status_code == 200
    assert env.cli("device", "cancel", str(action)).code == 0
    for execution in ("proceeding", "canceled", "scheduled"):
        answer = device.feedback(action, execution, channel="cancelAction")
        assert answer.status_code == 200
        assert action_status(env, action) == "canceling", execution
    assert device.feedback(action, "closed", "success", channel="cancelAction").status_code == 200
    assert action_status(env, action) == "canceled"
    assert device.get(f"/deploymentBase/{action}").status_code == 404


def test_ddi_cancel_action_root_rs_cancel_action_but_continue_anyway(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env))
    assert device.feedback(action, "proceeding").status_code == 200
    assert env.cli("device", "cancel", str(action)).code == 0
    assert device.feedback(action, "closed", "failure", channel="cancelAction").status_code == 200
    assert action_status(env, action) == "running"
    assert device.feedback(action, "closed", "success").status_code == 200
    assert action_status(env, action) == "finished"


# --- DdiInstalledBaseTest -------------------------------------------------------------------


def test_ddi_installed_base_installed_version(env: Env, server: LiveServer) -> None:
    device = _device(env, server)
    release = _release(env, "3.0.0")
    first = device.put("/installedBase", {"name": "Demo Gateway", "version": "3.0.0"})
    assert first.status_code == 201, first.text
    again = device.put("/installedBase", {"name": "Demo Gateway", "version": "3.0.0"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    installed = device.get(f"/installedBase/{first.json()['id']}").json()
    assert installed["deployment"]["chunks"][0]["version"] == release.version


def test_ddi_installed_base_download_only_and_failed_actions_are_not_installed(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    only = assign(env, device.controller_id, _release(env, "1.1.0"), "--type", "downloadonly")
    assert device.feedback(only, "downloaded").status_code == 200
    failed = assign(env, device.controller_id, _release(env, "1.2.0"))
    assert device.feedback(failed, "closed", "failure").status_code == 200
    for action in (only, failed):
        assert device.get(f"/installedBase/{action}").status_code == 404
    assert "installedBase" not in device.poll()["_links"]


# --- DdiConfirmationBaseTest ----------------------------------------------------------------


def test_ddi_confirmation_base_activate_auto_confirmation_twice_is_a_conflict(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    body = {"initiator": "alice", "remark": "kiosk"}
    assert device.post("/confirmationBase/activateAutoConfirm", body).status_code == 200
    second = device.post("/confirmationBase/activateAutoConfirm", {"initiator": "mallory"})
    assert second.status_code == 409
    state = device.get("/confirmationBase").json()["autoConfirm"]
    assert state["initiator"] == "alice"
    assert device.post("/confirmationBase/deactivateAutoConfirm").status_code == 200
    assert device.post("/confirmationBase/activateAutoConfirm", body).status_code == 200


def test_ddi_confirmation_base_deployment_endpoint_not_accessible_for_actions_wfc(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    action = assign(env, device.controller_id, _release(env), "--confirm-required")
    assert device.get(f"/deploymentBase/{action}").status_code == 404
    assert device.feedback(action, "proceeding").status_code == 404
    assert device.get(f"/confirmationBase/{action}").status_code == 200


# --- DdiConfigDataTest ----------------------------------------------------------------------


def test_ddi_config_data_put_config_data_as_cbor_and_with_null_values(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    headers = {"Authorization": f"TargetToken {device.token}", "Content-Type": "application/cbor"}
    body = cbor2.dumps({"mode": "merge", "data": {"a": "1", "b": "2", "c": "3"}})
    assert httpx.put(f"{device.base}/configData", content=body, headers=headers).status_code == 200
    # null removes the key in merge and replace, as hawkBit's copy does.
    assert device.put("/configData", {"data": {"b": None, "d": "4"}}).status_code == 200
    attrs = env.cli("device", "show", "dev-1", "--json").json()["attributes"]
    assert attrs == {"a": "1", "c": "3", "d": "4"}
    assert device.put("/configData", {"mode": "REMOVE", "data": {"a": None}}).status_code == 200
    attrs = env.cli("device", "show", "dev-1", "--json").json()["attributes"]
    assert attrs == {"c": "3", "d": "4"}


# --- DdiArtifactDownloadTest and the safety of what a device may read ------------------------


def test_ddi_artifact_download_list_artifacts_access_check(env: Env, server: LiveServer) -> None:
    ours, theirs = _device(env, server), _device(env, server, "dev-2")
    mine = _release(env, "1.1.0", **{"a.img": b"a", "a.img.sig": b"s"})
    other = _release(env, "1.2.0")
    unoffered = _release(env, "1.3.0")
    assign(env, "dev-1", mine)
    assign(env, "dev-2", other)
    listed = ours.get(f"/softwaremodules/{mine.id}/artifacts")
    assert listed.status_code == 200
    assert sorted(a["filename"] for a in listed.json()) == ["a.img", "a.img.sig"]
    assert all(set(a) >= {"filename", "hashes", "size", "_links"} for a in listed.json())
    for module in (other.id, unoffered.id, 999_999):
        assert ours.get(f"/softwaremodules/{module}/artifacts").status_code == 404
    assert theirs.get(f"/softwaremodules/{mine.id}/artifacts").status_code == 404


def test_ddi_artifact_download_download_access_check(env: Env, server: LiveServer) -> None:
    ours = _device(env, server)
    _device(env, server, "dev-2")
    mine, other, unoffered = _release(env, "1.1.0"), _release(env, "1.2.0"), _release(env, "1.3.0")
    assign(env, "dev-1", mine)
    assign(env, "dev-2", other)
    assert ours.get(f"/softwaremodules/{mine.id}/artifacts/rootfs.img").status_code == 200
    for release in (other, unoffered):
        for suffix in ("", ".MD5SUM"):
            path = f"/softwaremodules/{release.id}/artifacts/rootfs.img{suffix}"
            assert ours.get(path).status_code == 404, path
            assert httpx.head(ours.base + path, headers={
                "Authorization": f"TargetToken {ours.token}"}).status_code == 404  # fmt: skip
    # Another release's file name under our module is not served either.
    assert ours.get(f"/softwaremodules/{mine.id}/artifacts/other.img").status_code == 404


def test_ddi_artifact_download_download_artifact_through_file_name_with_if_match(
    env: Env, server: LiveServer
) -> None:
    device = _device(env, server)
    release = _release(env)
    assign(env, "dev-1", release)
    path = f"/softwaremodules/{release.id}/artifacts/rootfs.img"
    tag = device.get(path).headers["etag"]
    assert device.get(path, headers={"If-Match": tag}).status_code == 200
    assert device.get(path, headers={"If-Match": '"stale"'}).status_code == 412
    ranged = device.get(path, headers={"If-Match": tag, "Range": "bytes=0-2"})
    assert ranged.status_code == 206 and ranged.content == b"ima"


def test_a_device_cannot_read_another_devices_confirmation_base(
    env: Env, server: LiveServer
) -> None:
    ours, _ = _device(env, server), _device(env, server, "dev-2")
    theirs = assign(env, "dev-2", _release(env), "--confirm-required")
    assert ours.get(f"/confirmationBase/{theirs}").status_code == 404
    confirm = {"confirmation": "confirmed"}
    assert ours.post(f"/confirmationBase/{theirs}/feedback", confirm).status_code == 404
    assert "confirmationBase" not in ours.get("/confirmationBase").json()["_links"]
    assert action_status(env, theirs) == "waiting_confirmation"


# --- certificate authentication behind a TLS-terminating proxy ---------------------------------


def _proxied(device: Device, **headers: str) -> int:
    return httpx.get(device.base, headers=headers).status_code


def test_ddi_security_client_certificate_through_a_trusted_proxy(env: Env, tmp_path: Path) -> None:
    trusted = {
        **env.vars,
        "PATCHGATE_TRUSTED_PROXIES": "127.0.0.0/8",
        "PATCHGATE_DDI_TRUSTED_AUTHORITIES": "ab12cd,ef34",
    }
    server = LiveServer(trusted, tmp_path / "s.log").start()
    try:
        device = _device(env, server)
        assert _proxied(device, **{"X-Controller-Id": "dev-1", "X-Authority-1": "AB12CD"}) == 200
        assert _proxied(device, **{"X-Controller-Id": "dev-1", "X-Authority": "x;ef34"}) == 200
        assert _proxied(device, **{"X-Controller-Id": "dev-1", "X-Authority-1": "other"}) == 401
        assert _proxied(device, **{"X-Controller-Id": "dev-2", "X-Authority-1": "ab12cd"}) == 401
        assert _proxied(device, **{"X-Authority-1": "ab12cd"}) == 401
        # A certificate-authenticated device is registered on its first poll, as in hawkBit.
        fresh = Device(server, "fresh-9", "")
        assert _proxied(fresh, **{"X-Controller-Id": "fresh-9", "X-Authority-0": "ef34"}) == 200
        assert env.cli("device", "show", "fresh-9", "--json").code == 0
    finally:
        server.stop()
    # The same headers from an address that is not a trusted proxy are ignored.
    untrusted = {**trusted, "PATCHGATE_TRUSTED_PROXIES": "10.9.9.9"}
    server = LiveServer(untrusted, tmp_path / "u.log").start()
    try:
        device = Device(server, "dev-1", "")
        assert _proxied(device, **{"X-Controller-Id": "dev-1", "X-Authority-1": "ab12cd"}) == 401
    finally:
        server.stop()
