"""Operator metadata: key/value pairs an operator sets on a device or a release, pure
(docs/device-filters.md "Metadata").

hawkBit keeps the same kind of metadata on targets and distribution sets, and its target
filters read a target's as ``metadata.KEY``; so do ours. The bounds follow hawkBit's:

* **Key.** A letter or ``_``, then letters, digits, ``_``, ``.`` or ``-``; at most 128
  characters. Such a key can be written bare in a query (``metadata.site==berlin``).
* **Value.** Text of at most 4,000 characters, without control characters (a line break
  or NUL in a value would not survive a CSV export or PostgreSQL's text).
* **Entries.** At most 100 keys per device or release.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from patchgate.domain.errors import InvalidInput, NotFound

__all__ = [
    "MAX_ENTRIES",
    "MAX_KEY",
    "MAX_VALUE",
    "check_key",
    "check_value",
    "parse_pair",
    "with_entry",
    "without_entry",
]

MAX_KEY = 128
MAX_VALUE = 4000
MAX_ENTRIES = 100
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def check_key(key: str) -> str:
    """``key`` if it is a valid metadata key, else ``InvalidInput`` saying why."""
    if not key:
        raise InvalidInput("metadata: the key is empty")
    if len(key) > MAX_KEY:
        raise InvalidInput(f"metadata: key longer than {MAX_KEY} characters")
    if _KEY.fullmatch(key) is None:
        raise InvalidInput(
            f"metadata: key {key!r} must start with a letter or _ and hold only letters, "
            "digits, _, . or -"
        )
    return key


def check_value(value: str) -> str:
    """``value`` if it is a valid metadata value, else ``InvalidInput`` saying why."""
    if len(value) > MAX_VALUE:
        raise InvalidInput(f"metadata: value longer than {MAX_VALUE} characters")
    bad = next((ch for ch in value if ord(ch) < 32 or ord(ch) == 127), None)
    if bad is not None:
        raise InvalidInput(
            f"metadata: value holds a control character (U+{ord(bad):04X}) at position "
            f"{value.index(bad)}"
        )
    return value


def with_entry(current: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    """``current`` with ``key`` set to ``value`` (both checked; refused past the limit)."""
    check_key(key)
    check_value(value)
    if key not in current and len(current) >= MAX_ENTRIES:
        raise InvalidInput(f"metadata: at most {MAX_ENTRIES} keys; unset one first")
    return {**current, key: value}


def without_entry(current: Mapping[str, str], key: str, *, what: str) -> dict[str, str]:
    """``current`` without ``key``; ``NotFound`` naming ``what`` when it has no such key."""
    if key not in current:
        raise NotFound(f"{what} has no metadata key {key!r}")
    return {k: v for k, v in current.items() if k != key}


def parse_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (as ``release list --metadata`` takes it) as a checked pair; the value
    may hold ``*`` wildcards."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidInput(f"metadata: {text!r} is not KEY=VALUE")
    return check_key(key.strip()), check_value(value)
