"""Validation of what devices send over DDI: strict types, extra fields tolerated, and the
fields hawkBit requires required (docs/ddi.md)."""

from __future__ import annotations

from typing import Any

from patchgate.domain import actions as rules
from patchgate.domain.errors import InvalidInput
from patchgate.services import ddi


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    return value


def opt_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where} must be an integer")
    if not -(2**62) < value < 2**62:
        raise InvalidInput(f"{where} is out of range")
    return value


def opt_num(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where} must be a number")
    return float(value)


def opt_str(value: Any, where: str, limit: int = 128) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string")
    if len(value) > limit:
        raise InvalidInput(f"{where} is over {limit} characters")
    return value


def details(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("status.details must be a list of strings")
    if len(value) > 100:
        raise InvalidInput("status.details has more than 100 entries")
    return tuple(v[:2048] for v in value)


def _execution(value: Any) -> rules.Execution:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return rules.Execution(value)
    except ValueError:
        known = ", ".join(e.value for e in rules.Execution)
        raise InvalidInput(f"unknown status.execution {value!r} (known: {known})") from None


def parse_feedback(body: Any) -> ddi.Feedback:
    """A DDI feedback message. ``status.execution`` and ``status.result.finished`` are
    required, as hawkBit requires them (400 without); ``id``, ``time``, ``timestamp`` and
    unknown fields are tolerated."""
    status = obj(obj(body, "the body").get("status"), "status")
    execution = _execution(status.get("execution"))
    if status.get("result") is None:
        raise InvalidInput("status.result is required (with finished: success, failure, none)")
    result = obj(status["result"], "status.result")
    finished = result.get("finished")
    if finished is None:
        raise InvalidInput("status.result.finished is required (success, failure, none)")
    try:
        parsed_finished = rules.Finished(finished if isinstance(finished, str) else "?")
    except ValueError:
        raise InvalidInput(
            f"unknown status.result.finished {finished!r} (success, failure, none)"
        ) from None
    progress = result.get("progress")
    progress = obj(progress, "status.result.progress") if progress is not None else {}
    return ddi.Feedback(
        execution=execution,
        finished=parsed_finished,
        progress_cnt=opt_int(progress.get("cnt"), "status.result.progress.cnt"),
        progress_of=opt_int(progress.get("of"), "status.result.progress.of"),
        details=details(status.get("details")),
        code=opt_int(status.get("code"), "status.code"),
    )


def parse_confirmation(body: Any) -> tuple[bool, int | None, tuple[str, ...]]:
    """``confirmationBase/{id}/feedback``: (confirmed, code, details)."""
    data = obj(body, "the body")
    answer = data.get("confirmation")
    if answer not in ("confirmed", "denied"):
        raise InvalidInput("confirmation must be 'confirmed' or 'denied'")
    return answer == "confirmed", opt_int(data.get("code"), "code"), details(data.get("details"))


def parse_config(body: Any) -> tuple[dict[str, str | None], str]:
    """``PUT configData``: the attributes (a ``null`` value removes the key, as in
    hawkBit) and the mode, lower-cased."""
    data = obj(body, "the body")
    attributes = obj(data.get("data"), "data")
    if not all(v is None or isinstance(v, str) for v in attributes.values()):
        raise InvalidInput("every value in data must be a string or null")
    mode = data.get("mode") or "merge"
    if not isinstance(mode, str):
        raise InvalidInput("mode must be a string")
    return attributes, mode.lower()


def parse_installed(body: Any) -> tuple[str | None, str]:
    """``PUT installedBase``: (name, version); hawkBit requires both, patchgate only the
    version (the name narrows the release by product)."""
    data = obj(body, "the body")
    name = opt_str(data.get("name"), "name", 255)
    version = opt_str(data.get("version"), "version")
    if not version:
        raise InvalidInput("version is required")
    return name, version


HEALTH_FIELDS = frozenset(
    {"running_version", "boot_count", "uptime_s", "uptime", "crash_count", "watchdog_count"}
)


def _metrics(data: dict[str, Any]) -> dict[str, Any]:
    metrics = dict(obj(data.get("metrics") or {}, "metrics"))
    for key, value in data.items():
        if key in HEALTH_FIELDS or key == "metrics" or key in metrics:
            continue
        if value is None or isinstance(value, bool | int | float | str):
            metrics[key] = value
    for key, value in metrics.items():
        if len(key) > 128 or not (value is None or isinstance(value, bool | int | float | str)):
            raise InvalidInput(f"metrics.{key[:40]} must be a number, string or boolean")
    if len(metrics) > 200:
        raise InvalidInput("at most 200 metrics per report")
    return metrics


def parse_health(body: Any) -> ddi.Health:
    """A health report. Top-level fields beyond the known ones (a simulator's ``crashes``
    and ``exposure_hours``, an agent's slot) are kept as free-form metrics when they are
    numbers, strings or booleans; ``metrics`` wins on a clash."""
    data = obj(body, "the body")
    metrics = _metrics(data)

    def count(name: str) -> int | None:
        value = opt_int(data.get(name), name)
        if value is not None and value < 0:
            raise InvalidInput(f"{name} must not be negative")
        return value

    uptime = opt_num(data.get("uptime_s", data.get("uptime")), "uptime_s")
    if uptime is not None and uptime < 0:
        raise InvalidInput("uptime_s must not be negative")
    return ddi.Health(
        running_version=opt_str(data.get("running_version"), "running_version"),
        boot_count=count("boot_count"),
        uptime_s=uptime,
        crash_count=count("crash_count"),
        watchdog_count=count("watchdog_count"),
        metrics=metrics,
    )


def history_param(query: str) -> int:
    """``actionHistory``: how many device messages to add (bare or empty: none, as
    hawkBit's default; negative: all it keeps)."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "actionHistory":
            if value == "":
                return 0
            try:
                return max(-1, int(value))
            except ValueError:
                raise InvalidInput("actionHistory must be an integer") from None
    return 0
