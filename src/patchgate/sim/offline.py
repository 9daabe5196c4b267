"""Devices going offline: a two-state Markov process per device, with a mean offline
time and a stationary offline share, sampled lazily when a device would poll
(docs/simulator.md "What is simulated")."""

from __future__ import annotations

import math
import random

import numpy as np
import numpy.typing as npt


class OfflineModel:
    """Each device's state at its last look (``state``: offline then) and the minute of
    that look (``since``; for an offline device, the minute it comes back). Both are
    read and written one device at a time, so they are a bytearray and a list (an item
    of either is several times cheaper than a NumPy scalar)."""

    def __init__(self, n: int, share: float, mean_hours: float, nrng: np.random.Generator):
        self.share = share
        self.state = bytearray((nrng.random(n) < share).tobytes())
        self.since: list[float] = [0.0] * n
        self.mean = mean_hours * 60
        # The rate back online is 1/mean; the rate of going offline keeps the share.
        self.rate_off = (1 / self.mean) / (1 - share) if share > 0 else 0.0

    def returns_at(self, device: int, t: float, rng: random.Random) -> float | None:
        """Whether ``device`` is online at minute ``t``: None if so, else the minute it
        comes back (drawn now, and remembered)."""
        off = self.share
        if off <= 0:
            return None
        since = t - self.since[device]
        s0 = 1.0 if self.state[device] else 0.0
        if since < 0:
            p_off = 1.0
        else:
            p_off = off + (s0 - off) * math.exp(-since * (1 / self.mean + self.rate_off))
        if rng.random() < p_off:
            back = max(t, self.since[device]) + rng.expovariate(1 / self.mean)
            self.state[device] = 0
            self.since[device] = back
            return back
        self.state[device] = 0
        self.since[device] = t
        return None

    def offline_at(
        self, t: float, busy: npt.NDArray[np.bool_], nrng: np.random.Generator
    ) -> npt.NDArray[np.bool_]:
        """Which devices are offline at minute ``t``, each drawn from its chain (devices
        that are ``busy`` installing are online)."""
        n = len(self.state)
        off = self.share
        if off <= 0:
            return np.zeros(n, dtype=np.bool_)
        since = t - np.array(self.since, dtype=np.float64)
        s0 = np.frombuffer(self.state, dtype=np.bool_).astype(np.float64)
        p_off = off + (s0 - off) * np.exp(-np.maximum(since, 0) * (1 / self.mean + self.rate_off))
        p_off = np.where(since < 0, 1.0, p_off)
        offline: npt.NDArray[np.bool_] = (nrng.random(n) < p_off) & ~busy
        return offline
