"""A simulated device's DDI feedback as the server folds it: each report becomes an
execution event stepped by :func:`patchgate.domain.executions.step` and moves the device
between its stage's status counts; success counts per the device's client kind
(:mod:`.clients`): at once from a client that reports after its healthy reboot, else once
the device is seen again on the new version within the confirmation window (rules 1–3 of
docs/campaign-core.md)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Final

from patchgate.domain import executions as ex
from patchgate.domain.actions import ClientKind

from .clients import success_report
from .devices import EnvTable, InstallResult
from .events import CONFIRM_DUE, POLL, EventQueue
from .model import NEW, OLD, at
from .offline import OfflineModel

ROLLOUT: Final = 0
REVERT: Final = 1
CODE: Final = {
    ex.NONE: 0,
    ex.S_OFFERED: 1,
    ex.S_DOWNLOADING: 2,
    ex.S_INSTALLING: 3,
    ex.S_CONFIRMING: 4,
    ex.S_RETRYING: 5,
    ex.SUCCEEDED: 6,
    ex.FAILED: 7,
    ex.REVERTED: 8,
    ex.TIMED_OUT: 9,
    ex.CANCELLED: 10,
}
VERSIONS: Final = {ROLLOUT: NEW.version, REVERT: OLD.version}
# The same, by kind as an index, and the core's names the fold reads per report, bound
# once (a global read is cheaper than a module attribute's).
_VERSION_OF: Final = (VERSIONS[ROLLOUT], VERSIONS[REVERT])
_step: Final = ex.step
_settle: Final = ex.settle
_NONE: Final = ex.NONE
_TERMINAL: Final = ex.TERMINAL


class DeviceFeedback:
    """The feedback part of :class:`~.engine.Run` (the state below is the run's)."""

    open: list[ex.Execution | None]
    open_kind: bytearray
    pending: list[tuple[InstallResult, float, datetime] | None]
    # Each device's rollout events, in order, when a test asks for them.
    trace: dict[int, list[ex.Event]] | None
    tallies: list[dict[str, int]]
    revert_tally: dict[str, int]
    stage_list: list[int]
    mask_list: list[int]
    client_of_mask: list[ClientKind]
    status: bytearray
    rstatus: bytearray
    env: list[int]
    table: EnvTable
    queue: EventQueue
    offline: OfflineModel
    rng: random.Random
    confirm_minutes: float

    def _evaluate(self, t: float) -> None:
        raise NotImplementedError

    def _event(self, device: int, *events: ex.Event) -> None:
        old = self.open[device]
        assert old is not None
        self._fold(device, self.open_kind[device], old, *events)

    def _fold(self, device: int, kind: int, old: ex.Execution, *events: ex.Event) -> None:
        """Fold ``events`` (reports the device sends back to back, at one instant) into
        its open execution ``old`` of ``kind``, as the server folds each report; the
        counts move once, from the status before them to the status after."""
        if self.trace is not None and kind == ROLLOUT:
            self.trace.setdefault(device, []).extend(events)
        version = _VERSION_OF[kind]
        new = old
        for event in events:
            new = _step(_settle(new, event.at), event, version)
        self._move(device, kind, old, new)

    def _move(self, device: int, kind: int, old: ex.Execution, new: ex.Execution) -> None:
        old_status, status = old.status, new.status
        if old_status != status:
            # The device moves from one status count to the other (its stage's, or the
            # revert's); a device of no stage is counted nowhere.
            if kind == REVERT:
                tally: dict[str, int] | None = self.revert_tally
            else:
                stage = self.stage_list[device]
                tally = self.tallies[stage] if stage >= 0 else None
            if tally is not None:
                if old_status != _NONE:
                    tally[old_status] -= 1
                if status != _NONE:
                    tally[status] = tally.get(status, 0) + 1
            if status in _TERMINAL:
                self.open[device] = None
                (self.rstatus if kind == REVERT else self.status)[device] = CODE[status]
                return
        self.open[device] = new

    def _client(self, device: int) -> ClientKind:
        return self.client_of_mask[self.mask_list[device]]

    def _on_written(self, device: int, t: float) -> None:
        """A before-boot client's image is written: its last progress report, then
        ``closed``/``success`` before the reboot (:mod:`.clients`)."""
        if self.open[device] is None:
            return
        now = at(t)
        self._event(
            device,
            ex.Event(ex.INSTALLING, now),
            success_report(self._client(device), progress_at=now, success_at=now),
        )
        if self.open[device] is not None:
            self.queue.push(t + self.confirm_minutes, device, CONFIRM_DUE)

    def _back_after_reboot(self, device: int, t: float) -> None:
        """After its reboot a device polls (naming its version in installedBase) at once,
        or when it comes back online."""
        if self.open[device] is None:
            return
        back = self.offline.returns_at(device, t, self.rng)
        if back is None:
            self._seen(device, t)
        else:
            self.queue.push(back, device, POLL)

    def _seen(self, device: int, t: float) -> None:
        """The server sees the device running its installed version (rules 1c and 3)."""
        kind = self.open_kind[device]
        version = self.table.version(self.env[device])
        self._event(device, ex.Event(ex.SEEN_WITH_VERSION, at(t), version=version))
        if kind == ROLLOUT and self.status[device] == CODE[ex.REVERTED]:
            self._evaluate(t)

    def _on_confirm_due(self, device: int, t: float) -> None:
        """The confirmation window of a success report closed (rule 2)."""
        execution = self.open[device]
        if execution is None or execution.status != ex.S_CONFIRMING:
            return
        kind = self.open_kind[device]
        self._move(device, kind, execution, ex.settle(execution, at(t)))
        if kind == ROLLOUT:
            self._evaluate(t)
