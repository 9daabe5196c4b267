"""Power cuts on forgetting storage, with the agent talking to a real ``patchgate serve``.

tests/unit/test_agent_power_cut_storage.py enumerates the cuts against a hawkBit double;
here the same enumeration runs against patchgate's own server on SQLite and PostgreSQL, so
what the device is told and what the server records come from the real DDI path. For each
crash point N of an install a new device is registered and offered the release; the power
goes out at its N-th crash point, the disk loses everything that was not synced
(tests/unit/agent_storage.py, mode ``synced-only``), the device boots and runs until it
settles, and then the device must be sound *and the server must say so*: the action closed
with the result that matches the image the device runs, the device's recorded version that
same image's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from patchgate.agent.core import Agent, AgentConfig, HealthCheck, RebootRequested
from patchgate.agent.ddi import DdiClient
from patchgate.agent.env_store import EnvStore
from patchgate.agent.io import DeviceIO, PowerCut
from patchgate.agent.runner import boot_device
from patchgate.agent.trust import TrustStore
from patchgate.domain import ab_state
from patchgate.domain.ab_state import BootEnv, Phase, SlotState
from tests.conftest import Env
from tests.factories import MadeRelease, make_release
from tests.support import LiveServer
from tests.unit.agent_storage import VolatileDisk

HARDWARE = "demo-gw-1"
FACTORY = b"factory image 1.0.0\n" * 2048
IMAGE = bytes(range(256)) * 400  # 100 KiB: the download crosses several chunks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unhealthy(env: BootEnv, slot_path: str) -> str | None:
    return "the application did not start" if env.installed_version == "2.0.0" else None


@dataclass
class LiveDevice:
    """A registered device with its own state folder; every HTTP request the agent makes
    is a crash point of the disk it runs with."""

    env: Env
    server: LiveServer
    folder: Path
    controller_id: str
    token: str
    root: bytes
    io: DeviceIO | None = None

    @property
    def state_dir(self) -> str:
        return str(self.folder / "state")

    def agent(self, health: HealthCheck | None) -> Agent:
        def checkpoint(request: httpx.Request) -> None:
            if self.io is not None:
                self.io.checkpoint(f"http {request.method} {request.url.path}")

        client = httpx.Client(event_hooks={"request": [checkpoint]}, timeout=30)
        config = AgentConfig(
            server=self.server.url,
            device_id=self.controller_id,
            token=self.token,
            state_dir=self.state_dir,
            hardware=HARDWARE,
            initial_version="1.0.0",
            bootlimit=2,
        )
        ddi = DdiClient(
            self.server.url,
            tenant="DEFAULT",
            controller_id=self.controller_id,
            token=self.token,
            client=client,
        )
        trust = TrustStore(self.state_dir, self.server.url, self.root, client)
        return Agent(config, ddi=ddi, trust=trust, io=self.io or DeviceIO(), health=health)

    def run(self, io: DeviceIO, health: HealthCheck | None) -> str:
        self.io = io
        agent = self.agent(health)
        try:
            agent.provision()
            agent.run_once()
        except RebootRequested:
            return "reboot"
        finally:
            agent.ddi.client.close()
        return "ok"

    def until_idle(self, io: DeviceIO, health: HealthCheck | None, passes: int = 8) -> None:
        """Run (rebooting when asked) until the env is idle with nothing left to report."""
        for _ in range(passes):
            if self.run(io, health) == "reboot":
                boot_device(self.state_dir, io)
                continue
            if self.boot_env().phase is Phase.IDLE and self.boot_env().report is None:
                return
        raise AssertionError(f"{self.controller_id} did not settle: {self.boot_env()}")

    def boot_env(self) -> BootEnv:
        return EnvStore(self.state_dir, DeviceIO()).load()

    def slot(self, name: str) -> bytes:
        return (self.folder / "state" / f"slot-{name}.img").read_bytes()


@pytest.fixture
def release(env: Env) -> MadeRelease:
    return make_release(
        env, "2.0.0", {"rootfs.img": IMAGE}, hardware=[HARDWARE], security_version=2
    )


@pytest.fixture
def devices(env: Env, server: LiveServer, tmp_path: Path) -> Any:
    root = httpx.get(f"{server.url}/tuf/metadata/1.root.json").content

    def make(name: str, release: MadeRelease) -> tuple[LiveDevice, int]:
        added = env.cli(
            "device", "add", name, "--hardware", HARDWARE, "--version", "1.0.0", "--json"
        )
        assert added.code == 0, added.stderr
        folder = tmp_path / name
        (folder / "state").mkdir(parents=True)
        (folder / "state" / "slot-a.img").write_bytes(FACTORY)
        device = LiveDevice(env, server, folder, name, added.json()["token"], root)
        device.run(DeviceIO(), None)  # provision, report the factory version; no offer yet
        assigned = env.cli("device", "assign", name, str(release.id), "--json")
        assert assigned.code == 0, assigned.stderr
        return device, int(assigned.json()["id"])

    return make


def server_view(
    env: Env, server: LiveServer, device: LiveDevice, action_id: int
) -> tuple[Any, Any]:
    with server.client(env.admin_token) as client:
        action = client.get(f"/api/v1/actions/{action_id}").json()
        shown = client.get(f"/api/v1/devices/{device.controller_id}").json()
    return action, shown


def assert_sound(
    env: Env, server: LiveServer, device: LiveDevice, action_id: int, release: str
) -> None:
    boot = device.boot_env()
    slot = boot.slots[boot.booted_slot]
    assert sha(device.slot(boot.booted_slot)) == slot.sha256, "the booted slot is not its image"
    assert slot.state is SlotState.GOOD
    assert ab_state.check_invariants(boot) == []
    expected = "1.0.0" if release == "unhealthy" else "2.0.0"
    assert boot.installed_version == expected
    assert {sha(FACTORY): "1.0.0", sha(IMAGE): "2.0.0"}[slot.sha256 or ""] == expected
    action, shown = server_view(env, server, device, action_id)
    assert action["active"] is False, action
    if expected == "2.0.0":
        assert (action["status"], action["result"]) == ("finished", "success"), action
    else:
        assert (action["status"], action["result"]) == ("error", "failure"), action
    assert shown["attributes"]["version"] == expected, shown["attributes"]


@pytest.mark.parametrize("release_kind", ["healthy", "unhealthy"])
def test_every_cut_on_forgetting_storage_against_the_real_server_leaves_device_and_server_agreeing(
    env: Env,
    server: LiveServer,
    release: MadeRelease,
    devices: Any,
    release_kind: str,
    backend: str,
) -> None:
    if backend == "postgresql" and release_kind == "unhealthy":
        pytest.skip(
            "the failed install's report takes the same DDI feedback path on both backends; "
            "the unhealthy enumeration runs on SQLite to keep the suite's time"
        )
    health = unhealthy if release_kind == "unhealthy" else None
    dry, dry_action = devices("count", release)
    counting = VolatileDisk(dry.state_dir)
    dry.until_idle(counting, health)
    assert_sound(env, server, dry, dry_action, release_kind)
    total = counting.calls
    assert any(label.startswith("write slot-b") for label in counting.labels)

    unsound: list[str] = []
    for crash_at in range(1, total + 1):
        device, action_id = devices(f"cut-{crash_at}", release)
        io = VolatileDisk(device.state_dir, crash_at)
        try:
            device.until_idle(io, health)
        except PowerCut:
            io.power_fail("synced-only")
        else:
            raise AssertionError(f"crash point {crash_at} was not reached")
        try:
            boot_device(device.state_dir, VolatileDisk(device.state_dir))
            device.until_idle(VolatileDisk(device.state_dir), health)
            assert_sound(env, server, device, action_id, release_kind)
        except Exception as exc:  # an agent that crashes on what it finds is a finding too
            unsound.append(f"cut {crash_at} at {io.labels[-1]}: {type(exc).__name__}: {exc}")
    assert unsound == [], "\n".join(unsound)
