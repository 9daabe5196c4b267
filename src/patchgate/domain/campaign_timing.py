"""A campaign's timing: the in-progress timeout of each attempt, the retries of transient
failures, and the schedule it starts and stops by (docs/campaigns.md "Timing, retries and
schedule"). The same ideas as AWS IoT Jobs' ``timeoutConfig``,
``jobExecutionsRetryConfig`` and ``schedulingConfig``.

Rules:

1. **Timeout.** ``timeout`` bounds each attempt, from its offer: an attempt not finished
   by then has timed out (:mod:`executions` rule 2). Before the device started installing
   a timeout is transient (retried like a download error); once installing, it is
   ``timed_out`` and counts against the gate, as failures do by default
   (``gates.FAILURE_OUTCOMES``).
2. **Retries.** ``retries`` is how many times a transient failure (a download error, a
   timeout before installing) is offered again, after ``retry_backoff × 2^(n−1)`` for the
   n-th attempt. A failed install, a boot that never became healthy and a revert are gate
   outcomes: never retried, never hidden.
3. **Schedule.** A draft campaign with ``start_at`` starts by itself then. At ``end_at`` a
   campaign still running or paused (or a draft that never started) is cancelled: offers
   not yet installing are cancelled (DDI ``cancelAction``), installs in flight finish and
   their outcomes are recorded, and no retry is offered after it. ``decide`` offers
   nothing for a campaign past its ``end_at`` even before the timer has stopped it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from patchgate.domain.clock import parse_rfc3339, rfc3339
from patchgate.domain.durations import format_duration, parse_duration
from patchgate.domain.errors import InvalidInput
from patchgate.domain.executions import DEFAULT_EXECUTION_POLICY, ExecutionPolicy

# Bounds, as AWS IoT Jobs sets them: an in-progress timeout of 1 minute to 7 days, at most
# 10 retries, a schedule up to a year ahead.
MIN_TIMEOUT: Final = timedelta(minutes=1)
MAX_TIMEOUT: Final = timedelta(days=7)
MAX_RETRIES: Final = 10
MAX_SCHEDULE_AHEAD: Final = timedelta(days=366)
# A start time this little in the past (the clock of the operator's machine, the time the
# request took) is taken as "now" rather than refused.
START_TOLERANCE: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class CampaignTiming:
    """One campaign's timing; ``None`` fields keep the defaults (no in-progress timeout,
    the default retry budget, no schedule)."""

    timeout: timedelta | None = None
    retries: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None

    def policy(self, base: ExecutionPolicy = DEFAULT_EXECUTION_POLICY) -> ExecutionPolicy:
        """The execution policy of this campaign's actions."""
        return replace(
            base,
            in_progress_timeout=self.timeout,
            max_retries=base.max_retries if self.retries is None else self.retries,
        )

    @property
    def max_retries(self) -> int:
        """The retry budget in force (the default one when none was set)."""
        return self.policy().max_retries

    def ended(self, now: datetime) -> bool:
        """Whether the schedule's end has come (rule 3)."""
        return self.end_at is not None and now >= self.end_at

    def due_to_start(self, now: datetime) -> bool:
        """Whether a draft campaign with this schedule should start now."""
        return self.start_at is not None and now >= self.start_at and not self.ended(now)


NO_TIMING: Final = CampaignTiming()


def timing_problems(timing: CampaignTiming, now: datetime) -> list[str]:
    """What is wrong with a new campaign's timing (one readable line per problem)."""
    problems = []
    if timing.timeout is not None and not MIN_TIMEOUT <= timing.timeout <= MAX_TIMEOUT:
        problems.append(
            f"--timeout: {format_duration(timing.timeout)} is outside "
            f"{format_duration(MIN_TIMEOUT)}..{format_duration(MAX_TIMEOUT)}"
        )
    if timing.retries is not None and not 0 <= timing.retries <= MAX_RETRIES:
        problems.append(f"--retries: must be between 0 and {MAX_RETRIES}")
    start, end = timing.start_at, timing.end_at
    if start is not None and start < now - START_TOLERANCE:
        problems.append(f"--start-at: {_stamp(start)} is in the past (now {_stamp(now)})")
    if start is not None and start > now + MAX_SCHEDULE_AHEAD:
        problems.append("--start-at: more than a year ahead")
    if end is not None and end <= now:
        problems.append(f"--end-at: {_stamp(end)} is in the past (now {_stamp(now)})")
    if end is not None and start is not None and end <= start:
        problems.append(f"--end-at: {_stamp(end)} is not after --start-at {_stamp(start)}")
    if end is not None and end > now + 2 * MAX_SCHEDULE_AHEAD:
        problems.append("--end-at: more than two years ahead")
    return problems


def parse_timeout(text: str | None) -> timedelta | None:
    """``--timeout`` (``30m``, ``2h``, ``PT45M``), or None when not given."""
    if text is None:
        return None
    return parse_duration(text, what="--timeout")


def parse_instant(text: str | None, flag: str) -> datetime | None:
    """``--start-at``/``--end-at`` as ISO 8601 (a missing offset means UTC)."""
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise InvalidInput(
            f"{flag}: {text!r} is not an ISO 8601 time (write e.g. 2026-03-04T12:00:00Z)"
        ) from None


def _stamp(value: datetime) -> str:
    return rfc3339(value) or ""


def timing_json(timing: CampaignTiming) -> dict[str, object]:
    """The stored form (kept with the campaign's delivery settings) and the JSON fields of
    ``campaign status``: ``timeout`` (``30m``; None without one), ``timeout_s``,
    ``retries`` (the budget in force), ``start_at``, ``end_at`` (RFC 3339)."""
    return {
        "timeout": None if timing.timeout is None else format_duration(timing.timeout),
        "timeout_s": None if timing.timeout is None else timing.timeout.total_seconds(),
        "retries": timing.retries,
        "start_at": None if timing.start_at is None else rfc3339(timing.start_at),
        "end_at": None if timing.end_at is None else rfc3339(timing.end_at),
    }


def timing_from(stored: Mapping[str, Any]) -> CampaignTiming:
    """A campaign's timing from its stored delivery settings (absent keys: defaults)."""
    seconds = stored.get("timeout_s")
    retries = stored.get("retries")
    start, end = stored.get("start_at"), stored.get("end_at")
    return CampaignTiming(
        timeout=None if seconds is None else timedelta(seconds=float(seconds)),
        retries=None if retries is None else int(retries),
        start_at=None if not start else parse_rfc3339(str(start)),
        end_at=None if not end else parse_rfc3339(str(end)),
    )
