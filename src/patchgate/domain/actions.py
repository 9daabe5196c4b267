"""hawkBit DDI actions: the state rules, pure (docs/ddi.md, "Actions and their rules").

An action is one release offered to one device. The device moves it with feedback on three
channels; the server moves it by requesting a cancellation. The rules here decide what each
message does, and which ones are refused:

    waiting_confirmation ──confirmed──► offered ──download──► downloading ──downloaded──►
    downloaded ──proceeding|scheduled|resumed──► running ──closed──► finished | error
    any active ──server cancel──► canceling ──cancel feedback closed──► canceled
    download-only: downloading ──downloaded──► downloaded (closed; nothing installed)

* Feedback never moves an action backwards: an intermediate report whose phase is behind
  the action's (``download`` after ``downloaded``) is kept in the history but leaves the
  status as it is, so a client that resends an old report after a reboot corrupts nothing.
* Feedback for a closed action is refused with :class:`ActionGone` (hawkBit answers 410).
* ``canceled`` on the deployment channel is recorded and changes nothing: the device
  cannot cancel an update by itself, as in hawkBit; on the cancel channel ``closed``
  confirms the cancellation and ``canceled`` is only a warning.
* Deployment feedback while the action waits for the user's confirmation is refused with
  :class:`ActionNotOffered` (hawkBit answers 404: the deployment is not offered yet).
* A denied confirmation keeps the action waiting, as hawkBit does, so the user can still
  accept it later; the operator may cancel it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from patchgate.domain.errors import Conflict, NotFound


class Execution(StrEnum):
    """``status.execution`` of DDI feedback."""

    CLOSED = "closed"
    PROCEEDING = "proceeding"
    CANCELED = "canceled"
    SCHEDULED = "scheduled"
    REJECTED = "rejected"
    RESUMED = "resumed"
    DOWNLOADED = "downloaded"
    DOWNLOAD = "download"


class Finished(StrEnum):
    """``status.result.finished`` of DDI feedback."""

    SUCCESS = "success"
    FAILURE = "failure"
    NONE = "none"


class HandlingType(StrEnum):
    """``deployment.download`` and ``deployment.update``."""

    SKIP = "skip"
    ATTEMPT = "attempt"
    FORCED = "forced"


class ActionType(StrEnum):
    """How an action is assigned, as hawkBit's management API names it."""

    FORCED = "forced"
    SOFT = "soft"
    DOWNLOAD_ONLY = "downloadonly"


class Status(StrEnum):
    """Where an action stands on the server."""

    WAITING_CONFIRMATION = "waiting_confirmation"
    OFFERED = "offered"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    RUNNING = "running"
    CANCELING = "canceling"
    FINISHED = "finished"
    ERROR = "error"
    CANCELED = "canceled"


TERMINAL = frozenset({Status.FINISHED, Status.ERROR, Status.CANCELED})

# Progress order of the active phases; feedback only ever raises it.
_RANK = {
    Status.WAITING_CONFIRMATION: 0,
    Status.OFFERED: 1,
    Status.DOWNLOADING: 2,
    Status.DOWNLOADED: 3,
    Status.RUNNING: 4,
}

_PHASE_OF = {
    Execution.DOWNLOAD: Status.DOWNLOADING,
    Execution.DOWNLOADED: Status.DOWNLOADED,
    Execution.PROCEEDING: Status.RUNNING,
    Execution.SCHEDULED: Status.RUNNING,
    Execution.RESUMED: Status.RUNNING,
}


class ActionGone(Conflict):
    """Feedback for an action that is already closed (hawkBit: 410 Gone)."""


class ActionNotOffered(NotFound):
    """A resource of an action that is not in the state that offers it (hawkBit: 404)."""


def is_terminal(status: str) -> bool:
    """True when the action is closed and takes no more feedback."""
    return status in TERMINAL


def handling_types(action_type: ActionType) -> tuple[HandlingType, HandlingType]:
    """(download, update) for an assignment type: forced → forced/forced, soft →
    attempt/attempt, download only → forced/skip."""
    if action_type is ActionType.FORCED:
        return HandlingType.FORCED, HandlingType.FORCED
    if action_type is ActionType.SOFT:
        return HandlingType.ATTEMPT, HandlingType.ATTEMPT
    return HandlingType.FORCED, HandlingType.SKIP


def initial_status(*, confirmation_required: bool, auto_confirm: bool) -> Status:
    """An action waits for the user's consent when its offer asks for it and the device
    has not switched auto-confirm on (CRA Annex I Part I(2)(c): the user may postpone)."""
    if confirmation_required and not auto_confirm:
        return Status.WAITING_CONFIRMATION
    return Status.OFFERED


def after_deployment_feedback(
    status: str, execution: Execution, finished: Finished, *, download_only: bool = False
) -> Status:
    """The status after feedback on ``deploymentBase/{id}/feedback``.

    Raises :class:`ActionGone` for a closed action and :class:`ActionNotOffered` while it
    waits for confirmation. ``rejected`` (the device declines for now) and reports behind
    the current phase leave the status unchanged.
    """
    current = Status(status)
    if current in TERMINAL:
        raise ActionGone(f"action is already closed ({current.value})")
    if current is Status.WAITING_CONFIRMATION:
        raise ActionNotOffered("the action waits for confirmation; nothing is deployed yet")
    if execution is Execution.CLOSED:
        return Status.ERROR if finished is Finished.FAILURE else Status.FINISHED
    if execution in (Execution.CANCELED, Execution.REJECTED):
        # hawkBit records both as warnings; the action stays as it is.
        return current
    target = _PHASE_OF[execution]
    if download_only and target is Status.DOWNLOADED and current is not Status.CANCELING:
        # A download-only action is done once the device has the bytes: hawkBit closes it
        # as ``downloaded`` (see :func:`closes`), not as installed.
        return Status.DOWNLOADED
    if current is Status.CANCELING:
        return current
    return target if _RANK[target] > _RANK[current] else current


def request_cancel(status: str) -> Status:
    """The status after the operator (or a halted campaign) cancels the action.

    An action the device never accepted is closed at once; an accepted one waits for the
    device to confirm the cancellation through ``cancelAction``.
    """
    current = Status(status)
    if current in TERMINAL:
        raise ActionGone(f"action is already closed ({current.value})")
    if current is Status.WAITING_CONFIRMATION:
        return Status.CANCELED
    return Status.CANCELING


def after_cancel_feedback(status: str, execution: Execution, finished: Finished) -> Status:
    """The status after feedback on ``cancelAction/{id}/feedback``.

    ``closed`` with success (or none) confirms the cancellation; ``rejected`` and
    ``closed`` with failure mean the device could not stop, so the update goes on
    (``running``). ``canceled`` here is a warning in hawkBit (the device "cancelled the
    cancellation request"), recorded without effect, like any other report.
    """
    current = Status(status)
    if current is Status.CANCELED:
        return current  # a repeated confirmation: nothing more to do
    if current in TERMINAL:
        raise ActionGone(f"action is already closed ({current.value})")
    if current is not Status.CANCELING:
        raise ActionNotOffered("no cancellation was requested for this action")
    if execution is Execution.CLOSED and finished is not Finished.FAILURE:
        return Status.CANCELED
    if execution is Execution.REJECTED or execution is Execution.CLOSED:
        return Status.RUNNING
    return current


def after_confirmation(status: str, confirmed: bool) -> Status:
    """The status after ``confirmationBase/{id}/feedback``: confirmed → offered; denied →
    still waiting. Raises for closed actions and for actions not waiting."""
    current = Status(status)
    if current in TERMINAL:
        raise ActionGone(f"action is already closed ({current.value})")
    if current is not Status.WAITING_CONFIRMATION:
        raise ActionNotOffered("the action does not wait for confirmation")
    return Status.OFFERED if confirmed else current


def closes(status: Status, *, download_only: bool) -> bool:
    """Whether moving to ``status`` closes the action: the terminal statuses, and
    ``downloaded`` for a download-only action (hawkBit's ``DOWNLOAD_ONLY``)."""
    return status in TERMINAL or (download_only and status is Status.DOWNLOADED)


_RESULT = {
    Status.FINISHED: "success",
    Status.ERROR: "failure",
    Status.CANCELED: "canceled",
    Status.DOWNLOADED: "downloaded",
}


def result_of(status: Status) -> str:
    """The ``result`` a closed action keeps."""
    return _RESULT[status]


# hawkBit's action status names (``actionHistory.status``).
HAWKBIT_STATUS = {
    Status.WAITING_CONFIRMATION: "WAIT_FOR_CONFIRMATION",
    Status.OFFERED: "RUNNING",
    Status.DOWNLOADING: "DOWNLOAD",
    Status.DOWNLOADED: "DOWNLOADED",
    Status.RUNNING: "RUNNING",
    Status.CANCELING: "CANCELING",
    Status.FINISHED: "FINISHED",
    Status.ERROR: "ERROR",
    Status.CANCELED: "CANCELED",
}

DEVICE_CHANNELS = frozenset({"deployment", "cancel", "confirmation"})


def history_messages(
    events_newest_first: list[tuple[str, tuple[str, ...], int | None]], limit: int
) -> tuple[str, ...]:
    """``actionHistory.messages``: what the device said (its ``details``, and the status
    code it reported), newest first, at most ``limit``; the server's own entries are left
    out, as hawkBit leaves out its "Update Server" messages. Events are
    ``(channel, details, code)``."""
    messages: list[str] = []
    for channel, details, code in events_newest_first:
        if channel not in DEVICE_CHANNELS:
            continue
        messages.extend(details)
        if code is not None:
            messages.append(f"Device reported status code: {code}")
        if len(messages) >= limit:
            break
    return tuple(messages[:limit])


def window_state(start: datetime | None, end: datetime | None, now: datetime) -> str | None:
    """``deployment.maintenanceWindow``: absent without a window, else ``available`` inside
    it and ``unavailable`` outside."""
    if start is None or end is None:
        return None
    return "available" if start <= now < end else "unavailable"


def effective_update(update: str, window: str | None) -> str:
    """Outside its maintenance window a device may download but not install."""
    return HandlingType.SKIP.value if window == "unavailable" else update


MIN_POLL_SECONDS = 30
MAX_POLL_SECONDS = 23 * 3600 + 59 * 60 + 59
# hawkBit's default number of polls before a maintenance window opens.
WINDOW_POLL_COUNT = 3


def polling_sleep(seconds: float) -> str:
    """``config.polling.sleep`` as ``HH:MM:SS``, kept within hawkBit's bounds (00:00:30 to
    23:59:59): clients parse two-digit hours and would fail on ``25:00:00``."""
    seconds = min(MAX_POLL_SECONDS, max(MIN_POLL_SECONDS, int(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def sleep_before_window(
    seconds: float, window_start: datetime | None, now: datetime, polls: int = WINDOW_POLL_COUNT
) -> float:
    """The poll interval for a device whose open action waits for a maintenance window:
    the time to the window's start split into ``polls`` polls, never longer than the
    usual interval nor shorter than the minimum (hawkBit's rule), so the device is there
    when the window opens. Without a coming window: the usual interval."""
    if window_start is None or now >= window_start:
        return seconds
    share = (window_start - now).total_seconds() / polls
    return max(float(MIN_POLL_SECONDS), min(seconds, share))


def cache_key(action_id: int, status: str, release_id: int) -> int:
    """The ``?c=`` value of an action link: changes whenever what the link answers changes,
    so a caching proxy never serves a stale deployment (signed 32-bit, as hawkBit's)."""
    value = zlib.crc32(f"{action_id}:{release_id}:{status}".encode())
    return value - (1 << 32) if value >= (1 << 31) else value


@dataclass(frozen=True)
class PollState:
    """What the base poll needs to know about a device to choose its links."""

    open_action_id: int | None
    open_action_status: str | None
    open_action_release_id: int | None
    installed_action_id: int | None
    config_requested: bool


def poll_links(state: PollState) -> dict[str, str]:
    """The ``_links`` of the base poll, as paths relative to the controller's resource:
    one of ``confirmationBase``/``cancelAction``/``deploymentBase`` for the open action,
    ``installedBase`` when nothing is open and something was installed, and ``configData``
    when the server wants the device's attributes."""
    links: dict[str, str] = {}
    action_id, status = state.open_action_id, state.open_action_status
    if action_id is not None and status is not None and not is_terminal(status):
        key = cache_key(action_id, status, state.open_action_release_id or 0)
        if status == Status.WAITING_CONFIRMATION:
            links["confirmationBase"] = f"confirmationBase/{action_id}?c={key}"
        elif status == Status.CANCELING:
            links["cancelAction"] = f"cancelAction/{action_id}"
        else:
            links["deploymentBase"] = f"deploymentBase/{action_id}?c={key}"
    elif state.installed_action_id is not None:
        links["installedBase"] = f"installedBase/{state.installed_action_id}"
    if state.config_requested:
        links["configData"] = "configData"
    return links


class ClientKind(StrEnum):
    """When a DDI client sends ``closed``/``success`` (docs/campaigns.md, "What counts as
    success"): ``after-boot`` clients send it once the new release booted healthy
    (SWUpdate's suricatta confirming with ``-c 2``, the patchgate agent after its health
    check), ``before-boot`` clients as soon as the image is written
    (rauc-hawkbit-updater), ``detect`` decides from the action's feedback."""

    AFTER_BOOT = "after-boot"
    BEFORE_BOOT = "before-boot"
    DETECT = "detect"


# A success report this soon after the device's previous report on the action came in the
# same session as the installation: no reboot happened between them.
SAME_SESSION = timedelta(seconds=30)
_INTERMEDIATE = frozenset(
    {
        Execution.PROCEEDING.value,
        Execution.DOWNLOAD.value,
        Execution.DOWNLOADED.value,
        Execution.SCHEDULED.value,
        Execution.RESUMED.value,
    }
)


def client_kind(groups: Iterable[str], configured: Mapping[str, ClientKind]) -> ClientKind:
    """The kind configured for the first of the device's groups (in name order) that has
    one, else ``detect``."""
    for group in sorted(groups):
        if group in configured:
            return configured[group]
    return ClientKind.DETECT


def success_proves_boot(
    kind: ClientKind,
    reports: Sequence[tuple[datetime, str | None, str | None]],
    index: int,
) -> bool:
    """Whether the ``closed``/``success`` report ``reports[index]`` (``(at, execution,
    finished)`` of the action's device reports, in order) proves a healthy boot. With
    ``detect``, a success sent within :data:`SAME_SESSION` of the device's previous
    progress report is taken as sent before the reboot: it counts once the device is seen
    again on the new version."""
    if kind is not ClientKind.DETECT:
        return kind is ClientKind.AFTER_BOOT
    at = reports[index][0]
    for earlier_at, execution, _ in reversed(reports[:index]):
        if execution in _INTERMEDIATE:
            return at - earlier_at >= SAME_SESSION
    return True


def parse_client_kinds(text: str) -> dict[str, ClientKind]:
    """``group=kind,group=kind`` (``PATCHGATE_CLIENT_KINDS``); ``ValueError`` naming the
    bad item otherwise."""
    kinds: dict[str, ClientKind] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        group, sep, kind = item.partition("=")
        try:
            if not sep or not group.strip():
                raise ValueError(item)
            kinds[group.strip()] = ClientKind(kind.strip())
        except ValueError:
            known = ", ".join(k.value for k in ClientKind)
            raise ValueError(f"client kind {item.strip()!r}: use group=kind ({known})") from None
    return kinds
