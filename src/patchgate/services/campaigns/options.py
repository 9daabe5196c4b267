"""The options of ``campaign create``: one definition, read by the CLI's flags, the
management API's request body (its schema and limits come from the field metadata here)
and the create command."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from patchgate.domain.errors import InvalidInput

MAX_TEXT = 500


def _opt(default: Any, doc: str, **limits: Any) -> Any:
    return field(default=default, metadata={"doc": doc, **limits})


@dataclass(frozen=True)
class CreateOptions:
    """How a campaign rolls its release out (docs/campaigns.md "Creating a campaign").
    Field metadata: ``doc`` (the help text), and ``ge``/``le``/``max_length`` limits."""

    stages: str | None = _opt(
        None, "Like internal,canary:2,10,50,100 (group, name:P or P).", max_length=MAX_TEXT
    )
    max_failure_rate: float | None = _opt(None, "Gate: e.g. 0.05.")
    min_finished: int | None = _opt(None, "Gate: devices finished per stage.", ge=0)
    soak: str | None = _opt(None, "Gate: e.g. 2h, 30m.", max_length=100)
    manual: bool = _opt(False, "Each stage waits for approve.")
    confirm_required: bool = _opt(False, "The device's user must confirm.")
    rate: str | None = _opt(None, "Offers per minute: N/min.", max_length=100)
    window: str | None = _opt(None, "Maintenance window CRON,DURATION,TZ.", max_length=MAX_TEXT)
    forced: bool = _opt(True, "Forced install (false: the device may defer).")
    download_only: bool = _opt(False, "Download, do not install.")
    fill_canary: bool = _opt(False, "Fill the canary from other devices when short.")
    groups: tuple[str, ...] = _opt((), "Target only these groups.")
    supersedes: int | None = _opt(None, "Halted campaign to roll forward from.")
    versions: str | None = _opt(
        None,
        'Target only devices on these versions, e.g. "<1.0.1", ">=1.0, <2.0".',
        max_length=MAX_TEXT,
    )
    offline_share: float | None = _opt(
        None, "Deadline plan: share of the fleet offline at a time, e.g. 0.1.", ge=0, le=0.99
    )
    timeout: str | None = _opt(
        None,
        "In-progress timeout of each attempt, e.g. 30m, 2h (1m to 7d); before installing "
        "a timeout is retried, once installing it counts as timed_out.",
        max_length=100,
    )
    retries: int | None = _opt(
        None,
        "Offer again after a transient failure (download error, timeout) up to N times, "
        "with exponential back-off (0 to 10; default 2).",
        ge=0,
        le=10,
    )
    start_at: str | None = _opt(
        None,
        "Start by itself at this ISO 8601 time (the campaign stays a draft until then).",
        max_length=100,
    )
    end_at: str | None = _opt(
        None,
        "Stop at this ISO 8601 time: pending offers are cancelled, installs in flight finish.",
        max_length=100,
    )
    filter: str | None = _opt(
        None,
        "Target the devices that match this device query at each poll, e.g. "
        "group==field;metadata.site==berlin (@NAME: a saved filter).",
        max_length=4096,
    )
    saved_filter: str | None = _opt(None, "Target the devices of this saved filter.", max_length=64)

    def __post_init__(self) -> None:
        problems = [
            p for f in fields(self) if (p := _problem(f.name, getattr(self, f.name), f.metadata))
        ]
        if problems:
            raise InvalidInput(problems[0], problems=problems)


def _problem(name: str, value: Any, limits: Any) -> str | None:
    """What is wrong with one option's value, by its metadata limits."""
    if value is None:
        return None
    flag = "--" + name.replace("_", "-")
    if "ge" in limits and value < limits["ge"]:
        return f"{flag}: must be at least {limits['ge']}"
    if "le" in limits and value > limits["le"]:
        return f"{flag}: must be at most {limits['le']}"
    if "max_length" in limits and len(value) > limits["max_length"]:
        return f"{flag}: longer than {limits['max_length']} characters"
    return None
