"""The simulation's pending events: a calendar of single device events and the sorted
batches of polls a stage transition schedules (docs/simulator.md "What is simulated")."""

from __future__ import annotations

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
    ``BUCKET_MINUTES``, of which only the earliest is a heap (the others are plain lists,
    made a heap when the clock reaches them). A bucket's events all come before the next
    bucket's, so events leave in the order of one heap of them all — (time, device, kind)
    — while each push and pop works on a heap of a few thousand entries instead of the
    hundreds of thousands a stage of a million-device fleet has in flight.

    A batch (a stage's newly admitted devices, or every device to revert) is kept as two
    sorted Python lists and merged with the calendar as it is read: pushing hundreds of
    thousands of polls onto a heap would cost more than the simulation of what they do."""

    def __init__(self) -> None:
        # The current bucket (every event of a bucket index up to ``current``), a heap.
        self.heap: list[tuple[float, int]] = []
        self.current = -1
        # Later buckets by index, and their indices as a heap.
        self.later: dict[int, list[tuple[float, int]]] = {}
        self.later_keys: list[int] = []
        # [times, devices, next position]; Python lists, because the loop reads them one
        # item at a time, which is several times cheaper from a list than from an array.
        self.batches: list[list[list[float] | list[int] | int]] = []

    def push(self, t: float, device: int, kind: int) -> None:
        entry = (t, device * KINDS + kind)
        bucket = int(t * _PER_MINUTE)
        if bucket <= self.current:
            heapq.heappush(self.heap, entry)
            return
        entries = self.later.get(bucket)
        if entries is None:
            self.later[bucket] = [entry]
            heapq.heappush(self.later_keys, bucket)
        else:
            entries.append(entry)

    def add_polls(self, times: npt.NDArray[np.float64], devices: npt.NDArray[np.intp]) -> None:
        """Polls of ``devices`` at ``times`` (any order)."""
        order = np.argsort(times, kind="stable")
        self.batches.append([times[order].tolist(), devices[order].tolist(), 0])

    def _earliest(self) -> float:
        """The time of the earliest single event (inf when there is none), its bucket
        made the current one if it was a later one."""
        heap = self.heap
        if heap:
            return heap[0][0]
        if not self.later_keys:
            return math.inf
        bucket = heapq.heappop(self.later_keys)
        heap = self.heap = self.later.pop(bucket)
        heapq.heapify(heap)
        self.current = bucket
        return heap[0][0]

    def pop_due(self, until: float) -> tuple[float, int, int] | None:
        """The earliest event at or before ``until`` as ``(t, device, kind)``, removed;
        None when there is none. A single event comes before a batch's poll of the same
        instant."""
        best_t = self.heap[0][0] if self.heap else self._earliest()
        batches = self.batches
        best_batch = -1
        for index, batch in enumerate(batches):
            times, _, pos = batch
            time = times[pos]  # type: ignore[index]
            if time < best_t:
                best_t = time
                best_batch = index
        if best_t > until:
            return None
        if best_batch >= 0:
            batch = batches[best_batch]
            times, devices, pos = batch
            device = devices[pos]  # type: ignore[index]
            batch[2] = pos = pos + 1  # type: ignore[operator]
            if pos >= len(times):  # type: ignore[arg-type]
                batches.pop(best_batch)
            return best_t, int(device), POLL
        _, code = heapq.heappop(self.heap)
        device, kind = divmod(code, KINDS)
        return best_t, device, kind


_PER_MINUTE: Final = 1 / BUCKET_MINUTES
