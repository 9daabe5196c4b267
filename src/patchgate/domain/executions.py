"""What counts as success: pure rules over execution events (docs/architecture.md).

An *execution* is one device's part in one campaign. Its status is never stored as a
counter: it is folded from the device's events, in order, by :func:`step`, and aged by
:func:`settle` at evaluation time. Stage counts are folded statuses (:func:`tally`).

Rules implemented here:

1. **Success means a healthy boot of the new release, never "installed".** An execution
   succeeds when (a) the device reports success *and* that report proves the new release
   booted healthy (``SUCCESS_REPORTED`` with ``confirmed=True``: the DDI client reports
   ``closed``/``success`` after its post-reboot health check, as the patchgate agent and
   SWUpdate's suricatta do), or (b) health telemetry arrives from the new version, or (c)
   for clients that report success before rebooting (rauc-hawkbit-updater), the device is
   seen again *reporting the new version* within ``confirmation_window`` after its success
   report (or after installing, for a client that came back without a report). Until then
   it is ``confirming``.
2. **Timeouts.** A ``confirming`` execution not confirmed within ``confirmation_window``
   is ``timed_out``. An open execution (offered … installing, or retrying) whose device has
   sent nothing for ``action_timeout`` is ``timed_out``. With a campaign's in-progress
   timeout (``in_progress_timeout``, ``campaign create --timeout``), an attempt not
   finished that long after its offer has timed out: before installing, that is a
   transient failure (rule 4: retried within the budget, ``timed_out`` beyond it); once
   installing, it is ``timed_out`` at once (the device may be stuck mid-update, which a
   gate must see, as AWS IoT Jobs counts a ``TIMED_OUT`` execution).
3. **Reverts.** ``REVERTED`` (the device fell back to its known-good slot) or the device
   seen with a *different* version after it reported installing or success means
   ``reverted``. A succeeded execution becomes ``reverted`` on such evidence too.
4. **Transient failures are retried, and are not gate failures.** ``FAILURE_REPORTED``
   with ``transient=True`` (download interrupted, disk busy: the client says it may retry)
   moves to ``retrying`` while ``attempts ≤ max_retries``; the next offer may be made after
   ``retry_backoff × 2^(attempts−1)``. A transient failure beyond the retry budget, or
   any non-transient failure, is ``failed``.
5. **Cancelled** (DDI ``cancelAction`` acknowledged, or the campaign cancelled it before
   installing) is terminal and counts against nothing.
6. Terminal statuses (``succeeded``, ``failed``, ``reverted``, ``timed_out``,
   ``cancelled``) are final, except ``succeeded`` → ``reverted`` (rule 3). Events after a
   terminal status are otherwise ignored, so replaying the same events always gives the
   same status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Final

from patchgate.domain.records import quick_init

# Event kinds (past tense: they record what a device did or reported).
OFFERED: Final = "offered"
DOWNLOADING: Final = "downloading"
DOWNLOADED: Final = "downloaded"
INSTALLING: Final = "installing"
SUCCESS_REPORTED: Final = "success-reported"
FAILURE_REPORTED: Final = "failure-reported"
REVERTED_EVENT: Final = "reverted"
HEALTH: Final = "health"
SEEN_WITH_VERSION: Final = "seen-with-version"
CANCELLED_EVENT: Final = "cancelled"
EVENT_KINDS: Final = frozenset(
    {
        OFFERED,
        DOWNLOADING,
        DOWNLOADED,
        INSTALLING,
        SUCCESS_REPORTED,
        FAILURE_REPORTED,
        REVERTED_EVENT,
        HEALTH,
        SEEN_WITH_VERSION,
        CANCELLED_EVENT,
    }
)

# The event a stored DDI step (the action's status after it) stands for; ``finished``,
# ``error`` and ``canceled`` are read with their details (``closed`` success, failure).
STEP_EVENT: Final = {
    "waiting_confirmation": OFFERED,
    "offered": OFFERED,
    "downloading": DOWNLOADING,
    "downloaded": DOWNLOADED,
    "running": INSTALLING,
}

# Execution statuses.
NONE: Final = "none"
S_OFFERED: Final = "offered"
S_DOWNLOADING: Final = "downloading"
S_INSTALLING: Final = "installing"
S_CONFIRMING: Final = "confirming"
S_RETRYING: Final = "retrying"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REVERTED: Final = "reverted"
TIMED_OUT: Final = "timed_out"
CANCELLED: Final = "cancelled"
TERMINAL: Final = frozenset({SUCCEEDED, FAILED, REVERTED, TIMED_OUT, CANCELLED})
OPEN: Final = frozenset({S_OFFERED, S_DOWNLOADING, S_INSTALLING, S_CONFIRMING, S_RETRYING})
# Before installing, an action can still be cancelled (DDI cancelAction) or superseded.
CANCELLABLE: Final = frozenset({S_OFFERED, S_DOWNLOADING, S_RETRYING})

# The server's DDI action statuses (``patchgate.domain.actions.Status``) of an open action,
# as this module's execution statuses: what a halt or a supersession reads of a stored
# action. ``DDI_CANCELLABLE`` are the stored statuses a halt cancels (rule 5).
FROM_DDI_STATUS: Final = {
    "waiting_confirmation": S_OFFERED,
    "offered": S_OFFERED,
    "downloading": S_DOWNLOADING,
    "downloaded": S_DOWNLOADING,
    "running": S_INSTALLING,
}
DDI_CANCELLABLE: Final = frozenset(s for s, e in FROM_DDI_STATUS.items() if e in CANCELLABLE)


@quick_init
@dataclass(frozen=True, slots=True)
class Event:
    """One thing a device did or reported about one execution.

    ``version`` is the version the device reported (``SEEN_WITH_VERSION``, ``HEALTH``);
    ``confirmed`` marks a success report made after a healthy reboot (rule 1a);
    ``transient`` a failure the client may retry (rule 4); ``crashes`` and
    ``exposure_hours`` carry health telemetry (crashes counted over that many device-hours).
    """

    kind: str
    at: datetime
    version: str | None = None
    confirmed: bool = False
    transient: bool = False
    crashes: int = 0
    exposure_hours: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    """The timing rules of rules 1–4, with defaults a 15-minute-poll fleet can meet."""

    confirmation_window: timedelta = timedelta(hours=2)
    action_timeout: timedelta = timedelta(hours=24)
    max_retries: int = 2
    retry_backoff: timedelta = timedelta(minutes=10)
    in_progress_timeout: timedelta | None = None

    def backoff(self, attempts: int) -> timedelta:
        """The wait before the next offer after attempt number ``attempts`` failed
        transiently (rule 4): ``retry_backoff × 2^(attempts−1)``."""
        return self.retry_backoff * int(2 ** max(0, attempts - 1))


DEFAULT_EXECUTION_POLICY: Final = ExecutionPolicy()


@quick_init
@dataclass(frozen=True, slots=True)
class Execution:
    """The folded state of one execution: status, attempts, and the times the rules need."""

    status: str = NONE
    attempts: int = 0
    last_event_at: datetime | None = None
    success_reported_at: datetime | None = None
    finished_at: datetime | None = None
    retry_after: datetime | None = None
    offered_at: datetime | None = None  # when the current attempt was offered

    @property
    def is_open(self) -> bool:
        """Whether this execution is the device's one open action."""
        return self.status in OPEN


NEW: Final = Execution()


def _finish(state: Execution, status: str, at: datetime) -> Execution:
    return Execution(
        status, state.attempts, at, state.success_reported_at, at, None, state.offered_at
    )


# Progress events and the status each moves an open execution to.
_PROGRESS: Final = {DOWNLOADING: S_DOWNLOADING, DOWNLOADED: S_DOWNLOADING, INSTALLING: S_INSTALLING}


def step(
    state: Execution,
    event: Event,
    release_version: str,
    policy: ExecutionPolicy = DEFAULT_EXECUTION_POLICY,
) -> Execution:
    """The execution after ``event`` (rules 1, 3, 4, 5, 6). Pure and constant-time.

    The common results are built directly rather than through ``dataclasses.replace``,
    which inspects the fields on every call (the fleet simulator folds every event of
    every device, and the server every report)."""
    kind, at = event.kind, event.at
    status = state.status
    if status in TERMINAL:
        if status == SUCCEEDED and (
            kind == REVERTED_EVENT
            or (kind in (SEEN_WITH_VERSION, HEALTH) and _other(event, release_version))
        ):
            return _finish(state, REVERTED, at)  # rule 3, after success
        return state  # rule 6
    moved_to = _PROGRESS.get(kind)
    if moved_to is not None or kind == OFFERED:
        attempts, offered_at = state.attempts, state.offered_at
        if moved_to is None:
            moved_to = S_OFFERED
            if status in (NONE, S_RETRYING):  # a new attempt: its in-progress timer starts
                attempts += 1
                offered_at = at
        return Execution(
            moved_to,
            attempts,
            at,
            state.success_reported_at,
            state.finished_at,
            state.retry_after,
            offered_at,
        )
    if kind == SUCCESS_REPORTED:
        if event.confirmed:
            return _finish(state, SUCCEEDED, at)  # rule 1a
        return Execution(  # confirmed later (rule 1c) or timed out (rule 2)
            S_CONFIRMING,
            state.attempts,
            at,
            at,
            state.finished_at,
            state.retry_after,
            state.offered_at,
        )
    if kind in (HEALTH, SEEN_WITH_VERSION):
        return _seen(state, event, release_version)
    if kind == REVERTED_EVENT:
        return _finish(state, REVERTED, at)
    if kind == FAILURE_REPORTED:
        if event.transient and state.attempts <= policy.max_retries:
            return _retrying(state, at, policy)
        return _finish(state, FAILED, at)  # rule 4
    if kind == CANCELLED_EVENT:
        return _finish(state, CANCELLED, at)  # rule 5
    raise ValueError(f"unknown execution event kind {kind!r}")


def _retrying(state: Execution, at: datetime, policy: ExecutionPolicy) -> Execution:
    """A transient failure at ``at`` within the budget: offered again after the back-off."""
    return replace(
        state, status=S_RETRYING, last_event_at=at, retry_after=at + policy.backoff(state.attempts)
    )


def _seen(state: Execution, event: Event, release_version: str) -> Execution:
    """A health report or a poll naming the version the device runs (rules 1b, 1c, 3)."""
    at, status = event.at, state.status
    if event.version == release_version:
        if event.kind == HEALTH or status in (S_INSTALLING, S_CONFIRMING):
            return _finish(state, SUCCEEDED, at)  # rules 1b, 1c
        return replace(state, last_event_at=at)
    if event.version is not None and status in (S_INSTALLING, S_CONFIRMING):
        return _finish(state, REVERTED, at)  # rule 3: came back on another version
    return replace(state, last_event_at=at)


def _other(event: Event, release_version: str) -> bool:
    return event.version is not None and event.version != release_version


def settle(
    state: Execution, now: datetime, policy: ExecutionPolicy = DEFAULT_EXECUTION_POLICY
) -> Execution:
    """The execution as it stands at ``now``: applies the timeouts of rule 2."""
    status, last = state.status, state.last_event_at
    if status not in OPEN or last is None:
        return state
    if policy.in_progress_timeout is not None:  # (none by default: nothing to check)
        timed = _in_progress_timeout(state, now, policy)
        if timed is not None:
            return timed
    if status == S_CONFIRMING and state.success_reported_at is not None:
        deadline = state.success_reported_at + policy.confirmation_window
        if now >= deadline:
            return _finish(state, TIMED_OUT, deadline)
        return state
    deadline = last + policy.action_timeout
    if now >= deadline:
        return _finish(state, TIMED_OUT, deadline)
    return state


def in_progress_deadline(state: Execution, policy: ExecutionPolicy) -> datetime | None:
    """When the current attempt times out under the campaign's in-progress timeout (rule
    2), or None: no such timeout, no attempt out, or one waiting for its retry."""
    timeout = policy.in_progress_timeout
    if timeout is None or state.offered_at is None or state.status not in OPEN:
        return None
    if state.status == S_RETRYING:
        return None
    return state.offered_at + timeout


def _in_progress_timeout(
    state: Execution, now: datetime, policy: ExecutionPolicy
) -> Execution | None:
    deadline = in_progress_deadline(state, policy)
    if deadline is None or now < deadline:
        return None
    if state.status in CANCELLABLE and state.attempts <= policy.max_retries:
        return _retrying(state, deadline, policy)  # not installing yet: transient (rule 4)
    return _finish(state, TIMED_OUT, deadline)


def fold(
    events: Iterable[Event],
    release_version: str,
    now: datetime,
    policy: ExecutionPolicy = DEFAULT_EXECUTION_POLICY,
    *,
    attempts: int = 0,
) -> Execution:
    """The execution at ``now`` from its events in time order (timeouts applied between
    events too, so a success report after a timeout does not revive it). ``attempts``:
    offers made before these events (a retry continues the count of rule 4)."""
    state = replace(NEW, attempts=attempts)
    for event in events:
        state = step(settle(state, event.at, policy), event, release_version, policy)
    return settle(state, now, policy)


@dataclass(frozen=True, slots=True)
class Counts:
    """Devices by execution status, each device counted once by its current status
    (docs/contract.md ``counts``). ``eligible`` is the number of devices admitted to the
    stage(s), which comes from the cohort rules, not from events."""

    eligible: int = 0
    offered: int = 0
    downloading: int = 0
    installing: int = 0
    confirming: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    reverted: int = 0
    timed_out: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        """Executions with an outcome that gates judge: succeeded, failed, reverted,
        timed out (cancelled ones are no evidence either way)."""
        return self.succeeded + self.failed + self.reverted + self.timed_out

    @property
    def open(self) -> int:
        """Executions still open (the devices' open actions)."""
        return self.offered + self.downloading + self.installing + self.confirming + (self.retrying)

    def of(self, status: str) -> int:
        """The count for a status name (``timed_out``, ``failed``…)."""
        return int(getattr(self, _FIELD[status]))

    def moved(self, old: str, new: str) -> Counts:
        """These counts after one device moved from status ``old`` to ``new`` (``none``
        for a device not counted), for callers that fold events incrementally."""
        if old == new:
            return self
        changes: dict[str, int] = {}
        if old != NONE:
            changes[_FIELD[old]] = getattr(self, _FIELD[old]) - 1
        if new != NONE:
            changes[_FIELD[new]] = changes.get(_FIELD[new], getattr(self, _FIELD[new])) + 1
        return replace(self, **changes)

    def plus(self, other: Counts) -> Counts:
        """Field-wise sum (a campaign's counts are the sum of its stages')."""
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def to_json(self) -> dict[str, int]:
        """The docs/contract.md ``counts`` object (and ``confirming``, ``retrying``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FIELD: Final = {
    S_OFFERED: "offered",
    S_DOWNLOADING: "downloading",
    S_INSTALLING: "installing",
    S_CONFIRMING: "confirming",
    S_RETRYING: "retrying",
    SUCCEEDED: "succeeded",
    FAILED: "failed",
    REVERTED: "reverted",
    TIMED_OUT: "timed_out",
    CANCELLED: "cancelled",
}


def tally(statuses: Iterable[str], eligible: int = 0) -> Counts:
    """Counts from execution statuses (one per device)."""
    numbers = dict.fromkeys(_FIELD.values(), 0)
    for status in statuses:
        if status != NONE:
            numbers[_FIELD[status]] += 1
    return Counts(eligible=eligible, **numbers)


def tally_stages(
    stage_statuses: Iterable[tuple[int, str]], eligible: Sequence[int]
) -> tuple[Counts, ...]:
    """Per-stage counts from ``(stage index, status)`` pairs, one per device with an
    execution; ``eligible[i]`` is the number of devices stage ``i`` admitted first."""
    numbers = [dict.fromkeys(_FIELD.values(), 0) for _ in eligible]
    for stage, status in stage_statuses:
        if status != NONE:
            numbers[stage][_FIELD[status]] += 1
    return tuple(Counts(eligible=e, **n) for e, n in zip(eligible, numbers, strict=True))


@dataclass(frozen=True, slots=True)
class HealthTally:
    """Crashes and exposure (device-hours) of one cohort, summed from ``HEALTH`` events:
    the updated cohort (devices confirmed on the new release) or the baseline cohort
    (devices still on the previous release over the same period)."""

    crashes: int = 0
    exposure_hours: float = 0.0

    def add(self, event: Event) -> HealthTally:
        """This tally with one health report added."""
        return HealthTally(self.crashes + event.crashes, self.exposure_hours + event.exposure_hours)

    @property
    def rate_per_day(self) -> float | None:
        """Crashes per device-day, or ``None`` without exposure."""
        if self.exposure_hours <= 0:
            return None
        return self.crashes / self.exposure_hours * 24


NO_HEALTH: Final = HealthTally()
