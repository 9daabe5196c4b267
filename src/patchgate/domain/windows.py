"""Maintenance windows: a 5-field cron expression, a duration and a time zone
(``--window '0 2 * * *,3h,Europe/Berlin'``), docs/campaigns.md.

Rules implemented here:

* **Cron** follows the Vixie cron / POSIX ``crontab(5)`` fields: minute (0–59), hour
  (0–23), day of month (1–31), month (1–12 or ``jan``–``dec``), day of week (0–7 or
  ``sun``–``sat``, 0 and 7 both Sunday); each field is ``*`` or a comma list of ``N``,
  ``N-M``, with an optional ``/STEP`` after ``*`` or a range. As in Vixie cron, when both
  day fields are restricted a day matches if *either* matches.
* **Window.** The window is open at ``now`` when some cron start ``s`` (a wall-clock time
  in the window's zone) satisfies ``s ≤ now < s + duration``. Starts are local times; a
  start that falls in a DST gap is taken at the offset before the gap (``fold=0``), the
  way ``zoneinfo`` resolves it; durations are elapsed time.
* **Cost.** :meth:`MaintenanceWindow.is_open` is memoised per (window, minute), so a poll
  storm costs one cron evaluation per minute per window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from patchgate.domain.durations import parse_duration
from patchgate.domain.errors import InvalidInput

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + (1 if name == "month" else 0)
    if not text.isdigit():
        raise InvalidInput(f"cron {name}: {text!r} is not a number or name")
    number = int(text)
    if not low <= number <= high:
        raise InvalidInput(f"cron {name}: {number} is outside {low}–{high}")
    return number


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidInput(f"cron {name}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, stop = (_value(a, name, low, high, names), _value(b, name, low, high, names))
            if start > stop:
                raise InvalidInput(f"cron {name}: range {base!r} runs backwards")
        else:
            start = _value(base, name, low, high, names)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 5-field cron expression (module rule "Cron")."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse ``minute hour day-of-month month day-of-week``; errors name the field."""
        parts = expression.split()
        if len(parts) != 5:
            raise InvalidInput(
                f"cron: {expression!r} has {len(parts)} fields, expected 5 "
                "(minute hour day-of-month month day-of-week)"
            )
        sets = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            expression=" ".join(parts),
            minutes=tuple(sorted(sets[0])),
            hours=tuple(sorted(sets[1])),
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            day_restricted=parts[2] != "*",
            weekday_restricted=parts[4] != "*",
        )

    def matches_day(self, day: date) -> bool:
        """Whether cron runs on ``day`` at all (Vixie rule for the two day fields)."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return dom or dow
        return dom and dow


@dataclass(frozen=True)
class MaintenanceWindow:
    """Cron start times, each opening the window for ``duration``, in zone ``tz``."""

    cron: CronSchedule
    duration: timedelta
    tz: str

    @classmethod
    def parse(cls, text: str) -> MaintenanceWindow:
        """Parse ``CRON,DURATION,TZ`` as ``campaign create --window`` takes it."""
        parts = [p.strip() for p in text.rsplit(",", 2)]
        if len(parts) != 3:
            raise InvalidInput(
                f"window: {text!r} is not CRON,DURATION,TZ (e.g. '0 2 * * *,3h,Europe/Berlin')"
            )
        cron = CronSchedule.parse(parts[0])
        duration = parse_duration(parts[1], what="window duration")
        if duration <= timedelta(0):
            raise InvalidInput("window duration: must be longer than zero")
        try:
            ZoneInfo(parts[2])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"window time zone: {parts[2]!r} is not a known zone") from exc
        return cls(cron, duration, parts[2])

    def __str__(self) -> str:
        minutes = int(self.duration.total_seconds() // 60)
        return f"{self.cron.expression},{minutes}m,{self.tz}"

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` lies inside a window (module rule "Window"). Cron starts fall on
        whole minutes, so the latest start is memoised per minute."""
        start = _latest_start(self, int(now.timestamp() // 60))
        return start is not None and now < start + self.duration

    def latest_start(self, now: datetime) -> datetime | None:
        """The latest cron start at or before ``now`` recent enough to matter, or ``None``."""
        return _latest_start(self, int(now.timestamp() // 60))


@lru_cache(maxsize=8192)
def _latest_start(window: MaintenanceWindow, minute: int) -> datetime | None:
    """The latest cron start at or before the end of epoch minute ``minute``, looking back
    only as far as a window could still be open (older starts cannot matter)."""
    zone = ZoneInfo(window.tz)
    now = datetime.fromtimestamp(minute * 60, UTC)
    local = now.astimezone(zone)
    cron = window.cron
    for offset in range(window.duration.days + 3):
        day = local.date() - timedelta(days=offset)
        if not cron.matches_day(day):
            continue
        for hour in reversed(cron.hours):
            for minute_of_hour in reversed(cron.minutes):
                start = datetime(day.year, day.month, day.day, hour, minute_of_hour, tzinfo=zone)
                if start <= now:
                    return start.astimezone(UTC)
    return None
