"""What a simulation run is asked to do: the fleet, the fault, the strategy (docs/contract.md
``patchgate simulate`` flags), and the fleet built from it once for every strategy."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from patchgate.domain.cohorts import (
    BUCKETS,
    CANARY_OPTIN_GROUP,
    CohortCut,
    cohort_buckets,
    first_admitting_stage,
)
from patchgate.domain.errors import InvalidInput

from .clients import BEFORE_BOOT_GROUP, CLIENT_KIND_MODES
from .devices import CUT_POINTS

FAULT_KINDS: Final = ("none", "boot", "crash")
STRATEGY_NAMES: Final = ("patchgate", "hawkbit", "aws")
MODES: Final = ("inprocess", "http")

# Group bits of a simulated device.
INTERNAL: Final = 1
QA: Final = 2
OPTIN: Final = 4
BEFORE_BOOT: Final = 8  # the device's client reports success before its reboot (.clients)
GROUP_BITS: Final = {
    "internal": INTERNAL,
    "qa": QA,
    CANARY_OPTIN_GROUP: OPTIN,
    BEFORE_BOOT_GROUP: BEFORE_BOOT,
}
GROUPS_OF: Final = tuple(
    frozenset(name for name, bit in GROUP_BITS.items() if mask & bit) for mask in range(16)
)

_FAULT = re.compile(r"^\s*(none|boot|crash)\s*(?::\s*([0-9]*\.?[0-9]+)\s*(%?))?\s*$")


@dataclass(frozen=True, slots=True)
class Fault:
    """The release's fault: ``none``; ``boot:P`` (fails to boot on a share P of devices);
    ``crash:P`` (crashes P times per device-day after a healthy boot)."""

    kind: str = "none"
    p: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Fault:
        """Parse ``none``, ``boot:P`` or ``crash:P`` (P a fraction, or a percentage with %)."""
        match = _FAULT.match(text)
        if not match:
            raise InvalidInput(f"fault: {text!r} is not none, boot:P or crash:P")
        kind, number, percent = match.groups()
        if kind == "none":
            if number:
                raise InvalidInput("fault: none takes no number")
            return cls()
        if not number:
            raise InvalidInput(f"fault: {kind} needs a rate, like {kind}:0.3")
        p = float(number) / (100 if percent else 1)
        if kind == "boot" and not 0 <= p <= 1:
            raise InvalidInput("fault: boot:P needs P between 0 and 1")
        if kind == "crash" and p < 0:
            raise InvalidInput("fault: crash:P needs P ≥ 0 crashes per device-day")
        return cls(kind, p)

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.p:g}"


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything a run depends on; every field is printed in the run's ``scenario``."""

    devices: int
    fault: Fault = field(default_factory=Fault)
    baseline_crash: float = 0.005
    power_loss: float = 0.0
    offline: float = 0.0
    offline_hours: float = 6.0
    slow_links: float = 0.05
    poll_minutes: float = 15.0
    poll_jitter: float = 0.1
    seed: int = 1
    deadline_hours: float = 72.0
    horizon_hours: float = 14 * 24.0
    stages: str | None = None
    optin: float = 0.1
    internal: int | None = None
    image_mb: float = 64.0
    tick_minutes: float = 1.0
    stop_after_stage: str | None = None
    stop_hours: float | None = None
    push: bool | None = None
    before_boot: float = 0.0
    client_kinds: str = "detect"
    # Whether the deadline planner is told the offline share (off: the plan before it was).
    plan_offline: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.devices < 1:
            problems.append("devices: at least 1")
        if self.client_kinds not in CLIENT_KIND_MODES:
            problems.append(f"client-kinds: {self.client_kinds!r} is not detect or configured")
        names = ("power_loss", "offline", "slow_links", "optin", "poll_jitter", "before_boot")
        for name in names:
            value = getattr(self, name)
            if not 0 <= value <= 1:
                problems.append(f"{name.replace('_', '-')}: must be between 0 and 1")
        if self.offline >= 1:
            problems.append("offline: must be less than 1 (some devices must come online)")
        if self.baseline_crash < 0:
            problems.append("baseline-crash: must not be negative")
        for name in ("poll_minutes", "offline_hours", "image_mb", "tick_minutes"):
            if getattr(self, name) <= 0:
                problems.append(f"{name.replace('_', '-')}: must be more than 0")
        if self.deadline_hours <= 0 or self.horizon_hours <= 0:
            problems.append("deadline and horizon: must be more than 0 hours")
        if problems:
            raise InvalidInput(problems[0], problems=problems)

    @property
    def bad_release(self) -> bool:
        """Whether the release under test is worse than the one it replaces."""
        if self.fault.kind == "boot":
            return self.fault.p > 0
        if self.fault.kind == "crash":
            return self.fault.p > self.baseline_crash
        return False

    @property
    def group_size(self) -> int:
        """Devices in each of the groups ``internal`` and ``qa``."""
        if self.internal is not None:
            return max(0, min(self.internal, self.devices // 4))
        # A maker's lab and QA bench: 20 devices each, at most 1 % of the fleet.
        return min(20, self.devices // 100)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["fault"] = str(self.fault)
        out["internal"] = self.group_size
        out["qa"] = self.group_size
        return out


@dataclass(frozen=True, slots=True)
class DeviceItems:
    """A fleet's per-device arrays as Python lists: reading one item of a list is several
    times cheaper than reading a NumPy scalar, and ``float(array[i])`` of a float32 array
    is the very value ``array.tolist()[i]`` holds."""

    mask: list[int]
    boot_fails: list[bool]
    cut_rollout: list[int]
    cut_revert: list[int]
    outage: list[float]
    download_minutes: list[float]


class Fleet:
    """The devices of a scenario, as arrays, shared by every strategy's run so that each
    strategy meets the same devices, groups, cohort buckets, faults and links."""

    def __init__(self, scenario: Scenario) -> None:
        n = scenario.devices
        self.n = n
        self.salt = f"sim-{scenario.seed}"
        rng = np.random.default_rng([scenario.seed, 0])
        # The controller ids, made once: every poll's DeviceFacts names its device.
        self.ids: list[str] = list(map(device_id, range(n)))
        self.bucket: npt.NDArray[np.int32] = np.array(
            cohort_buckets(self.salt, self.ids), dtype=np.int32
        )
        mask = np.zeros(n, dtype=np.uint8)
        size = scenario.group_size
        chosen = rng.choice(n, size=min(n, 2 * size), replace=False) if size else np.array([])
        mask[chosen[:size].astype(np.int64)] |= INTERNAL
        mask[chosen[size:].astype(np.int64)] |= QA
        mask[rng.random(n) < scenario.optin] |= OPTIN
        self.mask = mask
        self.boot_fails = rng.random(n) < (
            scenario.fault.p if scenario.fault.kind == "boot" else 0.0
        )
        # Power loss: which install of each device loses power, and at which point.
        self.cut_rollout = _cuts(rng, n, scenario.power_loss)
        self.cut_revert = _cuts(rng, n, scenario.power_loss)
        self.outage = rng.uniform(5.0, 60.0, n).astype(np.float32)
        slow = rng.random(n) < scenario.slow_links
        mb_per_s = np.where(slow, 0.032, rng.lognormal(math.log(1.0), 0.5, n))
        self.download_minutes = (scenario.image_mb / mb_per_s / 60.0).astype(np.float32)
        self.slow = slow
        # Drawn last, so that a fleet without before-boot clients is the fleet it was.
        if scenario.before_boot > 0:
            mask[rng.random(n) < scenario.before_boot] |= BEFORE_BOOT

    @functools.cached_property
    def items(self) -> DeviceItems:
        """The per-device arrays the event loop reads one item at a time, as lists (built
        once, shared by every strategy's run)."""
        return DeviceItems(
            self.mask.tolist(),
            self.boot_fails.tolist(),
            self.cut_rollout.tolist(),
            self.cut_revert.tolist(),
            self.outage.tolist(),
            self.download_minutes.tolist(),
        )

    @functools.cached_property
    def bucket_list(self) -> list[int]:
        """The cohort buckets as a list: each poll reads one device's (built once)."""
        buckets: list[int] = self.bucket.tolist()
        return buckets

    def group_count(self, bit: int) -> int:
        return int(np.count_nonzero(self.mask & bit))

    def stages_of(self, cuts: Sequence[CohortCut]) -> npt.NDArray[np.int8]:
        """Each device's stage, by :func:`first_admitting_stage` itself (-1 where no stage
        admits it). A device's stage depends only on its groups and bucket, so the rule is
        asked once per distinct pair (at most 16 × 10000), not once per device."""
        keys, inverse = np.unique(
            self.mask.astype(np.int32) * BUCKETS + self.bucket, return_inverse=True
        )
        stages = (
            first_admitting_stage(cuts, int(key) % BUCKETS, GROUPS_OF[int(key) // BUCKETS])
            for key in keys
        )
        by_key = np.fromiter(
            (-1 if stage is None else stage for stage in stages), dtype=np.int8, count=len(keys)
        )
        return by_key[inverse]


def device_id(index: int) -> str:
    """The controller id of simulated device ``index``."""
    return "sim-%07d" % index  # noqa: UP031 - a third cheaper than the f-string, made a million times


def _cuts(rng: np.random.Generator, n: int, p: float) -> npt.NDArray[np.uint8]:
    hit = rng.random(n) < p
    where = rng.integers(1, len(CUT_POINTS) + 1, n, dtype=np.uint8)
    return np.where(hit, where, 0).astype(np.uint8)
