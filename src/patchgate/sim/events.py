"""The simulation's pending events: a calendar of single device events and the sorted
batches of polls a stage transition schedules (docs/simulator.md "What is simulated")."""

from __future__ import annotations

import bisect
import heapq
import math
from typing import Final

import numpy as np
import numpy.typing as npt

# Event kinds; a heap entry packs ``device * KINDS + kind``, so that entries of one instant
# are taken in device order, then kind order.
POLL: Final = 0
DOWNLOAD_DONE: Final = 1
FINISH: Final = 2
WRITTEN: Final = 3
CONFIRM_DUE: Final = 4
KINDS: Final = 8


# Minutes per bucket of the event calendar (:class:`EventQueue`).
BUCKET_MINUTES: Final = 1 / 64


class EventQueue:
    """Pending events in time order. Single events are kept in a calendar: buckets of
    ``BUCKET_MINUTES``, of which only the earliest is ordered (the others are plain lists,
    sorted when the clock reaches them). A bucket's events all come before the next
    bucket's, so events leave in the order of one heap of them all — (time, device, kind)
    — while each push and pop works on a bucket of a few thousand entries instead of the
    hundreds of thousands a stage of a million-device fleet has in flight.

    The current bucket is sorted latest first, so that its earliest event is taken from
    its end (``current[-1]``, ``current.pop()``): a bucket is sorted once, and each event
    leaves without the sifting a heap does at every pop, which at a million devices is
    the larger cost (each sift reads entries scattered over the memory). An event pushed
    into the current bucket (rare: a device's next step is seconds or more ahead) is
    inserted at its place.

    A batch (a stage's newly admitted devices, or every device to revert) is kept as two
    Python lists sorted latest first, taken from their ends and merged with the calendar
    as they are read: pushing hundreds of thousands of polls onto a heap would cost more
    than the simulation of what they do."""

    def __init__(self) -> None:
        # The current bucket (every event of a bucket index up to ``current_bucket``),
        # sorted latest first.
        self.current: list[tuple[float, int]] = []
        self.current_bucket = -1
        # Later buckets by index, and their indices as a heap.
        self.later: dict[int, list[tuple[float, int]]] = {}
        self.later_keys: list[int] = []
        # (times, devices), each latest first; Python lists, because the loop reads them
        # one item at a time, which is several times cheaper from a list than from an array.
        self.batches: list[tuple[list[float], list[int]]] = []

    def push(self, t: float, device: int, kind: int) -> None:
        entry = (t, device * KINDS + kind)
        bucket = int(t * _PER_MINUTE)
        if bucket <= self.current_bucket:
            bisect.insort(self.current, entry, key=_latest_first)
            return
        entries = self.later.get(bucket)
        if entries is None:
            self.later[bucket] = [entry]
            heapq.heappush(self.later_keys, bucket)
        else:
            entries.append(entry)

    def add_polls(self, times: npt.NDArray[np.float64], devices: npt.NDArray[np.intp]) -> None:
        """Polls of ``devices`` at ``times`` (any order; devices of one instant in the
        order given)."""
        order = np.argsort(times, kind="stable")[::-1]
        self.batches.append((times[order].tolist(), devices[order].tolist()))

    def earliest(self, until: float) -> float:
        """The time of the earliest single event, or inf when there is none at or before
        ``until``; a later bucket is made the current one only when its first instant is
        (so that the current bucket stays small: a push into it is an insertion)."""
        current = self.current
        if current:
            return current[-1][0]
        later_keys = self.later_keys
        if not later_keys or later_keys[0] * BUCKET_MINUTES > until:
            # (Exact: a bucket's index times a power of two is its first instant.)
            return math.inf
        bucket = heapq.heappop(later_keys)
        current = self.current = self.later.pop(bucket)
        current.sort(reverse=True)
        self.current_bucket = bucket
        return current[-1][0]

    def pop_due(self, until: float) -> tuple[float, int, int] | None:
        """The earliest event at or before ``until`` as ``(t, device, kind)``, removed;
        None when there is none. A single event comes before a batch's poll of the same
        instant."""
        best_t = self.earliest(until)
        batches = self.batches
        best_batch = -1
        for index, (times, _) in enumerate(batches):
            time = times[-1]
            if time < best_t:
                best_t = time
                best_batch = index
        if best_t > until:
            return None
        if best_batch >= 0:
            times, devices = batches[best_batch]
            times.pop()
            device = devices.pop()
            if not times:
                batches.pop(best_batch)
            return best_t, device, POLL
        _, code = self.current.pop()
        device, kind = divmod(code, KINDS)
        return best_t, device, kind


def _latest_first(entry: tuple[float, int]) -> tuple[float, int]:
    """The sort key of the current bucket's order (latest first), for ``bisect``."""
    return -entry[0], -entry[1]


_PER_MINUTE: Final = 1 / BUCKET_MINUTES
