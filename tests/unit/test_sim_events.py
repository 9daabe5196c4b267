"""The simulator's event calendar hands events out in the order one heap of them all would:
by time, then device, then kind, with events pushed while it is being drained (a device's
next step, sometimes at the very instant, sometimes buckets later) and batches of polls
merged in."""

from __future__ import annotations

import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from patchgate.sim.events import BUCKET_MINUTES, KINDS, POLL, EventQueue

times = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
# (time, device, kind, delay of the follow-up it causes when drained, or None)
pushes = st.lists(
    st.tuples(
        times,
        st.integers(0, 40),
        st.integers(1, 4),
        st.none() | st.sampled_from([0.0, BUCKET_MINUTES / 3, BUCKET_MINUTES, 2.5, 30.0]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    pushes=pushes,
    batch=st.lists(st.tuples(times, st.integers(0, 40)), max_size=20),
    ticks=st.lists(st.floats(0.0, 80.0, allow_nan=False), min_size=1, max_size=6),
)
def test_events_leave_in_the_order_of_one_heap(
    pushes: list[tuple[float, int, int, float | None]],
    batch: list[tuple[float, int]],
    ticks: list[float],
) -> None:
    queue = EventQueue()
    heap: list[tuple[float, int]] = []
    follow: dict[tuple[float, int], float | None] = {}
    for t, device, kind, delay in pushes:
        queue.push(t, device, kind)
        heapq.heappush(heap, (t, device * KINDS + kind))
        follow[(t, device * KINDS + kind)] = delay
    polls: list[tuple[float, int]] = []
    if batch:
        queue.add_polls(np.array([t for t, _ in batch]), np.array([d for _, d in batch]))
        polls = sorted(batch, key=lambda item: item[0])
    # Each pushed event causes its follow-up once (a follow-up causes none).
    mine = dict(follow)
    got: list[tuple[float, int, int]] = []
    wanted: list[tuple[float, int, int]] = []
    for until in sorted(ticks):
        while (due := queue.pop_due(until)) is not None:
            got.append(due)
            t, device, kind = due
            delay = mine.pop((t, device * KINDS + kind), None)
            if kind != POLL and delay is not None:
                queue.push(t + delay, device, 1)
        # The reference: a heap and the sorted batch, a single event first on a tie.
        while True:
            head = heap[0][0] if heap else float("inf")
            if polls and polls[0][0] < head:
                if polls[0][0] > until:
                    break
                t, device = polls.pop(0)
                wanted.append((t, device, POLL))
                continue
            if head > until:
                break
            t, code = heapq.heappop(heap)
            device, kind = divmod(code, KINDS)
            wanted.append((t, device, kind))
            delay = follow.pop((t, code), None)
            if kind != POLL and delay is not None:
                heapq.heappush(heap, (t + delay, device * KINDS + 1))
    assert got == wanted
