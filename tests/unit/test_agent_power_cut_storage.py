"""Power cuts on storage that loses what was not synced, during the install and during the
recovery from an earlier cut.

tests/unit/test_agent_power_fail.py cuts the power at every crash point of an install on a
disk that keeps every write. Real media do not: :class:`VolatileDisk` forgets unsynced data
and unsynced directory entries (the modes are in tests/unit/agent_storage.py). Here, for
each crash point N of the install, the power goes out, the disk forgets, and then:

- the device boots and runs until it settles, and the device must be sound (the booted slot
  holds a known image byte for byte, the env is valid, the server is told the truth);
- again, but with a second cut at each crash point M of that recovery, with forgetting.

The last test removes each of the agent's fsyncs in turn and checks that the same
enumeration then finds a device that is not sound: the test can fail.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from patchgate.agent.core import HealthCheck
from patchgate.agent.io import PowerCut
from patchgate.agent.runner import boot_device
from patchgate.domain.ab_state import Phase
from tests.unit.agent_device import Device
from tests.unit.agent_storage import VolatileDisk
from tests.unit.test_agent_power_fail import (
    assert_sound,
    install_with,
    make_device,
    unhealthy,
)

RELEASES: dict[str, HealthCheck | None] = {"healthy": None, "unhealthy": unhealthy}

# Where a first cut is followed by a second one: at the points where what the medium holds
# changes (the syncs) and at the reboot. Between two of them a synced-only disk holds the
# same bytes, so a recovery from any cut in between starts from a medium already covered;
# only the server's view differs, which the single-cut tests enumerate point by point.
SYNC_POINTS = ("fsync", "reboot")


def recover(device: Device, io: VolatileDisk, health: HealthCheck | None) -> None:
    """Power returns: the bootloader runs, then the agent until nothing is left to do, all
    through ``io``."""
    boot_device(device.state_dir, io)
    for _ in range(12):
        if device.run(io=io, health=health) == "reboot":
            boot_device(device.state_dir, io)
            continue
        env = device.env()
        if env.phase is Phase.IDLE and device.server.open_action(device.device_id) is None:
            return
    raise AssertionError(f"device did not settle: {device.env()}")


def downloads_since(device: Device, since: int) -> int:
    """Artifact requests the device made after the ``since``-th request."""
    return sum("/artifacts/" in r.url.path for r in device.server.requests[since:])


def durable_download_point(labels: list[str]) -> int:
    """The crash point after which the finished download is on the medium, name and bytes:
    the folder's fsync that follows the download file's."""
    synced = labels.index("fsync download.part")
    assert labels[synced + 1] == "fsync dir state", labels[synced : synced + 2]
    return synced + 2


def cut_install(
    root: Path, crash_at: int, mode: str, health: HealthCheck | None, skip: tuple[str, ...]
) -> tuple[Device, str]:
    """Install until the power goes out at crash point ``crash_at``; the disk then forgets."""
    device = make_device(root)
    io = VolatileDisk(device.state_dir, crash_at, skip_fsync=skip)
    try:
        install_with(device, io, health)
    except PowerCut:
        io.power_fail(mode)
        return device, io.labels[-1]
    raise AssertionError(f"crash point {crash_at} was not reached")


def count_points(root: Path, run: Callable[[VolatileDisk], None]) -> int:
    """How many crash points ``run`` passes through on a disk that does not fail."""
    io = VolatileDisk(str(root))
    run(io)
    return io.calls


def enumerate_cuts(
    tmp_path: Path,
    release: str,
    mode: str,
    *,
    second_cuts: bool,
    skip: tuple[str, ...] = (),
) -> list[str]:
    """Every crash point of the install (with ``second_cuts``, each sync point of it, each
    followed by a cut at every crash point of the recovery); the list of cuts after which
    the device was not sound."""
    health = RELEASES[release]
    dry = make_device(tmp_path / "count")
    counting = VolatileDisk(dry.state_dir)
    install_with(dry, counting, health)
    total, kept_after = counting.calls, durable_download_point(counting.labels)
    shutil.rmtree(tmp_path / "count")
    unsound: list[str] = []
    for first in range(1, total + 1):
        if second_cuts and not counting.labels[first - 1].startswith(SYNC_POINTS):
            continue
        root = tmp_path / f"cut-{first}"
        device, where = cut_install(root, first, mode, health, skip)
        check = Check(release, health, kept=first > kept_after)
        if not second_cuts:
            unsound += check.recover(device, f"cut {first} at {where}")
            shutil.rmtree(root)
            continue
        snapshot = tmp_path / "after-first-cut"
        shutil.copytree(device.state_dir, snapshot)
        server_state = _server_state(device)
        recovery_points = count_points(
            Path(device.state_dir),
            lambda io, d=device: recover(d, io, health),  # type: ignore[misc]
        )
        for second in range(1, recovery_points + 1):
            _restore(device, snapshot, server_state)
            since = len(device.server.requests)
            io = VolatileDisk(device.state_dir, second, skip_fsync=skip)
            try:
                recover(device, io, health)
            except PowerCut:
                io.power_fail(mode)
            label = f"cut {first} at {where}, then {second} at {io.labels[-1]}"
            unsound += check.recover(device, label, since=since)
        shutil.rmtree(snapshot)
        shutil.rmtree(root)
    return unsound


@dataclass(frozen=True)
class Check:
    """How a recovery is judged: the device sound, and a download that had reached the
    medium before the first cut (``kept``) not fetched again."""

    release: str
    health: HealthCheck | None
    kept: bool

    def recover(self, device: Device, label: str, *, since: int | None = None) -> list[str]:
        since = len(device.server.requests) if since is None else since
        try:
            recover(device, VolatileDisk(device.state_dir), self.health)
            assert_sound(device, self.release)
            if self.kept:
                again = downloads_since(device, since)
                assert again == 0, f"the finished download was fetched again ({again} requests)"
        except Exception as exc:  # an agent that crashes on what it finds is a finding too
            return [f"{label}: {type(exc).__name__}: {exc}"]
        return []


def _server_state(device: Device) -> object:
    """What the server double knows of the device, to replay a recovery from the same cut."""
    return copy.deepcopy(device.server.devices[device.device_id])


def _restore(device: Device, snapshot: Path, server_state: object) -> None:
    shutil.rmtree(device.state_dir)
    shutil.copytree(snapshot, device.state_dir)
    device.server.devices[device.device_id] = copy.deepcopy(server_state)  # type: ignore[assignment]


@pytest.mark.parametrize("mode", ["synced-only", "writeback"])
@pytest.mark.parametrize("release", ["healthy", "unhealthy"])
def test_a_cut_that_loses_unsynced_writes_never_leaves_a_device_unsound(
    tmp_path: Path, release: str, mode: str
) -> None:
    assert enumerate_cuts(tmp_path, release, mode, second_cuts=False) == []


@pytest.mark.parametrize("release", ["healthy", "unhealthy"])
def test_a_second_cut_during_the_recovery_from_the_first_never_leaves_a_device_unsound(
    tmp_path: Path, release: str
) -> None:
    assert enumerate_cuts(tmp_path, release, "synced-only", second_cuts=True) == []


# Each of the agent's fsyncs, by the label of its crash point: the slot's data, the env
# file's data and its name (io.write_file_atomic), the finished download's data and name.
AGENT_FSYNCS = (
    "fsync slot-b",
    "fsync bootenv",
    "fsync dir state after fsync bootenv",
    "fsync download.part",
    "fsync dir state after fsync download.part",
)


@pytest.mark.parametrize("removed", AGENT_FSYNCS)
def test_removing_any_of_the_agents_fsyncs_makes_the_enumeration_find_an_unsound_device(
    tmp_path: Path, removed: str
) -> None:
    unsound = enumerate_cuts(tmp_path, "healthy", "synced-only", second_cuts=False, skip=(removed,))
    assert unsound, f"without {removed!r} every cut still recovered: the test could not fail"
