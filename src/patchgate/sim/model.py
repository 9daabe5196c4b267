"""The simulated campaign's fixed parts: the virtual clock, the product and its two
releases, the action keys, and patchgate's stage plan and the strategies' gate policies
(docs/simulator.md "What is simulated")."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from patchgate.domain.campaigns import ReleaseRef
from patchgate.domain.gate_power import power_warnings
from patchgate.domain.planning import FleetTiming, plan_schedule, stage_sizes
from patchgate.domain.stages import Stage, default_stages, parse_stages
from patchgate.sim.strategies import AwsJobsPolicy, HawkbitPolicy, PatchgatePolicy

from .scenario import INTERNAL, QA, Fleet, Scenario

T0: Final = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
PRODUCT: Final = "sim-device"
CAMPAIGN_ID: Final = 1
OLD = ReleaseRef(1, PRODUCT, "1.0.0", security_version=1)
NEW = ReleaseRef(2, PRODUCT, "1.1.0", security_version=2)
ROLLOUT_ACTION: Final = "c1-rollout"
REVERT_ACTION: Final = "c1-revert"
SAMPLE_MINUTES: Final = 10.0
# The timeline is sampled every tick until then (the first panel of ``--plot``).
EARLY_MINUTES: Final = 180.0
PUSH_LATENCY: Final = 1.0
# Push notices (docs/push.md; AWS IoT Jobs' notify-next); hawkBit's DDI is
# poll only.
PUSH_DEFAULT: Final = {"patchgate": True, "hawkbit": False, "aws": True}


def at(minutes: float) -> datetime:
    """The virtual clock: ``minutes`` after the release (the campaign starts then)."""
    global _last_at
    last = _last_at
    if minutes == last[0]:
        return last[1]
    # ``timedelta(0, 0, 0, 0, minutes)`` is ``timedelta(minutes=minutes)`` (its fifth
    # parameter, the same rounding) without parsing a keyword, and ``_T0_PLUS`` is
    # ``T0 +`` without the operator's dispatch: the same datetime, about a third cheaper.
    value = _T0_PLUS(timedelta(0, 0, 0, 0, minutes))
    _last_at = (minutes, value)  # one object: a reader never sees half an update
    return value


_T0_PLUS: Final = T0.__add__
# The last instant converted: a device's poll, offer and first events share one instant.
_last_at: tuple[float, datetime] = (math.nan, T0)


def build_stages(scenario: Scenario, fleet: Fleet) -> tuple[tuple[Stage, ...], dict[str, Any]]:
    """patchgate's stages for the scenario: the ``--stages`` spec or the guide's default
    plan, with soaks planned for the deadline (:func:`planning.plan_schedule`)."""
    groups = ("internal", "qa") if scenario.group_size else ()
    stages = parse_stages(scenario.stages, groups) if scenario.stages else default_stages(groups)
    sizes = stage_sizes(
        stages,
        fleet=fleet.n,
        group_sizes={"internal": fleet.group_count(INTERNAL), "qa": fleet.group_count(QA)},
    )
    # The planner is given the offline share the scenario's fleet has (docs/campaigns.md).
    timing = FleetTiming(
        poll_interval=timedelta(minutes=scenario.poll_minutes),
        offline_share=scenario.offline if scenario.plan_offline else 0.0,
        offline_hours=scenario.offline_hours,
    )
    schedule = plan_schedule(
        stages,
        start=T0,
        sizes=sizes,
        timing=timing,
        deadline=at(scenario.deadline_hours * 60),
    )
    plan = {
        "spec": ",".join(s.spec() for s in stages),
        "planned_soaks_hours": [round(s.total_seconds() / 3600, 3) for s in schedule.soaks],
        "plan_warnings": [*schedule.warnings, *power_warnings(schedule.apply(stages), sizes)],
        "planned_patched_at_deadline": schedule.expected_patched_at_deadline,
    }
    return schedule.apply(stages), plan


# The three policies of domain.strategies (each satisfies its GatePolicy protocol).
Policy = PatchgatePolicy | HawkbitPolicy | AwsJobsPolicy


def policy_for(name: str, stages: tuple[Stage, ...]) -> Policy:
    if name == "patchgate":
        return PatchgatePolicy([s.gates for s in stages])
    if name == "hawkbit":
        return HawkbitPolicy()
    if name == "aws":
        return AwsJobsPolicy()
    raise ValueError(name)
