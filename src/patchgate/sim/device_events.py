"""A simulated device's own events in a run of :mod:`.engine`: its polls, answered by
:func:`~patchgate.domain.campaigns.decide` on the facts the run keeps for it (as the server
answers them, docs/campaign-core.md "The poll"); the offers it starts, including those a
push notice holds until the rate limit allows; its download; and its install pass through
the A/B state machine (:mod:`.devices`), ending in the new release or a fallback, with the
reports that follow folded as the server folds them (:mod:`.feedback`)."""

from __future__ import annotations

from collections import deque

from patchgate.domain import executions as ex
from patchgate.domain.campaigns import (
    COMPLETED,
    PAUSED,
    RATE_LIMITED,
    RETRY_BACKOFF,
    REVERTING,
    RUNNING,
    CampaignPlan,
    DeviceFacts,
    Offer,
    Snapshot,
    decide,
    open_action_of,
)
from patchgate.domain.ratelimit import TokenBucket

from .clients import success_report
from .devices import CUT_POINTS, Timing, abort
from .events import DOWNLOAD_DONE, FINISH, POLL, WRITTEN
from .feedback import CODE, REVERT, ROLLOUT, DeviceFeedback
from .model import CAMPAIGN_ID, NEW, OLD, PRODUCT, REVERT_ACTION, ROLLOUT_ACTION, at
from .scenario import BEFORE_BOOT, GROUPS_OF, DeviceItems, Scenario

_ROLLOUT, _REVERT = ROLLOUT, REVERT
_CODE = CODE
# The core's names a device's events read, bound once (a global read is cheaper than a
# module attribute's).
_Event = ex.Event
_NEW = ex.NEW
_OFFERED, _DOWNLOADING = ex.OFFERED, ex.DOWNLOADING
_DOWNLOADED, _INSTALLING = ex.DOWNLOADED, ex.INSTALLING
_TERMINAL_CODES = frozenset(_CODE[s] for s in ex.TERMINAL)
_FINISHED = frozenset({CAMPAIGN_ID})
_NOTHING: frozenset[int] = frozenset()
# The campaign states in which a downloaded rollout installs (any other cancelled it).
_OFFERING = frozenset({RUNNING, PAUSED, COMPLETED})


class DeviceEvents(DeviceFeedback):
    """A device's events in :class:`~.engine.Run` (the state below is the run's)."""

    sc: Scenario
    poll: float
    push: bool
    plan: CampaignPlan
    snapshot: Snapshot
    tokens: dict[int, TokenBucket]
    waiting: deque[int]
    items: DeviceItems
    ids: list[str]
    salt: str
    buckets: list[int]
    bad_release: bool
    timing: Timing
    exposed: bytearray
    installed: bytearray
    ab_reverted: bytearray
    revert_ok: bytearray
    on_new: bytearray
    unsound: bytearray
    n_installed: int
    n_new: int
    in_flight: int
    power_cuts: int
    health_started: bool

    def _next_poll(self, t: float) -> float:
        j = self.sc.poll_jitter
        return t + self.poll * (1 + j * (2 * self.rng.random() - 1))

    def _facts(self, device: int) -> DeviceFacts:
        env = self.env[device]
        table = self.table
        action = None
        execution = self.open[device]
        if execution is not None:
            release = OLD if self.open_kind[device] == _REVERT else NEW
            action = open_action_of(execution, device + 1, CAMPAIGN_ID, release)
        return DeviceFacts(
            self.ids[device],
            PRODUCT,
            groups=GROUPS_OF[self.mask_list[device]],
            installed_version=table.versions[env],
            security_floor=table.floors[env],
            open_action=action,
            finished_campaigns=_FINISHED if self.status[device] in _TERMINAL_CODES else _NOTHING,
            finished_reverts=_FINISHED if self.rstatus[device] in _TERMINAL_CODES else _NOTHING,
            # The fleet's bucket of the device (the campaign's salt is the fleet's): the
            # poll reads it instead of hashing the id again.
            cohort=(self.salt, self.buckets[device]),
        )

    def _on_poll(self, device: int, t: float) -> None:
        execution = self.open[device]
        if execution is not None:
            if execution.status != ex.S_CONFIRMING or self.pending[device] is not None:
                return  # mid-install: the agent does not poll until its pass ends
            self._seen(device, t)  # back online after its reboot
            if self.open[device] is not None:
                return
        if self.offline.share > 0:  # (without offline devices every device is online)
            back = self.offline.returns_at(device, t, self.rng)
            if back is not None:
                self.queue.push(back, device, POLL)
                return
        decision = decide(self._facts(device), self.snapshot, at(t), self.tokens)
        if decision.offer is not None:
            if decision.tokens is not None:
                self.tokens[CAMPAIGN_ID] = decision.tokens
            self._start(device, t, decision.offer)
        elif decision.reason == RATE_LIMITED and self.push:
            self.waiting.append(device)  # notified; dispatched when the rate allows
        elif decision.reason in (RATE_LIMITED, RETRY_BACKOFF):
            self.queue.push(self._next_poll(t), device, POLL)

    def _dispatch(self, t: float) -> None:
        """Offer to notified devices waiting for the rate limit, in order, while tokens
        last (a pushed job reaches a device when the rollout rate lets it)."""
        waiting = self.waiting
        while waiting:
            device = waiting[0]
            if self.open[device] is not None:
                waiting.popleft()
                continue
            decision = decide(self._facts(device), self.snapshot, at(t), self.tokens)
            if decision.reason == RATE_LIMITED:
                return
            waiting.popleft()
            if decision.offer is not None:
                if decision.tokens is not None:
                    self.tokens[CAMPAIGN_ID] = decision.tokens
                self._start(device, t, decision.offer)

    def _start(self, device: int, t: float, offer: Offer) -> None:
        revert = offer.kind == "revert"
        kind = _REVERT if revert else _ROLLOUT
        now = at(t)
        self.open_kind[device] = kind
        key = REVERT_ACTION if revert else ROLLOUT_ACTION
        env = self.env
        env[device] = self.table.apply(env[device], "begin_download", key)
        self._fold(device, kind, _NEW, _Event(_OFFERED, now), _Event(_DOWNLOADING, now))
        self.in_flight += 1
        self.queue.push(t + self.items.download_minutes[device], device, DOWNLOAD_DONE)

    def _on_download_done(self, device: int, t: float) -> None:
        now = at(t)
        kind = self.open_kind[device]
        env = self.env
        if kind == _ROLLOUT and self.plan.progress.state not in _OFFERING:
            # The halt cancelled the action before it installed: the device's next contact
            # gets cancelAction (410 for its feedback) and it keeps its running slot.
            env[device] = abort(self.table, env[device], "cancelled by server")
            self._event(device, ex.Event(ex.CANCELLED_EVENT, now))
            self.in_flight -= 1
            self._after(device, t)
            return
        self._event(device, _Event(_DOWNLOADED, now), _Event(_INSTALLING, now))
        items = self.items
        if kind == _REVERT:
            cut_code = items.cut_revert[device]
            boots = True
            key = REVERT_ACTION
        else:
            cut_code = items.cut_rollout[device]
            boots = not items.boot_fails[device]
            key = ROLLOUT_ACTION
            if not self.installed[device]:
                self.installed[device] = 1
                self.n_installed += 1
            if self.bad_release:
                self.exposed[device] = 1
        cut = CUT_POINTS[cut_code - 1] if cut_code else None
        result = self.table.install(
            env[device],
            key,
            image_boots=boots,
            cut=cut,
            outage=items.outage[device],
            timing=self.timing,
        )
        if cut is not None:
            self.power_cuts += 1
        # The pass, and when it began (in minutes and as the clock's datetime: its success
        # report names that instant, converted once, not again at its end).
        self.pending[device] = (result, t, now)
        self.queue.push(t + result.minutes, device, FINISH)
        if self.mask_list[device] & BEFORE_BOOT:
            # The client reports success once the image is written (after the outage of
            # a cut during the download), before its reboot.
            written = self.timing.write_verify
            if cut is CUT_POINTS[0]:
                written += items.outage[device] + self.timing.boot
            self.queue.push(t + written, device, WRITTEN)

    def _on_finish(self, device: int, t: float) -> None:
        """The install pass ended: the device rebooted into the new release or fell back."""
        pending = self.pending[device]
        assert pending is not None
        self.pending[device] = None
        result, began_t, began_at = pending
        kind = self.open_kind[device]
        self.env[device] = result.env
        self.in_flight -= 1
        if not result.sound:
            self.unsound[device] = 1
        success = result.outcome == "success"
        if self.mask_list[device] & BEFORE_BOOT:
            self._back_after_reboot(device, t)  # its success was reported when written
        elif success:
            start = t - result.minutes
            # ``at`` is pure: the datetime of the instant the pass began, when the float
            # subtraction gives that instant back exactly (it mostly does).
            started = began_at if start == began_t else at(start)
            client = self.client_of_mask[self.mask_list[device]]
            self._event(device, success_report(client, progress_at=started, success_at=at(t)))
        else:
            # The agent reports ``closed``/``failure`` after its A/B fallback: a failure
            # once installing, as the server folds it (services: DDI feedback).
            self._event(device, ex.Event(ex.FAILURE_REPORTED, at(t)))
        if success:
            if kind == _ROLLOUT:
                self._set_new(device, True)
            else:
                self._set_new(device, False)
                self.revert_ok[device] = 1
        elif kind == _ROLLOUT:
            self.ab_reverted[device] = 1
            # Gates are evaluated when feedback arrives; a failure is the feedback that
            # can halt, so it is evaluated at once (the timer covers the rest).
            self._evaluate(t)
        self._after(device, t)

    def _after(self, device: int, t: float) -> None:
        if self.on_new[device] and self.plan.progress.state == REVERTING:
            self.queue.push(self._next_poll(t), device, POLL)

    def _set_new(self, device: int, value: bool) -> None:
        if bool(self.on_new[device]) != value:
            self.on_new[device] = value
            self.n_new += 1 if value else -1
            if value and not self.health_started:
                self.health_started = True
