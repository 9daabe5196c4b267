"""A simulated device for the agent's tests: a state folder with two slot files, the real
agent, the real redundant env, and a power switch (a DeviceIO that cuts at the N-th call)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from patchgate.agent.core import Agent, AgentConfig, HealthCheck, RebootRequested
from patchgate.agent.ddi import DdiClient
from patchgate.agent.env_store import EnvStore
from patchgate.agent.io import DeviceIO, PowerCut, WriteHandle
from patchgate.agent.runner import boot_device
from patchgate.agent.trust import TrustStore
from patchgate.domain.ab_state import BootEnv, Phase
from tests.unit.agent_doubles import SERVER, HawkbitDouble, TufRepo

FACTORY = b"factory image v1\n" * 9000  # ~150 KB: several chunks per write
UPDATE = b"release image v2 with the fix\n" * 6000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CrashingIO(DeviceIO):
    """Counts every checkpoint; at call number ``crash_at`` the power goes out. A write
    that is cut is torn: the first half of its data reaches the disk."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at = crash_at
        self.calls = 0
        self.labels: list[str] = []

    def checkpoint(self, label: str) -> None:
        self.calls += 1
        self.labels.append(label)
        if self.crash_at is not None and self.calls == self.crash_at:
            raise PowerCut(label)

    def write(self, handle: WriteHandle, data: bytes) -> None:
        if self.crash_at is not None and self.calls + 1 == self.crash_at:
            self.calls += 1
            self.labels.append(f"torn write {os.path.basename(handle.path)}")
            self._write_all(handle, data[: len(data) // 2])
            raise PowerCut("torn write")
        super().write(handle, data)


@dataclass
class Device:
    """One device with its own state folder, talking to ``server``."""

    root: Path
    server: HawkbitDouble
    repo: TufRepo
    device_id: str = "dev-1"
    token: str = "token-dev-1"
    hardware: str | None = "board-a"
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state_dir = str(self.root / "state")
        os.makedirs(self.state_dir, exist_ok=True)
        (self.root / "state" / "slot-a.img").write_bytes(FACTORY)
        self.server.add_device(self.device_id, self.token)
        self.client = self.server.client()

    def config(self) -> AgentConfig:
        return AgentConfig(
            server=SERVER,
            device_id=self.device_id,
            token=self.token,
            state_dir=self.state_dir,
            hardware=self.hardware,
            initial_version="1.0.0",
            bootlimit=2,
        )

    def agent(self, io: DeviceIO | None = None, health: HealthCheck | None = None) -> Agent:
        io = io or DeviceIO()
        ddi = DdiClient(
            SERVER,
            tenant="DEFAULT",
            controller_id=self.device_id,
            token=self.token,
            client=self.client,
        )
        trust = TrustStore(self.state_dir, SERVER, self.repo.root_bytes(), self.client)
        agent = Agent(
            self.config(), ddi=ddi, trust=trust, io=io, health=health, log=self.log.append
        )
        agent.provision()
        return agent

    def run(self, io: DeviceIO | None = None, health: HealthCheck | None = None) -> str:
        """One agent pass; ``"reboot"`` when it asked for a restart."""
        try:
            self.agent(io, health).run_once()
        except RebootRequested:
            return "reboot"
        return "ok"

    def boot(self, io: DeviceIO | None = None) -> BootEnv:
        return boot_device(self.state_dir, io)

    def settle(self, health: HealthCheck | None = None, limit: int = 12) -> None:
        """Run and reboot as a real device would until nothing is left to do."""
        for _ in range(limit):
            if self.run(health=health) == "reboot":
                self.boot()
                continue
            env = self.env()
            if env.phase is Phase.IDLE and self.server.open_action(self.device_id) is None:
                return
        raise AssertionError(f"device did not settle: {self.env()}")

    def env(self) -> BootEnv:
        return EnvStore(self.state_dir, DeviceIO()).load()

    def slot(self, name: str) -> bytes:
        path = Path(self.state_dir) / f"slot-{name}.img"
        return path.read_bytes() if path.exists() else b""
