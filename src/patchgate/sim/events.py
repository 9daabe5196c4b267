"""The simulation's pending events: one heap of single device events and the sorted
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


class EventQueue:
    """Pending events in time order. A batch (a stage's newly admitted devices, or every
    device to revert) is kept as two sorted Python lists and merged with the heap as it is
    read: pushing hundreds of thousands of polls onto the heap would cost more than the
    simulation of what they do."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int]] = []
        # [times, devices, next position]; Python lists, because the loop reads them one
        # item at a time, which is several times cheaper from a list than from an array.
        self.batches: list[list[list[float] | list[int] | int]] = []

    def push(self, t: float, device: int, kind: int) -> None:
        heapq.heappush(self.heap, (t, device * KINDS + kind))

    def add_polls(self, times: npt.NDArray[np.float64], devices: npt.NDArray[np.intp]) -> None:
        """Polls of ``devices`` at ``times`` (any order)."""
        order = np.argsort(times, kind="stable")
        self.batches.append([times[order].tolist(), devices[order].tolist(), 0])

    def pop_due(self, until: float) -> tuple[float, int, int] | None:
        """The earliest event at or before ``until`` as ``(t, device, kind)``, removed;
        None when there is none. A batch's poll comes before a heap entry of the same
        instant."""
        heap = self.heap
        batches = self.batches
        best_t = heap[0][0] if heap else math.inf
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
        _, code = heapq.heappop(heap)
        device, kind = divmod(code, KINDS)
        return best_t, device, kind
