"""Power loss at every crash point of a deterministic install, enumerated, not sampled.

The install runs the whole life of an update: poll, verify, download, write the inactive
slot, switch, reboot (the bootloader), health check, commit (or, for a release that fails
its health check, revert), report. Every write, fsync, rename, folder fsync, unlink,
feedback, reboot and HTTP request is a checkpoint of the device's I/O interface; for each
N the power goes out at the N-th one (a cut write is torn in half). Then the device boots
again and runs until it settles, and we check:

- the booted slot holds a known image, byte for byte (hash), and the env says so;
- the env is consistent (a valid copy, every safety invariant holds);
- what the device reports to the server matches what it runs;
- zero bricked devices.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from patchgate.agent.core import HealthCheck
from patchgate.agent.env_store import EnvStore, decode
from patchgate.agent.io import DeviceIO, PowerCut
from patchgate.agent.runner import boot_device
from patchgate.domain import ab_state
from patchgate.domain.ab_state import BootEnv, Phase, SlotState
from tests.unit.agent_device import FACTORY, UPDATE, CrashingIO, Device, sha
from tests.unit.agent_doubles import HawkbitDouble, TufRepo

TARGET = "firmware/2.0.0/image.img"
KNOWN = {sha(FACTORY): "1.0.0", sha(UPDATE): "2.0.0"}


def make_device(root: Path) -> Device:
    repo = TufRepo()
    repo.add_target(TARGET, UPDATE, version="2.0.0", security_version=2, hardware="board-a")
    server = HawkbitDouble(repo)
    device = Device(root, server, repo)
    server.offer(device.device_id, "2.0.0", UPDATE, tuf_target=TARGET)
    device.agent()  # provision the env before the power games start
    return device


def unhealthy(env: BootEnv, slot_path: str) -> str | None:
    """The health check of a release that does not work on this device."""
    return "the application did not start" if env.installed_version == "2.0.0" else None


def install_with(device: Device, io: CrashingIO, health: HealthCheck | None = None) -> None:
    """The deterministic install: every step goes through ``io``, HTTP requests included."""

    def on_request(request: httpx.Request) -> None:
        io.checkpoint(f"http {request.method} {request.url.path}")

    device.server.hook = on_request
    try:
        for _ in range(6):
            if device.run(io=io, health=health) == "reboot":
                boot_device(device.state_dir, io)
                continue
            if device.env().phase is Phase.IDLE:
                return
    finally:
        device.server.hook = None


def assert_booted_image_is_known(device: Device) -> None:
    env = device.env()
    image = device.slot(env.booted_slot)
    slot = env.slots[env.booted_slot]
    assert sha(image) == slot.sha256, f"slot {env.booted_slot} does not hold what the env says"
    assert slot.sha256 in KNOWN
    assert slot.state is SlotState.GOOD or (
        env.upgrade_available and env.slots[ab_state.other(env.booted_slot)].state is SlotState.GOOD
    )


def assert_sound(device: Device, release: str) -> None:
    """What a regulator and the fleet operator need after any sequence of cuts: a known
    image booted, a valid env, and the server told the truth."""
    assert_booted_image_is_known(device)
    env = device.env()
    assert ab_state.check_invariants(env) == []
    assert env.phase is Phase.IDLE and env.report is None
    record = device.server.devices[device.device_id]
    assert record.config_data.get("version") == env.installed_version
    action = record.actions[0]
    assert action.status == "closed"
    # The report tells the truth: success only if the device runs the release.
    assert (action.result == "success") == (env.installed_version == "2.0.0")
    if release == "unhealthy":
        assert env.installed_version == "1.0.0" and device.slot("a") == FACTORY
    assert KNOWN[env.slots[env.booted_slot].sha256 or ""] == env.installed_version


@pytest.mark.parametrize("release", ["healthy", "unhealthy"])
def test_power_loss_at_every_crash_point_never_bricks_the_device(
    tmp_path: Path, release: str
) -> None:
    health = unhealthy if release == "unhealthy" else None
    expected = "1.0.0" if release == "unhealthy" else "2.0.0"
    # A dry run counts the crash points of the whole install.
    dry = make_device(tmp_path / "count")
    counting = CrashingIO()
    install_with(dry, counting, health)
    assert dry.env().installed_version == expected
    total = counting.calls
    labels = counting.labels
    assert total > 40, labels
    assert any(label.startswith("write slot-b") for label in labels)
    assert any(label.startswith("rename bootenv") for label in labels)

    bricked: list[str] = []
    for crash_at in range(1, total + 1):
        root = tmp_path / f"crash-{crash_at}"
        device = make_device(root)
        io = CrashingIO(crash_at)
        try:
            install_with(device, io, health)
        except PowerCut:
            pass
        else:
            raise AssertionError(f"crash point {crash_at} ({labels[crash_at - 1]}) was not hit")
        where = io.labels[-1]
        # Power returns: the bootloader runs first.
        device.boot()
        try:
            assert_booted_image_is_known(device)
            device.settle(health)
            assert_sound(device, release)
        except AssertionError as exc:
            bricked.append(f"crash {crash_at} at {where}: {exc}")
        shutil.rmtree(root)
    assert bricked == [], "\n".join(bricked)


def test_a_torn_env_write_at_any_byte_leaves_the_previous_env_in_force(tmp_path: Path) -> None:
    device = make_device(tmp_path)
    store = EnvStore(device.state_dir, DeviceIO())
    before = store.load()
    step = ab_state.begin_download(
        before, ab_state.Offer("1", "2.0.0", sha(UPDATE), len(UPDATE), 2, TARGET)
    )
    store.save(step.env)
    copies = store.copies()
    newest = max(copies, key=lambda c: c.sequence)
    path = store.paths()[newest.index]
    full = Path(path).read_bytes()
    assert decode(newest.index, full).env == step.env
    for cut in range(len(full)):
        Path(path).write_bytes(full[:cut])
        assert store.load() == before, f"torn at byte {cut}"
        env = boot_device(device.state_dir)
        assert env.booted_slot == "a"
        assert sha(device.slot("a")) == env.slots["a"].sha256
        assert store.load() == before  # booting changed nothing it had no reason to


def test_a_flipped_bit_in_the_newest_env_copy_falls_back_to_the_other(tmp_path: Path) -> None:
    device = make_device(tmp_path)
    store = EnvStore(device.state_dir, DeviceIO())
    before = store.load()
    store.save(ab_state.raise_floor(before, 0).env)  # same env, next sequence
    newest = max(store.copies(), key=lambda c: c.sequence)
    path = Path(store.paths()[newest.index])
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    assert decode(newest.index, bytes(data)).problem == "checksum mismatch"
    assert store.load() == before
