"""The reference device agent against a real ``patchgate serve``, on SQLite and PostgreSQL.

The agent runs as its own process (``patchgate agent … --once``, ``agent boot``, ``agent
status --json``) with two files as its A/B slots, trusting only the server's
``1.root.json``. Releases are made by the real release service (lab trust mode signs them
at once) and offered with ``device assign``; :func:`offer` is the one place that decides how
a release reaches the device, so a campaign can take its place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from patchgate.services import releases as release_service
from tests.conftest import Env
from tests.factories import MadeRelease, make_release
from tests.support import CliResult, LiveServer, run_cli_process

HARDWARE = "demo-gw-1"
FACTORY = b"factory image 1.0.0\n" * 2048  # 40 KiB
GOOD = bytes(range(256)) * 400  # 100 KiB, so the download crosses many chunks
BAD = b"boots, then fails its health check\n" * 3000
EMPTY_B = b"slot b before any install"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class AgentDevice:
    """One device: registered on the server, with its state folder and two slot files."""

    server: LiveServer
    folder: Path
    controller_id: str
    token: str
    hardware: str = HARDWARE
    runs: list[CliResult] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.folder / "state"

    @property
    def slot_a(self) -> Path:
        return self.folder / "a.img"

    @property
    def slot_b(self) -> Path:
        return self.folder / "b.img"

    def _cli(self, *args: str) -> CliResult:
        result = run_cli_process(list(args), {}, timeout=60)
        self.runs.append(result)
        return result

    def run(self, *extra: str) -> CliResult:
        """One pass of the agent (``--once``); it must not fail."""
        result = self._cli(
            "agent",
            "--server",
            self.server.url,
            "--device-id",
            self.controller_id,
            "--token",
            self.token,
            "--state-dir",
            str(self.state),
            "--trusted-root",
            str(self.folder / "root.json"),
            "--slot-a",
            str(self.slot_a),
            "--slot-b",
            str(self.slot_b),
            "--hardware",
            self.hardware,
            "--initial-version",
            "1.0.0",
            "--once",
            *extra,
        )
        assert result.code == 0, result.stderr
        return result

    def boot(self) -> dict[str, Any]:
        result = self._cli("agent", "boot", "--state-dir", str(self.state), "--json")
        assert result.code == 0, result.stderr
        return result.json()

    def status(self) -> dict[str, Any]:
        result = self._cli("agent", "status", "--state-dir", str(self.state), "--json")
        assert result.code == 0, result.stderr
        return result.json()


def add_device(env: Env, server: LiveServer, folder: Path, cid: str) -> AgentDevice:
    result = env.cli("device", "add", cid, "--hardware", HARDWARE, "--version", "1.0.0", "--json")
    assert result.code == 0, result.stderr
    folder.mkdir()
    root = httpx.get(f"{server.url}/tuf/metadata/1.root.json")
    assert root.status_code == 200
    (folder / "root.json").write_bytes(root.content)
    (folder / "a.img").write_bytes(FACTORY)
    (folder / "b.img").write_bytes(EMPTY_B)
    return AgentDevice(server, folder, cid, result.json()["token"])


def offer(env: Env, device: AgentDevice, release: MadeRelease) -> int:
    """Offer ``release`` to the device directly (``device assign``); the DDI action's id."""
    result = env.cli("device", "assign", device.controller_id, str(release.id), "--json")
    assert result.code == 0, result.stderr
    return int(result.json()["id"])


def roll_out(env: Env, release: MadeRelease) -> str:
    """Start a one-stage campaign for ``release``; the device gets it at its next poll."""
    created = env.cli("campaign", "create", str(release.id), "--stages", "100", "--json")
    assert created.code == 0, created.stderr
    campaign_id = str(created.json()["id"])
    started = env.cli("campaign", "start", campaign_id)
    assert started.code == 0, started.stderr
    return campaign_id


def campaign_counts(env: Env, campaign_id: str) -> dict[str, int]:
    status = env.cli("campaign", "status", campaign_id, "--json")
    assert status.code == 0, status.stderr
    return dict(status.json()["counts"])


def only_action(env: Env, cid: str) -> int:
    """The id of the device's one action (created by the campaign at its poll)."""
    actions = device_show(env, cid)["actions"]
    assert len(actions) == 1, actions
    return int(actions[0]["id"])


def action(server: LiveServer, env: Env, action_id: int) -> dict[str, Any]:
    with server.client(env.admin_token) as client:
        answer = client.get(f"/api/v1/actions/{action_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def details_of(action_body: dict[str, Any]) -> str:
    return "\n".join(
        detail for event in action_body["events"] for detail in event.get("details") or []
    )


def device_show(env: Env, cid: str) -> dict[str, Any]:
    result = env.cli("device", "show", cid, "--json")
    assert result.code == 0, result.stderr
    return result.json()


@pytest.fixture
def device(env: Env, server: LiveServer, tmp_path: Path) -> AgentDevice:
    return add_device(env, server, tmp_path / "sensor-1", "sensor-1")


@pytest.fixture
def good(env: Env) -> MadeRelease:
    return make_release(
        env, "2.0.0", {"rootfs-2.0.0.img": GOOD}, hardware=[HARDWARE], security_version=2
    )


# --- a good release ------------------------------------------------------------------------


def test_a_good_release_is_downloaded_verified_written_booted_committed_and_reported(
    env: Env, server: LiveServer, device: AgentDevice, good: MadeRelease
) -> None:
    campaign_id = roll_out(env, good)

    device.run()  # polls, verifies with TUF, downloads, writes slot b, switches
    action_id = only_action(env, "sensor-1")
    # TUF walked from the provisioned 1.root.json to the server's current metadata.
    tuf = device.state / "tuf"
    assert {"root.json", "timestamp.json", "snapshot.json", "targets.json"} <= {
        p.name for p in tuf.iterdir()
    }
    targets = json.loads((tuf / "targets.json").read_text())["signed"]["targets"]
    signed = targets[str(good.artifacts["rootfs-2.0.0.img"]["tuf_target"])]
    assert signed["hashes"]["sha256"] == sha256(GOOD)
    assert signed["custom"]["version"] == "2.0.0"
    assert signed["custom"]["hardware"] == [HARDWARE]
    before_boot = device.status()
    assert before_boot["active_slot"] == "b"
    assert before_boot["booted_slot"] == "a"
    assert before_boot["upgrade_available"] is True
    assert device.slot_b.read_bytes()[: len(GOOD)] == GOOD
    assert device.slot_a.read_bytes() == FACTORY
    assert action(server, env, action_id)["active"] is True  # not closed before the reboot
    # The server asked for the attributes on first contact (DDI configData link).
    attributes = device_show(env, "sensor-1")["attributes"]
    assert attributes["version"] == "1.0.0" and attributes["slot"] == "a"

    booted = device.boot()
    assert booted["booted_slot"] == "b"
    assert booted["phase"] == "trial-boot"

    device.run()  # health check (built-in: the slot's hash), commit, report
    status = device.status()
    assert status["installed_version"] == "2.0.0"
    assert status["active_slot"] == status["booted_slot"] == "b"
    assert status["upgrade_available"] is False
    assert status["slots"]["b"]["state"] == "good"
    assert status["slots"]["b"]["sha256"] == sha256(GOOD)
    assert status["slots"]["b"]["image_matches"] is True
    assert status["pending_report"] is None
    assert status["problems"] == []

    closed = action(server, env, action_id)
    assert closed["active"] is False
    assert closed["status"] == "finished"
    assert closed["result"] == "success"
    executions = [e["execution"] for e in closed["events"]]
    assert {"download", "downloaded", "proceeding", "closed"} <= set(executions)
    assert "running version 2.0.0" in details_of(closed)
    shown = device_show(env, "sensor-1")
    assert shown["installed_version"] == "2.0.0"
    assert shown["attributes"]["version"] == "2.0.0" and shown["attributes"]["slot"] == "b"
    counts = campaign_counts(env, campaign_id)
    assert counts["succeeded"] == 1
    assert counts["failed"] == counts["reverted"] == 0


# --- health telemetry ----------------------------------------------------------------------


def test_the_agent_reports_health_after_boot_and_the_server_keeps_it_per_device_and_release(
    env: Env, server: LiveServer, device: AgentDevice, good: MadeRelease
) -> None:
    offer(env, device, good)
    device.run()
    device.boot()
    device.run()  # commit and report
    device.run()  # a pass on the committed image: telemetry tied to 2.0.0

    with server.client(env.admin_token) as client:
        shown = client.get("/api/v1/devices/sensor-1").json()
        per_release = client.get(f"/api/v1/releases/{good.id}/health").json()
    reports = shown["health"]
    assert reports, "the server stored no health report for the device"
    on_new = [r for r in reports if r["running_version"] == "2.0.0"]
    assert on_new, reports
    newest = on_new[0]
    assert newest["release_id"] == good.id
    assert newest["boot_count"] is not None
    assert newest["uptime_s"] is not None and newest["uptime_s"] >= 0
    assert newest["crash_count"] == 0
    assert newest["metrics"]["booted_slot"] == "b"
    assert per_release["reports"] >= 1
    assert per_release["devices"] == 1
    assert per_release["crash_count"] == 0


# --- an unhealthy release ------------------------------------------------------------------


def test_a_release_failing_its_health_check_is_reverted_and_reported_as_failure(
    env: Env, server: LiveServer, device: AgentDevice
) -> None:
    bad = make_release(env, "2.1.0", {"rootfs-2.1.0.img": BAD}, hardware=[HARDWARE])
    campaign_id = roll_out(env, bad)

    device.run()
    action_id = only_action(env, "sensor-1")
    assert device.slot_b.read_bytes()[: len(BAD)] == BAD  # the other slot was written
    assert device.boot()["booted_slot"] == "b"
    device.run("--health-cmd", "false")  # the trial fails: revert to a

    after_revert = device.boot()  # the "reboot" into the known-good slot
    assert after_revert["active_slot"] == after_revert["booted_slot"] == "a"
    assert after_revert["slots"]["b"]["state"] == "bad"
    assert after_revert["slots"]["a"]["state"] == "good"
    assert after_revert["pending_report"]["outcome"] == "failure"
    device.run("--health-cmd", "false")  # delivers the report from the slot it keeps
    status = device.status()
    assert status["active_slot"] == status["booted_slot"] == "a"
    assert status["installed_version"] == "1.0.0"
    assert status["slots"]["a"]["image_matches"] is True
    assert device.slot_a.read_bytes() == FACTORY  # the known-good slot is byte-identical
    assert status["problems"] == []

    closed = action(server, env, action_id)
    assert closed["active"] is False
    assert closed["result"] == "failure"
    text = details_of(closed)
    assert "health check failed" in text
    assert "running version 1.0.0" in text
    assert device_show(env, "sensor-1")["installed_version"] == "1.0.0"
    counts = campaign_counts(env, campaign_id)
    assert counts["failed"] + counts["reverted"] == 1  # the campaign counts the revert
    assert counts["succeeded"] == 0


# --- refusals ------------------------------------------------------------------------------


def test_a_tampered_artifact_is_refused_before_a_byte_reaches_a_slot(
    env: Env, server: LiveServer, device: AgentDevice, good: MadeRelease
) -> None:
    stored_sha = str(good.artifacts["rootfs-2.0.0.img"]["sha256"])
    store = env.ctx.artifacts
    assert store is not None
    path = store.local_path(stored_sha)
    assert path is not None and path.is_file()
    tampered = bytearray(path.read_bytes())
    tampered[1000] ^= 0xFF
    path.write_bytes(bytes(tampered))
    action_id = offer(env, device, good)

    device.run()

    assert device.slot_b.read_bytes() == EMPTY_B
    assert device.slot_a.read_bytes() == FACTORY
    status = device.status()
    assert status["active_slot"] == status["booted_slot"] == "a"
    assert status["upgrade_available"] is False
    closed = action(server, env, action_id)
    assert closed["active"] is False
    assert closed["result"] == "failure"
    assert "signed target" in details_of(closed)


def test_a_release_for_other_hardware_is_refused_and_reported(
    env: Env, server: LiveServer, device: AgentDevice, good: MadeRelease
) -> None:
    action_id = offer(env, device, good)
    device.hardware = "other-board"

    device.run()

    assert device.slot_b.read_bytes() == EMPTY_B
    assert device.status()["active_slot"] == "a"
    closed = action(server, env, action_id)
    assert closed["result"] == "failure"
    assert "hardware other-board" in details_of(closed)


def test_a_release_below_the_security_floor_is_refused_and_reported(
    env: Env, server: LiveServer, device: AgentDevice, good: MadeRelease
) -> None:
    older = make_release(
        env, "1.5.0", {"rootfs-1.5.0.img": BAD}, hardware=[HARDWARE], security_version=1
    )
    offer(env, device, good)
    device.run()
    device.boot()
    device.run()
    # What the campaign engine does when the campaign for 2.0.0 completes: raise the floor
    # (lab trust mode re-signs the targets metadata carrying it).
    with env.ctx.uow() as uow:
        release_service.raise_floor(
            env.ctx, uow, product="Demo Gateway", security_version=2, actor="test"
        )
        uow.commit()
    device.run()  # learns the floor from the signed metadata of the image it runs
    assert device.status()["security_floor"] == 2
    slot_a_before = device.slot_a.read_bytes()

    action_id = offer(env, device, older)
    device.run()

    assert device.slot_a.read_bytes() == slot_a_before
    status = device.status()
    assert status["active_slot"] == "b"
    assert status["installed_version"] == "2.0.0"
    closed = action(server, env, action_id)
    assert closed["result"] == "failure"
    assert "below the device's security floor 2" in details_of(closed)
