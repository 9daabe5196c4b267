"""The agent against an in-memory hawkBit DDI server and a real TUF repository."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from patchgate.agent.core import backoff_delay
from patchgate.agent.runner import status
from patchgate.domain.ab_state import BootEnv, Phase, SlotState
from patchgate.domain.ab_state import check_invariants as ab_state_problems
from tests.unit.agent_device import FACTORY, UPDATE, Device, sha
from tests.unit.agent_doubles import HawkbitDouble, TufRepo

TARGET = "firmware/2.0.0/image.img"


@pytest.fixture
def repo() -> TufRepo:
    return TufRepo()


@pytest.fixture
def server(repo: TufRepo) -> HawkbitDouble:
    return HawkbitDouble(repo)


@pytest.fixture
def device(tmp_path: Path, server: HawkbitDouble, repo: TufRepo) -> Device:
    return Device(tmp_path, server, repo)


def offer_update(device: Device, **custom: object) -> None:
    fields = {"version": "2.0.0", "security_version": 2, "hardware": ["board-a"], **custom}
    device.repo.add_target(TARGET, UPDATE, **fields)
    device.server.offer(device.device_id, "2.0.0", UPDATE, tuf_target=TARGET)


def executions(device: Device, action: int = 0) -> list[tuple[str, str]]:
    record = device.server.devices[device.device_id].actions[action]
    return [(f["status"]["execution"], f["status"]["result"]["finished"]) for f in record.feedback]


def final_details(device: Device, action: int = 0) -> str:
    record = device.server.devices[device.device_id].actions[action]
    return " ".join(record.feedback[-1]["status"]["details"])


def test_a_good_release_is_installed_committed_and_reported_with_its_version(
    device: Device,
) -> None:
    offer_update(device)
    assert device.run() == "reboot"
    env = device.env()
    assert env.phase is Phase.PENDING_REBOOT and env.active_slot == "b"
    assert env.upgrade_available
    assert device.boot().phase is Phase.TRIAL_BOOT
    device.settle()
    env = device.env()
    assert (env.active_slot, env.booted_slot, env.installed_version) == ("b", "b", "2.0.0")
    assert env.slots["b"].state is SlotState.GOOD and not env.upgrade_available
    assert device.slot("b") == UPDATE and device.slot("a") == FACTORY
    steps = executions(device)
    assert steps[0] == ("download", "none")
    assert ("downloaded", "none") in steps
    assert steps[-1] == ("closed", "success")
    assert "running version 2.0.0" in final_details(device)
    record = device.server.devices[device.device_id]
    assert record.config_data["version"] == "2.0.0"
    assert record.health and record.health[-1]["running_version"] == "2.0.0"
    assert {"boot_count", "uptime_s", "crash_count"} <= set(record.health[-1])
    assert record.health[-1]["metrics"]["booted_slot"] == "b"


def test_a_tampered_artifact_is_refused_before_anything_is_written_to_a_slot(
    device: Device,
) -> None:
    offer_update(device)
    device.server.tamper = lambda data: data[:100] + b"X" + data[101:]
    assert device.run() == "ok"
    assert device.slot("b") == b""  # nothing reached the inactive slot
    assert device.slot("a") == FACTORY
    env = device.env()
    assert env.active_slot == "a" and env.installed_version == "1.0.0"
    assert executions(device)[-1] == ("closed", "failure")
    assert "does not match its signed target" in final_details(device)
    assert "running version 1.0.0" in final_details(device)


def test_a_failing_health_check_reverts_and_leaves_the_known_good_slot_untouched(
    device: Device,
) -> None:
    offer_update(device)
    assert device.run() == "reboot"
    device.boot()
    assert device.run(health=lambda env, path: "service foo did not start") == "reboot"
    env = device.env()
    assert env.active_slot == "a" and env.phase is Phase.REVERTED
    device.boot()
    device.settle()
    env = device.env()
    assert (env.active_slot, env.booted_slot, env.installed_version) == ("a", "a", "1.0.0")
    assert env.slots["b"].state is SlotState.BAD
    assert device.slot("b") == UPDATE  # the other slot was written
    assert device.slot("a") == FACTORY  # the known-good slot was not touched
    assert executions(device)[-1] == ("closed", "failure")
    details = final_details(device)
    assert "service foo did not start" in details and "running version 1.0.0" in details
    record = device.server.devices[device.device_id]
    assert record.config_data["version"] == "1.0.0"
    assert record.health[-1]["crash_count"] == 1
    assert record.health[-1]["running_version"] == "1.0.0"


def test_an_image_that_never_confirms_falls_back_after_the_boot_limit(device: Device) -> None:
    offer_update(device)
    assert device.run() == "reboot"
    env: BootEnv = device.boot()
    for _ in range(env.bootlimit):  # crashes before the agent can check health
        env = device.boot()
    assert env.booted_slot == "a" and env.phase is Phase.REVERTED
    device.settle()
    assert device.env().installed_version == "1.0.0"
    assert "boot limit" in final_details(device)


def test_an_image_for_other_hardware_is_refused_with_the_reason(device: Device) -> None:
    offer_update(device, hardware=["board-z"])
    device.run()
    assert executions(device) == [("closed", "failure")]
    assert "board-a is not among board-z" in final_details(device)
    assert device.slot("b") == b""


def test_an_image_below_the_security_floor_is_refused(device: Device) -> None:
    offer_update(device)
    device.settle()  # installs 2.0.0 (security version 2)
    device.repo.set_custom(TARGET, security_floor=2)
    device.run()
    assert device.env().security_floor == 2
    old = "firmware/1.5.0/image.img"
    device.repo.add_target(old, b"old but signed" * 10, version="1.5.0", security_version=1)
    device.server.offer(device.device_id, "1.5.0", b"old but signed" * 10, tuf_target=old)
    device.run()
    assert executions(device, 1) == [("closed", "failure")]
    assert "below the device's security floor 2" in final_details(device, 1)


def test_the_floor_never_rises_above_the_running_image(device: Device) -> None:
    offer_update(device, security_floor=9)
    device.settle()
    device.run()
    assert device.env().security_floor == 2


def test_once_the_floor_reaches_the_running_image_an_idle_pass_fetches_no_metadata(
    device: Device,
) -> None:
    offer_update(device, security_floor=2)
    device.settle()
    device.run()
    assert device.env().security_floor == 2
    seen = len(device.server.requests)
    device.run()
    later = [r.url.path for r in device.server.requests[seen:]]
    assert later and not [p for p in later if p.startswith("/tuf/")]


def test_a_target_missing_from_the_signed_metadata_is_refused(device: Device) -> None:
    device.server.offer(device.device_id, "2.0.0", UPDATE, tuf_target="firmware/unsigned.img")
    device.run()
    assert executions(device) == [("closed", "failure")]
    assert "not in the signed targets metadata" in final_details(device)


def test_targets_signed_by_an_unknown_key_are_refused(device: Device) -> None:
    device.repo.targets.signed.targets[TARGET] = __import__(
        "tuf.api.metadata", fromlist=["TargetFile"]
    ).TargetFile.from_data(TARGET, UPDATE, ["sha256"])
    device.repo.publish(targets_signer=CryptoSigner.generate_ed25519())
    device.server.offer(device.device_id, "2.0.0", UPDATE, tuf_target=TARGET)
    device.run()
    assert executions(device) == [("closed", "failure")]
    assert "TUF verification failed" in final_details(device)
    assert device.slot("b") == b""


def test_a_chunk_without_a_tuf_target_is_refused(device: Device) -> None:
    device.server.offer(device.device_id, "2.0.0", UPDATE, tuf_target=None)
    device.run()
    assert executions(device) == [("closed", "failure")]
    assert "tuf_target" in final_details(device)


def test_an_unreachable_server_backs_off_and_keeps_the_current_slot(device: Device) -> None:
    offer_update(device)
    device.server.unavailable = 3
    agent = device.agent()
    agent.rng = random.Random(7)
    delays = [agent.run_once(), agent.run_once()]
    assert all(0 <= d <= 300 for d in delays)
    env = device.env()
    assert env.phase is Phase.IDLE and env.active_slot == "a"
    assert device.slot("b") == b""


def test_backoff_grows_with_attempts_and_stays_under_the_cap() -> None:
    rng = random.Random(1)
    for attempt in range(40):
        delay = backoff_delay(attempt, base=2.0, cap=300.0, rng=rng)
        assert 0 <= delay <= min(300.0, 2.0 * 2**attempt)


def test_an_interrupted_download_resumes_with_a_range_request(device: Device) -> None:
    offer_update(device)
    device.server.cut_download_after = 70_000
    assert device.run() == "ok"  # the connection dropped; the agent backs off
    assert device.env().phase is Phase.DOWNLOADING
    assert device.run() == "reboot"
    ranges = [r.headers.get("range") for r in device.server.requests if "artifacts" in r.url.path]
    assert ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1].removeprefix("bytes=").rstrip("-")) > 0
    assert device.slot("b") == UPDATE


def test_a_corrupted_partial_download_is_discarded_and_fetched_again(device: Device) -> None:
    offer_update(device)
    device.server.cut_download_after = 70_000
    device.run()
    staging = Path(device.state_dir) / "download.part"
    staging.write_bytes(b"\0" * staging.stat().st_size)  # garbage where the prefix was
    assert device.run() == "reboot"
    assert device.slot("b") == UPDATE


def test_status_reports_the_contract_fields(device: Device) -> None:
    offer_update(device)
    device.settle()
    data = status(device.state_dir)
    for key in (
        "active_slot",
        "booted_slot",
        "installed_version",
        "security_floor",
        "upgrade_available",
        "bootcount",
        "slots",
    ):
        assert key in data
    assert data["slots"]["b"] == {
        "version": "2.0.0",
        "sha256": sha(UPDATE),
        "state": "good",
        "security_version": 2,
        "size": len(UPDATE),
        "image_matches": True,
    }
    assert data["problems"] == []


def test_outside_the_maintenance_window_the_image_is_downloaded_but_not_installed(
    device: Device,
) -> None:
    offer_update(device)
    action = device.server.devices[device.device_id].actions[0]
    action.maintenance_window = "unavailable"
    assert device.run() == "ok"
    assert device.env().phase is Phase.DOWNLOADING and device.slot("b") == b""
    assert executions(device)[-1] == ("scheduled", "none")
    action.maintenance_window = "available"
    downloads = sum("artifacts" in r.url.path for r in device.server.requests)
    assert device.run() == "reboot"
    assert sum("artifacts" in r.url.path for r in device.server.requests) == downloads
    assert device.slot("b") == UPDATE


def test_a_cancelled_download_is_abandoned_and_the_running_slot_kept(device: Device) -> None:
    offer_update(device)
    device.server.cut_download_after = 70_000
    device.run()
    assert device.env().phase is Phase.DOWNLOADING
    record = device.server.devices[device.device_id]
    record.cancel = record.actions[0].id
    device.settle()
    env = device.env()
    assert env.active_slot == "a" and env.installed_version == "1.0.0"
    assert record.actions[0].status == "closed"
    assert ab_state_problems(env) == []


def test_a_cancel_that_arrives_after_the_switch_changes_nothing(device: Device) -> None:
    offer_update(device)
    assert device.run() == "reboot"
    device.boot()
    record = device.server.devices[device.device_id]
    record.cancel = record.actions[0].id
    device.settle()
    assert device.env().installed_version == "2.0.0"
    assert record.actions[0].result == "success"


def test_a_wrong_token_is_logged_and_retried_without_touching_the_slots(device: Device) -> None:
    offer_update(device)
    device.token = "wrong"
    agent = device.agent()
    delay = agent.run_once()
    assert 0 <= delay <= 3600
    assert any("401" in line for line in device.log)
    assert device.env().phase is Phase.IDLE and device.slot("b") == b""
