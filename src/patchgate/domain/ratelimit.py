"""Offers per minute (``campaign create --rate N/min``) as a token bucket, docs/campaigns.md.

Rule: the bucket holds at most ``burst`` tokens (default: one minute's worth, at least 1)
and refills continuously at ``per_minute / 60`` tokens per second; each offer takes one
token, and no offer is made without one. The state is a small frozen value the caller keeps
(in memory, or in a row shared by several server processes) and passes back in; nothing
here reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from patchgate.domain.errors import InvalidInput

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(min|m|minute|h|hour|s|sec|second))?\s*$")
_PER_MINUTE = {"min": 1.0, "m": 1.0, "minute": 1.0, "h": 1 / 60, "hour": 1 / 60}
_PER_MINUTE.update({"s": 60.0, "sec": 60.0, "second": 60.0})


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A rate in offers per minute and the largest burst it allows."""

    per_minute: float
    burst: float

    @classmethod
    def per_min(cls, per_minute: float, burst: float | None = None) -> RateLimit:
        """A limit of ``per_minute`` offers with a burst of one minute's worth (≥ 1)."""
        if per_minute <= 0:
            raise InvalidInput("rate: must be more than 0 offers per minute")
        return cls(per_minute, burst if burst is not None else max(1.0, per_minute))

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``N/min`` (also ``N/h``, ``N/s``, or a bare ``N`` meaning per minute)."""
        match = _RATE.match(text)
        if not match:
            raise InvalidInput(f"rate: {text!r} is not a rate like 100/min")
        return cls.per_min(float(match.group(1)) * _PER_MINUTE[match.group(2) or "min"])

    def __str__(self) -> str:
        return f"{self.per_minute:g}/min"


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """The bucket's state: tokens left at ``updated_at`` (``None``: never used, full)."""

    tokens: float = 0.0
    updated_at: datetime | None = None

    def level(self, limit: RateLimit, now: datetime) -> float:
        """Tokens available at ``now``."""
        if self.updated_at is None:
            return limit.burst
        elapsed = max(0.0, (now - self.updated_at).total_seconds())
        return min(limit.burst, self.tokens + elapsed * limit.per_minute / 60.0)

    def take(self, limit: RateLimit, now: datetime) -> TokenBucket | None:
        """The state after one offer at ``now``, or ``None`` when no token is left."""
        available = self.level(limit, now)
        if available < 1.0 - 1e-9:  # refills add up in binary fractions
            return None
        return TokenBucket(available - 1.0, now)


FULL = TokenBucket()
