"""Cost of the campaign core's hot paths: ``decide`` per poll and gate evaluation.

Run: ``.venv/bin/python bench/campaign_core.py`` (prints microseconds per call).
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from patchgate.domain.campaigns import (
    RUNNING,
    CampaignPlan,
    Delivery,
    DeviceFacts,
    Progress,
    ReleaseRef,
    Selector,
    Snapshot,
    decide,
)
from patchgate.domain.executions import Counts, HealthTally
from patchgate.domain.gates import StageFigures, evaluate_gate
from patchgate.domain.ratelimit import RateLimit, TokenBucket
from patchgate.domain.stages import default_stages
from patchgate.domain.windows import MaintenanceWindow

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def main() -> None:
    stages = default_stages({"internal", "qa"})
    cuts = tuple(s.cut(fleet=1_000_000, optin=50_000, fill_from_others=False) for s in stages)
    release = ReleaseRef(2, "gw", "1.1", security_version=4)
    plan = CampaignPlan(
        id=1,
        salt="bench",
        release=release,
        selector=Selector("gw"),
        stages=stages,
        cuts=cuts,
        progress=Progress(state=RUNNING, stage_index=2, stage_started_at=T0),
        delivery=Delivery(
            window=MaintenanceWindow.parse("0 2 * * *,4h,UTC"), rate=RateLimit.per_min(1e9)
        ),
    )
    snap = Snapshot.build(1, [plan])
    n = 200_000
    devices = [
        DeviceFacts(f"dev-{i}", "gw", groups=frozenset(), installed_version="1.0") for i in range(n)
    ]
    tokens: dict[int, TokenBucket] = {}
    tracemalloc.start()
    start = time.perf_counter()
    offers = 0
    for i, device in enumerate(devices):
        d = decide(device, snap, T0 + timedelta(seconds=i // 100), tokens)
        if d.offer is not None and d.tokens is not None:
            offers += 1
            tokens[1] = d.tokens
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"decide: {elapsed / n * 1e6:.2f} µs per poll over {n} devices, {offers} offers, "
        f"peak extra memory {peak / 1e6:.1f} MB (under tracemalloc, which slows the loop)"
    )
    start = time.perf_counter()
    for i in range(n):
        decide(devices[i], snap, T0 + timedelta(seconds=i // 100))
    print(f"decide without tracemalloc or rate: {(time.perf_counter() - start) / n * 1e6:.2f} µs")
    gates = stages[1].gates
    figures = StageFigures(
        Counts(eligible=20_000, succeeded=9000, failed=20),
        T0,
        HealthTally(30, 20_000 * 24.0),
        HealthTally(490, 980_000 * 24.0),
    )
    m = 100_000
    start = time.perf_counter()
    for _ in range(m):
        evaluate_gate(gates, figures, T0 + timedelta(hours=30))
    print(f"evaluate_gate: {(time.perf_counter() - start) / m * 1e6:.2f} µs per evaluation")


if __name__ == "__main__":
    main()
