"""Durations as operators write them (``--soak 24h``, ``--window '0 2 * * *,3h,UTC'``).

Accepted spellings: a sum of ``<number><unit>`` parts with units ``w d h m s`` (``1h30m``,
``90m``, ``2d``, ``0``) or an ISO 8601 duration without years and months (``PT2H``,
``P1DT6H``). Years and months are refused because their length depends on the calendar.
"""

from __future__ import annotations

import re
from datetime import timedelta

from patchgate.domain.errors import InvalidInput

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse ``text`` into a non-negative ``timedelta``; ``InvalidInput`` names ``what``."""
    try:
        return _parse(text, what)
    except OverflowError as exc:  # past timedelta's range (999,999,999 days)
        raise InvalidInput(f"{what}: {text!r} is too long a duration") from exc


def _parse(text: str, what: str) -> timedelta:
    cleaned = text.strip().lower()
    if cleaned in {"0", "0s"}:
        return timedelta(0)
    if cleaned.startswith("p"):
        match = _ISO.match(cleaned.upper())
        if match and any(match.groupdict().values()) and not cleaned.endswith("t"):
            seconds = sum(float(v) * _UNITS[k.lower()] for k, v in match.groupdict().items() if v)
            return timedelta(seconds=seconds)
    else:
        parts = _PART.findall(cleaned)
        if parts and "".join(n + u for n, u in parts) == cleaned:
            return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))
    raise InvalidInput(
        f"{what}: {text!r} is not a duration (write e.g. 30m, 24h, 1h30m, 2d or PT6H)"
    )


def format_duration(value: timedelta) -> str:
    """The shortest ``1d6h30m`` spelling of ``value`` (whole seconds), ``0s`` for zero."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
