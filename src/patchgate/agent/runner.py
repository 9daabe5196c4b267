"""The agent's entry points, independent of any CLI framework: run the loop, play the
bootloader, describe the state."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

from patchgate.agent.core import (
    SLOTS_FILE,
    Agent,
    AgentConfig,
    PassProblem,
    RebootRequested,
    builtin_health,
    command_health,
    sha256_of,
)
from patchgate.agent.ddi import DdiClient
from patchgate.agent.env_store import EnvStore
from patchgate.agent.errors import AgentSetupError, NoValidEnv, TrustError
from patchgate.agent.io import DeviceIO
from patchgate.agent.push import WakeSignal
from patchgate.agent.trust import TrustStore, check_trusted_root
from patchgate.domain import ab_state
from patchgate.domain.ab_state import BootEnv

__all__ = ["AgentSetupError", "boot_device", "build_agent", "run", "status"]


def boot_device(state_dir: str, io: DeviceIO | None = None) -> BootEnv:
    """Play the bootloader once: count the boot, pick the slot, fall back past the limit."""
    store = EnvStore(state_dir, io or DeviceIO())
    try:
        env = store.load()
    except NoValidEnv as exc:
        raise AgentSetupError(f"{state_dir}: {exc}; run the agent once to provision it") from exc
    step = ab_state.boot(env)
    for command in step.commands:
        if isinstance(command, ab_state.PersistEnv):
            store.save(command.env)
    return step.env


def status(state_dir: str, slot_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """The device's state as ``agent status --json`` prints it."""
    io = DeviceIO()
    store = EnvStore(state_dir, io)
    try:
        env = store.load()
    except NoValidEnv as exc:
        raise AgentSetupError(f"{state_dir}: {exc}") from exc
    paths = slot_paths or _recorded_slot_paths(state_dir)
    slots: dict[str, Any] = {}
    for name, slot in sorted(env.slots.items()):
        path = paths.get(name) or os.path.join(state_dir, f"slot-{name}.img")
        on_disk = sha256_of(io, path, slot.size) if slot.sha256 and os.path.exists(path) else None
        slots[name] = {
            "version": slot.version,
            "sha256": slot.sha256,
            "state": slot.state.value,
            "security_version": slot.security_version,
            "size": slot.size,
            "image_matches": on_disk == slot.sha256 if slot.sha256 else None,
        }
    return {
        "active_slot": env.active_slot,
        "booted_slot": env.booted_slot,
        "installed_version": env.installed_version,
        "security_floor": env.security_floor,
        "upgrade_available": env.upgrade_available,
        "bootcount": env.bootcount,
        "bootlimit": env.bootlimit,
        "phase": env.phase.value,
        "action_id": env.action_id,
        "pending_report": None
        if env.report is None
        else {"action_id": env.report.action_id, "outcome": env.report.outcome.value},
        "last_event": env.last_event,
        "slots": slots,
        "env_copies": [
            {"sequence": copy.sequence, "valid": copy.env is not None, "problem": copy.problem}
            for copy in store.copies()
        ],
        "problems": ab_state.check_invariants(env),
    }


def _recorded_slot_paths(state_dir: str) -> dict[str, str]:
    raw = DeviceIO.read_bytes(os.path.join(state_dir, SLOTS_FILE))
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def build_agent(
    config: AgentConfig,
    *,
    trusted_root_path: str,
    health_cmd: str | None,
    client: httpx.Client,
    log: Callable[[str], None],
) -> Agent:
    """Wire an agent; :class:`AgentSetupError` when the trusted root is missing or wrong."""
    try:
        with open(trusted_root_path, "rb") as handle:
            root = handle.read()
    except OSError as exc:
        raise AgentSetupError(f"cannot read trusted root {trusted_root_path}: {exc}") from exc
    try:
        check_trusted_root(root)
    except TrustError as exc:
        raise AgentSetupError(str(exc)) from exc
    os.makedirs(config.state_dir, exist_ok=True)
    for slot, path in sorted(config.slot_paths.items()):
        if not os.path.exists(path):
            raise AgentSetupError(f"--slot-{slot} {path} does not exist")
    io = DeviceIO()
    ddi = DdiClient(
        config.server,
        tenant=config.tenant,
        controller_id=config.device_id,
        token=config.token,
        client=client,
    )
    trust = TrustStore(config.state_dir, config.server, root, client)
    health = command_health(health_cmd) if health_cmd else builtin_health(io)
    agent = Agent(config, ddi=ddi, trust=trust, io=io, health=health, log=log)
    agent.provision()
    return agent


ONCE_EXIT = {None: 0, PassProblem.REFUSED: 2, PassProblem.UNAVAILABLE: 3}

# Polls caused by wake-ups come at most this often, whatever arrives on the wake topic.
MIN_WAKE_GAP = 1.0


def run(
    agent: Agent,
    *,
    once: bool,
    log: Callable[[str], None],
    wake: WakeSignal | None = None,
) -> int:
    """Run passes until stopped (or one pass with ``once``). Returns the exit code.

    Between passes the agent sleeps as the server asked; with ``wake`` (push over MQTT) a
    wake-up ends the sleep early, so the next poll comes at once."""
    rng = random.Random()  # noqa: S311 (jitter, not secrets)
    while True:
        started = time.monotonic()
        try:
            delay = agent.run_once()
        except RebootRequested as exc:
            command = list(agent.config.reboot_cmd)
            if not command:
                log(f"reboot required: {exc} (no --reboot-cmd; run `agent boot` then restart)")
                return 0
            log(f"rebooting: {exc}")
            subprocess.run(command, check=False)
            return 0
        if once:
            # Exit codes: 0 the pass reached the server, 2 the server refused (token,
            # device), 3 the server could not be reached (docs/agent.md).
            return ONCE_EXIT[agent.last_problem]
        # Jitter the server's sleep by up to 10% so polls of a fleet spread out.
        delay *= 1 + rng.uniform(-0.1, 0.1)
        if wake is None:
            time.sleep(delay)
        elif wake.wait(delay):
            time.sleep(max(0.0, MIN_WAKE_GAP - (time.monotonic() - started)))
