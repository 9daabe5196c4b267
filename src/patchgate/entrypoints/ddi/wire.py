"""How DDI bodies travel: JSON or CBOR by ``Accept`` and ``Content-Type`` (hawkBit offers
both), ``ETag``/``If-None-Match`` on polls, and the per-device request quota that answers
429 with ``Retry-After`` (docs/ddi.md, "Wire")."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from typing import Any

import cbor2
from starlette.responses import Response

JSON_TYPE = "application/hal+json;charset=UTF-8"
CBOR_TYPE = "application/cbor"
_JSON_TYPES = ("application/hal+json", "application/json")


class NotAcceptable(Exception):
    """The client accepts none of the types DDI answers in (406)."""


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        quality = 1.0
        for field in fields[1:]:
            name, _, value = field.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((fields[0].lower(), quality))
    return ranges


def _matches(media_range: str, media_type: str) -> bool:
    if media_range == "*/*":
        return True
    if media_range.endswith("/*"):
        return media_type.startswith(media_range[:-1])
    return media_range == media_type


def choose(accept: str | None) -> str:
    """The answer's media type for an ``Accept`` header: HAL+JSON by default and for
    ``application/json``, CBOR when preferred; :class:`NotAcceptable` for anything else."""
    if not accept:
        return JSON_TYPE
    best, best_q = None, 0.0
    for media_range, quality in _media_ranges(accept):
        for offered in (*_JSON_TYPES, CBOR_TYPE):
            if quality > best_q and _matches(media_range, offered):
                best, best_q = offered, quality
    if best is None:
        raise NotAcceptable(f"DDI answers in {', '.join((*_JSON_TYPES, CBOR_TYPE))}")
    if best == CBOR_TYPE:
        return CBOR_TYPE
    return JSON_TYPE if best == "application/hal+json" else "application/json;charset=UTF-8"


def encode(body: Any, media_type: str) -> bytes:
    if media_type == CBOR_TYPE:
        return bytes(cbor2.dumps(body))
    return json.dumps(body, separators=(",", ":")).encode()


def decode(raw: bytes, content_type: str | None) -> Any:
    """A request body: CBOR when its ``Content-Type`` says so, else JSON. Raises
    ``ValueError`` for a body that is not valid in its type."""
    if content_type and content_type.split(";")[0].strip().lower() == CBOR_TYPE:
        if not raw:
            return None
        try:
            return cbor2.loads(raw)
        except Exception as exc:  # cbor2 raises several types for bad input
            raise ValueError(f"the body is not valid CBOR: {exc}") from None
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the body is not valid JSON: {exc}") from None


def answer(
    status: int, body: Any, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        encode(body, media_type),
        status_code=status,
        headers={"content-type": media_type, **(headers or {})},
    )


def etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` (or ``*``), weak tags compared weakly."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        value = candidate.strip().removeprefix("W/")
        if value in ("*", tag):
            return True
    return False


class Quota:
    """Requests a device may make per window (polls and feedback counted apart): a
    fixed window per device and kind, in memory in each server process. ``limit`` 0
    switches it off."""

    def __init__(self, limit: int, window_s: float = 60.0, max_devices: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_devices = max_devices
        self._lock = threading.Lock()
        self._counts: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    def retry_after(self, key: tuple[str, str], now: float | None = None) -> int | None:
        """Count one request; None while within the quota, else the seconds to wait."""
        if self.limit <= 0:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            start, count = self._counts.pop(key, (now, 0))
            if now - start >= self.window_s:
                start, count = now, 0
            count += 1
            self._counts[key] = (start, count)
            while len(self._counts) > self.max_devices:
                self._counts.popitem(last=False)
        if count <= self.limit:
            return None
        return max(1, math.ceil(start + self.window_s - now))
