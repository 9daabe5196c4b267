"""What a simulated run measured: the fleet over time and the ``simulate --json`` figures
(docs/simulator.md "The figures"), built from a finished :class:`~.engine.Run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .model import OLD
from .scenario import device_id
from .strategies import AwsJobsPolicy, HawkbitPolicy

if TYPE_CHECKING:
    from .engine import Run


def flags(values: bytearray) -> npt.NDArray[np.bool_]:
    """A run's per-device flags (a bytearray of 0 and 1) as a NumPy view, without a copy."""
    return np.frombuffer(values, dtype=np.bool_)


@dataclass
class Timeline:
    """The fleet over time, sampled every ``SAMPLE_MINUTES`` (for ``--plot``)."""

    minutes: list[float] = field(default_factory=list)
    on_new: list[int] = field(default_factory=list)
    installing: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)


@dataclass
class RunResult:
    """What a run measured (docs/contract.md ``simulate --json`` fields and more)."""

    strategy: str
    devices: int
    release_bad: bool
    installed: int
    exposed: int
    bricked: int
    reverted: int
    ab_reverted: int
    revert_installed: int
    exposed_on_known_good: int
    halted: bool
    halted_at_stage: str | None
    halted_at_stage_index: int | None
    minutes_to_halt: float | None
    halt_reason: str | None
    completed: bool
    minutes_to_complete: float | None
    patched_at_deadline: int
    patched_fraction_at_deadline: float
    minutes_to_95pct: float | None
    false_halt: bool
    offline_at_deadline: int
    unpatched_at_deadline: int
    unpatched_offline_at_deadline: int
    unpatched_offline_ids: list[str]
    power_cuts: int
    counts: dict[str, int]
    stages: list[dict[str, Any]]
    settings: dict[str, Any]
    simulated_minutes: float
    timeline: Timeline
    deadline_minutes: float
    # The failure rate at which the strategy's gate stops the rollout (its first stage's).
    failure_threshold: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``simulate --json`` object of one strategy (timeline left out)."""
        out = {k: v for k, v in self.__dict__.items() if k != "timeline"}
        out["exposed_fraction"] = round(self.exposed / self.devices, 6)
        out["every_exposed_on_known_good"] = self.exposed_on_known_good == self.exposed
        out["patched_fraction_at_deadline"] = round(self.patched_fraction_at_deadline, 6)
        for key in ("minutes_to_halt", "minutes_to_95pct", "minutes_to_complete"):
            if out[key] is not None:
                out[key] = round(out[key], 1)
        out["simulated_minutes"] = round(self.simulated_minutes, 1)
        order = [
            "strategy",
            "devices",
            "exposed",
            "exposed_fraction",
            "bricked",
            "reverted",
            "halted",
            "halted_at_stage",
            "minutes_to_halt",
            "patched_fraction_at_deadline",
            "minutes_to_95pct",
            "false_halt",
            "settings",
        ]
        return {**{k: out[k] for k in order}, **{k: v for k, v in out.items() if k not in order}}


def deadline_report(run: Run, t: float) -> dict[str, Any]:
    """Who is patched and who is offline at minute ``t`` (the deadline): each device's
    offline state drawn from its Markov chain at that instant (devices mid-install are online)."""
    patched = flags(run.on_new).copy()
    busy = np.zeros(run.fleet.n, dtype=np.bool_)
    if run.sc.offline > 0:
        busy[[device for device, execution in enumerate(run.open) if execution is not None]] = True
    offline = run.offline.offline_at(t, busy, run.nrng)
    unpatched_offline = np.flatnonzero(offline & ~patched)
    return {
        "patched": int(np.count_nonzero(patched)),
        "offline": int(np.count_nonzero(offline)),
        "unpatched": int(run.fleet.n - np.count_nonzero(patched)),
        "unpatched_offline": len(unpatched_offline),
        "ids": [device_id(int(i)) for i in unpatched_offline[:1000]],
    }


def build_result(run: Run, t: float) -> RunResult:
    """The run's figures once it stopped at minute ``t``."""
    n = run.fleet.n
    assert run.at_deadline is not None
    # Bricked: a final env that breaks a safety invariant, or a sound-less env at a cut.
    env = np.asarray(run.env, dtype=np.int32)
    unsound_env = np.array([not run.table.sound(i) for i in range(len(run.table.envs))])
    bricked = int(np.count_nonzero(unsound_env[env] | flags(run.unsound)))
    old_env = np.array([run.table.version(i) == OLD.version for i in range(len(run.table.envs))])
    on_old = old_env[env]
    exposed_flags = flags(run.exposed)
    exposed = int(np.count_nonzero(exposed_flags))
    back = int(np.count_nonzero(exposed_flags & on_old))
    recovered = flags(run.ab_reverted) | flags(run.revert_ok)
    total = run.total()
    halted = run.halted_at is not None
    stage_rows = []
    for index, stage in enumerate(run.stages):
        stage_rows.append({"name": stage.name, **run.counts(index).to_json()})
    settings = {**run.policy.settings(), **run.plan_info}
    if run.strategy == "aws":
        settings["target"] = "one job for the whole fleet"
    settings["push"] = run.push
    settings["recovery"] = "campaign revert after the halt (same for every strategy)"
    deadline = run.at_deadline
    return RunResult(
        strategy=run.strategy,
        devices=n,
        release_bad=run.sc.bad_release,
        installed=run.n_installed,
        exposed=exposed,
        bricked=bricked,
        reverted=int(np.count_nonzero(recovered & flags(run.installed))),
        ab_reverted=int(np.count_nonzero(flags(run.ab_reverted))),
        revert_installed=int(np.count_nonzero(flags(run.revert_ok))),
        exposed_on_known_good=back,
        halted=halted,
        halted_at_stage=None if run.halt_stage is None else run.stages[run.halt_stage].name,
        halted_at_stage_index=run.halt_stage,
        minutes_to_halt=run.halted_at,
        halt_reason=run.halt_reason,
        completed=run.completed_at is not None and not halted,
        minutes_to_complete=None if halted else run.completed_at,
        patched_at_deadline=deadline["patched"],
        patched_fraction_at_deadline=deadline["patched"] / n,
        minutes_to_95pct=run.reached_95,
        false_halt=halted and not run.sc.bad_release,
        offline_at_deadline=deadline["offline"],
        unpatched_at_deadline=deadline["unpatched"],
        unpatched_offline_at_deadline=deadline["unpatched_offline"],
        unpatched_offline_ids=deadline["ids"],
        power_cuts=run.power_cuts,
        counts=total.to_json(),
        stages=stage_rows,
        settings=settings,
        simulated_minutes=t,
        timeline=run.timeline,
        deadline_minutes=run.deadline,
        failure_threshold=failure_threshold(run),
    )


def failure_threshold(run: Run) -> float:
    """The failure rate the strategy's gate halts at: patchgate's stage limit (of the stage
    that halted, else the first), hawkBit's error threshold, AWS IoT Jobs' abort share."""
    policy = run.policy
    if isinstance(policy, HawkbitPolicy):
        return policy.error_threshold
    if isinstance(policy, AwsJobsPolicy):
        return policy.abort_threshold
    stage = run.halt_stage if run.halt_stage is not None else 0
    return run.stages[stage].gates.max_failure_rate
