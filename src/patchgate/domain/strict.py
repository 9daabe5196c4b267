"""Strict reading of data that comes from outside (device and management bodies, imported
files, policy TOML): what the parsers of the standard library accept but patchgate cannot
store or show is refused here, once, with a message naming the problem.

Refused: nesting deeper than :data:`MAX_DEPTH`; text that is not valid Unicode (a lone
surrogate such as ``"\\ud800"`` decodes from JSON but cannot be encoded again), that holds
NUL (PostgreSQL text cannot) or is longer than the caller's limit; ``NaN`` and
``Infinity`` (not JSON, RFC 8259 section 6) and floats that overflow to them; integers
outside the signed 64-bit range the databases store.
"""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any

from patchgate.domain.errors import InvalidInput

MAX_DEPTH = 32
MAX_TEXT = 64 * 1024  # characters in one string
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def check_text(value: str, where: str, limit: int = MAX_TEXT) -> str:
    """``value`` if it is valid Unicode without NUL and at most ``limit`` characters."""
    if len(value) > limit:
        raise InvalidInput(f"{where} is over {limit} characters")
    if "\x00" in value:
        raise InvalidInput(f"{where} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where} is not valid Unicode (a lone surrogate)") from None
    return value


def check_int(value: int, where: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{where} is outside the 64-bit integer range")
    return value


def _check_float(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise InvalidInput(f"{where} is not a finite number (NaN and Infinity are refused)")
    return value


def check_value(value: Any, where: str, *, max_text: int = MAX_TEXT, depth: int = 0) -> None:
    """Check a decoded document (mappings, lists, text, numbers) against the rules above."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        check_text(value, where, max_text)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        check_int(value, where)
    elif isinstance(value, float):
        _check_float(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = check_text(str(key), f"a key in {where}", 1024)
            check_value(item, f"{where}.{name[:40]}", max_text=max_text, depth=depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_value(item, f"{where}[{index}]", max_text=max_text, depth=depth + 1)


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a JSON number (NaN and Infinity are refused)")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise InvalidInput(f"the integer {text[:24]}… is outside the 64-bit range")
    return int(text)


def loads_json(data: bytes | str, *, where: str = "the body", max_text: int = MAX_TEXT) -> Any:
    """Decode JSON strictly (UTF-8, RFC 8259) and check it with :func:`check_value`."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise InvalidInput(f"{where} is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_int)
    except RecursionError:
        raise InvalidInput(f"{where} is nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    check_value(value, where, max_text=max_text)
    return value


def loads_toml(text: str, *, where: str = "the TOML", max_text: int = MAX_TEXT) -> dict[str, Any]:
    """Decode TOML (``tomllib``) and check it with :func:`check_value`; ``nan`` and ``inf``
    are TOML but refused like their JSON spellings. A syntax error raises
    ``tomllib.TOMLDecodeError`` as before; hostile input raises ``InvalidInput``."""
    check_text(text, where, limit=len(text))
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise InvalidInput(f"{where} is nested more than {MAX_DEPTH} levels deep") from None
    check_value(data, where, max_text=max_text)
    return data
