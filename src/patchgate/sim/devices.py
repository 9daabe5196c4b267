"""The simulated device: the agent's A/B state machine (:mod:`patchgate.domain.ab_state`),
driven as the agent drives it, for a fleet of up to millions of devices.

Every virtual device holds a real :class:`~patchgate.domain.ab_state.BootEnv` and moves only
through ``ab_state``'s transitions (``begin_download``, ``image_written``, ``switch``,
``boot``, ``commit``, ``abort_install``, ``report_delivered``, ``raise_floor``). Two facts
make that cheap for a million devices:

* The transitions are pure functions of ``(env, arguments)`` and envs are immutable, so the
  result of a transition can be computed once and reused (memoised) — exactly the same env
  as calling the function again.
* Simulated devices of one fleet differ only in *where* they are, not in what their env
  holds (action ids name the campaign and kind, not the device), so the fleet has a few
  dozen distinct envs. :class:`EnvTable` interns them; a device is a small integer into the
  table (a NumPy array for the whole fleet).

:func:`run_install` is the agent's pass over one install (docs/agent.md "What one pass
does"), including power loss at a chosen point: the device keeps the env last persisted
(every transition persists before it acts), the bootloader runs ``boot`` at power-on, and
the agent resumes from the phase it finds. A device is *bricked* when its env breaks a
safety invariant (:func:`~patchgate.domain.ab_state.check_invariants`): no good slot with a
known image, or an active slot that is neither good nor on trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from patchgate.domain import ab_state
from patchgate.domain.ab_state import BootEnv, Offer, Phase
from patchgate.domain.errors import TransitionRefused

# Points at which power is cut during an install: right after the env of that phase was
# persisted (a cut inside a write is the same, for the env, as a cut after the last persist).
CUT_POINTS: Final = (
    Phase.DOWNLOADING,
    Phase.WRITTEN,
    Phase.PENDING_REBOOT,
    Phase.TRIAL_BOOT,
    Phase.COMMITTED,
)

OUTCOME_SUCCESS: Final = "success"
OUTCOME_REVERTED: Final = "reverted"


@dataclass(frozen=True, slots=True)
class Timing:
    """Minutes each part of an install takes on a simulated device."""

    write_verify: float = 2.0
    boot: float = 1.5
    health_check: float = 2.0
    watchdog: float = 3.0


class EnvTable:
    """Interned boot envs and memoised ``ab_state`` transitions (module docstring)."""

    def __init__(self) -> None:
        self.envs: list[BootEnv] = []
        # What a poll reads of each env (its installed version, its security floor), kept
        # by index: the env computes the first from its slots at every read.
        self.versions: list[str | None] = []
        self.floors: list[int] = []
        self._ids: dict[int, int] = {}
        self._memo: dict[tuple[int, str, str], int] = {}
        self._offers: dict[str, Offer] = {}
        self._sound: list[bool] = []
        self._installs: dict[tuple[int, str, bool, Phase | None], _Pass] = {}
        # The passes without a power cut, which take the same minutes on every device.
        self._uncut: dict[tuple[int, str, bool], InstallResult] = {}
        self._install_timing: Timing | None = None

    def add(self, env: BootEnv) -> int:
        """The index of ``env`` (interned by identity; transitions return shared objects)."""
        key = id(env)
        index = self._ids.get(key)
        if index is None:
            index = len(self.envs)
            self.envs.append(env)  # kept alive, so its id stays unique
            self.versions.append(env.installed_version)
            self.floors.append(env.security_floor)
            self._ids[key] = index
            self._sound.append(not ab_state.check_invariants(env))
        return index

    def register_offer(self, offer: Offer) -> str:
        """Make ``offer`` usable by key (its action id)."""
        self._offers[offer.action_id] = offer
        return offer.action_id

    def apply(self, index: int, op: str, arg: str = "") -> int:
        """The env index after transition ``op`` (with ``arg``: an offer key, action id or
        reason) from env ``index``; a refused transition raises ``TransitionRefused``."""
        key = (index, op, arg)
        found = self._memo.get(key)
        if found is not None:
            if found < 0:
                raise TransitionRefused(f"{op} refused from env {index}")
            return found
        try:
            step = self._transition(self.envs[index], op, arg)
        except TransitionRefused:
            self._memo[key] = -1
            raise
        result = self.add(step.env) if step.env is not self.envs[index] else index
        self._memo[key] = result
        return result

    def _transition(self, env: BootEnv, op: str, arg: str) -> ab_state.Step:
        ops: dict[str, Callable[[], ab_state.Step]] = {
            "begin_download": lambda: ab_state.begin_download(env, self._offers[arg]),
            "image_written": lambda: ab_state.image_written(env, self._offers[arg]),
            "switch": lambda: ab_state.switch(env),
            "boot": lambda: ab_state.boot(env),
            "commit": lambda: ab_state.commit(env),
            "revert": lambda: ab_state.revert(env, arg),
            "abort_install": lambda: ab_state.abort_install(env, arg),
            "report_delivered": lambda: ab_state.report_delivered(env, arg),
            "raise_floor": lambda: ab_state.raise_floor(env, int(arg)),
        }
        return ops[op]()

    def offer(self, key: str) -> Offer:
        """The offer registered under ``key``."""
        return self._offers[key]

    def env(self, index: int) -> BootEnv:
        return self.envs[index]

    def phase(self, index: int) -> Phase:
        return self.envs[index].phase

    def version(self, index: int) -> str | None:
        return self.versions[index]

    def sound(self, index: int) -> bool:
        """Whether env ``index`` keeps every safety invariant (not bricked)."""
        return self._sound[index]

    def install(
        self,
        env: int,
        offer_key: str,
        *,
        image_boots: bool,
        cut: Phase | None,
        outage: float,
        timing: Timing,
    ) -> InstallResult:
        """:func:`run_install`, memoised: a pass depends on the device only through its
        env index, the offer, whether the image boots and the cut point, and on the
        outage only through the minutes it adds; the minutes are summed in the pass's own
        order, so the result is the very one :func:`run_install` returns. A pass without a
        cut has no outage to add: its result is kept whole."""
        if timing is not self._install_timing:
            self._installs.clear()
            self._uncut.clear()
            self._install_timing = timing
        if cut is None:
            uncut = (env, offer_key, image_boots)
            result = self._uncut.get(uncut)
            if result is None:
                found = _install_pass(
                    self, env, offer_key, image_boots=image_boots, cut=None, timing=timing
                )
                result = self._uncut[uncut] = _result(found, outage)
            return result
        key = (env, offer_key, image_boots, cut)
        kept = self._installs.get(key)
        if kept is None:
            kept = self._installs[key] = _install_pass(
                self, env, offer_key, image_boots=image_boots, cut=cut, timing=timing
            )
        return _result(kept, outage)


class InstallResult(NamedTuple):
    """How one install pass ended: the env after the final report was delivered, the
    minutes it took from the end of the download, the outcome, and whether every env the
    device stood on when power was cut was sound. (A named tuple: one is made per install,
    a million in a million-device run, and a tuple is made several times faster than a
    frozen dataclass.)"""

    env: int
    minutes: float
    outcome: str
    sound: bool
    boots: int


@dataclass(frozen=True, slots=True)
class _Pass:
    """One install pass with the outage left open: ``parts`` are the minutes it adds, in
    order, None standing for the outage."""

    env: int
    parts: tuple[float | None, ...]
    outcome: str
    sound: bool
    boots: int


def run_install(
    table: EnvTable,
    env: int,
    offer_key: str,
    *,
    image_boots: bool,
    cut: Phase | None,
    outage: float,
    timing: Timing,
) -> InstallResult:
    """The agent's pass from a finished download to the delivered final report
    (docs/agent.md steps 1, 2 and 4): write and verify, switch, reboot, health check,
    commit — or, for an image that does not come up (``image_boots`` false), the watchdog
    resets until the bootloader falls back past ``bootlimit``. Power is cut once at
    ``cut`` (if given) for ``outage`` minutes; the device restarts through ``boot``.
    (:meth:`EnvTable.install` is the same, memoised.)"""
    found = _install_pass(table, env, offer_key, image_boots=image_boots, cut=cut, timing=timing)
    return _result(found, outage)


def _result(found: _Pass, outage: float) -> InstallResult:
    """The result of pass ``found`` with an outage of ``outage`` minutes (its minutes summed
    in the pass's own order)."""
    minutes = 0.0
    for part in found.parts:
        minutes += outage if part is None else part
    return InstallResult(found.env, minutes, found.outcome, found.sound, found.boots)


def _install_pass(
    table: EnvTable,
    env: int,
    offer_key: str,
    *,
    image_boots: bool,
    cut: Phase | None,
    timing: Timing,
) -> _Pass:
    parts: list[float | None] = []
    sound = True
    boots = 0
    cut_pending = cut
    version = table.offer(offer_key).version
    for _ in range(64):  # an install takes far fewer steps; a loop here would be a bug
        phase = table.phase(env)
        if cut_pending is not None and phase is cut_pending:
            cut_pending = None
            sound = sound and table.sound(env)
            parts.append(None)
            env = table.apply(env, "boot")
            boots += 1
            parts.append(timing.boot)
            continue
        if phase is Phase.DOWNLOADING:
            env = table.apply(env, "image_written", offer_key)
            parts.append(timing.write_verify)
        elif phase is Phase.WRITTEN:
            env = table.apply(env, "switch")
            env = table.apply(env, "boot")  # the Reboot command: the bootloader runs
            boots += 1
            parts.append(timing.boot)
        elif phase is Phase.PENDING_REBOOT:
            env = table.apply(env, "boot")
            boots += 1
            parts.append(timing.boot)
        elif phase is Phase.TRIAL_BOOT:
            if table.version(env) == version and not image_boots:
                parts.append(timing.watchdog)  # hangs; the watchdog resets the device
                env = table.apply(env, "boot")
                boots += 1
            else:
                parts.append(timing.health_check)
                env = table.apply(env, "commit")
        elif phase in (Phase.COMMITTED, Phase.REVERTED):
            report = table.env(env).report
            outcome = OUTCOME_SUCCESS
            if report is not None and report.outcome is ab_state.Outcome.FAILURE:
                outcome = OUTCOME_REVERTED
            if report is not None:
                env = table.apply(env, "report_delivered", report.action_id)
            return _Pass(env, tuple(parts), outcome, sound and table.sound(env), boots)
        else:
            raise TransitionRefused(f"install pass cannot continue from {phase.value}")
    raise TransitionRefused("install pass did not finish")


def abort(table: EnvTable, env: int, reason: str) -> int:
    """Give up a download the server cancelled (DDI cancelAction / 410 Gone): the slot
    being written stays bad, the failure report is delivered, the device is idle."""
    env = table.apply(env, "abort_install", reason)
    report = table.env(env).report
    if report is not None:
        env = table.apply(env, "report_delivered", report.action_id)
    return env
