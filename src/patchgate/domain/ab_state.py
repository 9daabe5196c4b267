"""The A/B slot state machine: pure rules for installing, booting, committing and reverting.

A device has two slots, ``a`` and ``b``. One holds the running, known-good image; the other
receives updates. This module decides every transition and says which side effects must
follow; it performs none. The agent, the simulator and the tests all drive the same rules,
so what the power-fail test proves of this module holds for each of them.

Shape (after python-tuf's ``TrustedMetadataSet``: the checks live here, the I/O outside):

- :class:`BootEnv` is the whole persisted state: the variables a bootloader reads (active
  slot, ``upgrade_available``, ``bootcount``, ``bootlimit``, per-slot marks, the
  ``security_floor``; named as U-Boot, RAUC and Mender use them) plus the agent's
  :class:`Phase` and the report it still owes the server.
- Each transition is a function ``(env, ...) -> Step``. A :class:`Step` carries the new env
  and the :data:`Command` values to execute, in order: :class:`PersistEnv` before anything
  that depends on it, :class:`Reboot` last. The executor (an interface in the agent) may be
  interrupted at any call; because every transition persists before it acts, a device that
  loses power comes back in either the old or the new state, never in between.
- A transition that the rules forbid raises :class:`~patchgate.domain.errors.TransitionRefused`.

The phases::

    idle ──begin_download──► downloading ──image_written──► written ──switch──► pending-reboot
      ▲                         │ abort_install                                    │ boot
      │                         ▼                                                  ▼
      └──── report_delivered ◄── committed ◄──commit── trial-boot ──revert──► reverted
                              ◄───────────────────────────────────────────────────┘
                                   (the bootloader reverts too, past bootlimit)

The safety rules, checked by :func:`check_invariants` and the Hypothesis properties:

1. There is always at least one slot marked good whose image the env knows (hash).
2. The slot being written is never the active slot and is never marked good while written.
3. When no update is on trial (``upgrade_available`` false), the active slot is good.
4. When an update is on trial, the fallback slot is good, and at most ``bootlimit + 1``
   boots without a commit bring the device back to it (:func:`boot`).
5. The ``security_floor`` never drops and never rises above the security version of the
   committed running image (so a fallback always stays allowed); an offer below the floor is
   refused (:func:`admissible`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from patchgate.domain.errors import InvalidInput, TransitionRefused

__all__ = [
    "SLOTS",
    "BootEnv",
    "Command",
    "Offer",
    "Outcome",
    "PendingReport",
    "PersistEnv",
    "Phase",
    "Reboot",
    "Slot",
    "SlotState",
    "Step",
    "abort_install",
    "admissible",
    "begin_download",
    "boot",
    "check_invariants",
    "commit",
    "fresh_env",
    "image_written",
    "other",
    "raise_floor",
    "report_delivered",
    "revert",
    "switch",
]

SLOTS: tuple[str, str] = ("a", "b")


class Phase(enum.StrEnum):
    """Where the device is in an update."""

    IDLE = "idle"
    DOWNLOADING = "downloading"
    WRITTEN = "written"
    PENDING_REBOOT = "pending-reboot"
    TRIAL_BOOT = "trial-boot"
    COMMITTED = "committed"
    REVERTED = "reverted"


class SlotState(enum.StrEnum):
    """A slot's mark, as RAUC keeps it: good (booted and confirmed), bad (failed or being
    overwritten), unknown (written, not yet confirmed)."""

    GOOD = "good"
    BAD = "bad"
    UNKNOWN = "unknown"


class Outcome(enum.StrEnum):
    """How an update ended, as owed to the server (DDI ``closed`` with this result)."""

    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True)
class Slot:
    """What the env knows of one slot's contents."""

    state: SlotState = SlotState.BAD
    version: str | None = None
    sha256: str | None = None
    size: int = 0
    security_version: int = 0
    target: str | None = None

    @property
    def has_image(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class PendingReport:
    """The final DDI feedback the device owes for an action, kept until delivered."""

    action_id: str
    outcome: Outcome
    details: tuple[str, ...]


@dataclass(frozen=True)
class Offer:
    """An update the server offered and the signed metadata vouched for."""

    action_id: str
    version: str
    sha256: str
    size: int
    security_version: int = 0
    target: str | None = None


@dataclass(frozen=True)
class BootEnv:
    """Everything persisted: bootloader variables, slot marks, the agent's phase.

    ``booted_slot`` is the slot the bootloader started last; ``active_slot`` the one it will
    start next. ``action_id`` names the DDI action in progress (``None`` when idle).
    ``failed_trials`` counts trial boots that ended in a revert (health check or boot
    limit) since provisioning: the device's crash count."""

    active_slot: str = "a"
    booted_slot: str = "a"
    upgrade_available: bool = False
    bootcount: int = 0
    bootlimit: int = 3
    security_floor: int = 0
    phase: Phase = Phase.IDLE
    action_id: str | None = None
    slots: Mapping[str, Slot] = field(default_factory=lambda: {s: Slot() for s in SLOTS})
    report: PendingReport | None = None
    last_event: str = ""
    failed_trials: int = 0

    def slot(self, name: str) -> Slot:
        return self.slots[name]

    @property
    def inactive_slot(self) -> str:
        return other(self.active_slot)

    @property
    def installed_version(self) -> str | None:
        """The version of the image the device runs now."""
        return self.slots[self.booted_slot].version

    def with_slot(self, name: str, slot: Slot) -> BootEnv:
        slots = dict(self.slots)
        slots[name] = slot
        return dataclasses.replace(self, slots=slots)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; :meth:`from_dict` reads it back."""
        return {
            "active_slot": self.active_slot,
            "booted_slot": self.booted_slot,
            "upgrade_available": self.upgrade_available,
            "bootcount": self.bootcount,
            "bootlimit": self.bootlimit,
            "security_floor": self.security_floor,
            "phase": self.phase.value,
            "action_id": self.action_id,
            "slots": {
                name: {
                    "state": slot.state.value,
                    "version": slot.version,
                    "sha256": slot.sha256,
                    "size": slot.size,
                    "security_version": slot.security_version,
                    "target": slot.target,
                }
                for name, slot in sorted(self.slots.items())
            },
            "report": None
            if self.report is None
            else {
                "action_id": self.report.action_id,
                "outcome": self.report.outcome.value,
                "details": list(self.report.details),
            },
            "last_event": self.last_event,
            "failed_trials": self.failed_trials,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BootEnv:
        """Read :meth:`to_dict`'s output back; a malformed mapping raises InvalidInput."""
        try:
            slots = {
                name: Slot(
                    state=SlotState(raw["state"]),
                    version=raw["version"],
                    sha256=raw["sha256"],
                    size=int(raw["size"]),
                    security_version=int(raw["security_version"]),
                    target=raw.get("target"),
                )
                for name, raw in data["slots"].items()
            }
            raw_report = data["report"]
            report = (
                None
                if raw_report is None
                else PendingReport(
                    action_id=str(raw_report["action_id"]),
                    outcome=Outcome(raw_report["outcome"]),
                    details=tuple(str(d) for d in raw_report["details"]),
                )
            )
            env = cls(
                active_slot=str(data["active_slot"]),
                booted_slot=str(data["booted_slot"]),
                upgrade_available=bool(data["upgrade_available"]),
                bootcount=int(data["bootcount"]),
                bootlimit=int(data["bootlimit"]),
                security_floor=int(data["security_floor"]),
                phase=Phase(data["phase"]),
                action_id=data["action_id"],
                slots=slots,
                report=report,
                last_event=str(data.get("last_event", "")),
                failed_trials=int(data.get("failed_trials", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed boot environment: {exc}") from exc
        if set(slots) != set(SLOTS) or env.active_slot not in SLOTS:
            raise InvalidInput("malformed boot environment: unknown slot names")
        return env


@dataclass(frozen=True)
class PersistEnv:
    """Write this env durably (both redundant copies' rules apply) before going on."""

    env: BootEnv


@dataclass(frozen=True)
class Reboot:
    """Restart the device so the bootloader picks ``env.active_slot``."""

    reason: str


Command = PersistEnv | Reboot


@dataclass(frozen=True)
class Step:
    """The result of a transition: the new env and the commands that make it so."""

    env: BootEnv
    commands: tuple[Command, ...]


def other(slot: str) -> str:
    """The other slot of the pair."""
    if slot not in SLOTS:
        raise InvalidInput(f"unknown slot {slot!r}")
    return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]


def fresh_env(
    *, version: str, sha256: str, size: int, security_version: int = 0, bootlimit: int = 3
) -> BootEnv:
    """The env of a device as provisioned: slot ``a`` holds the factory image, marked good;
    slot ``b`` is empty."""
    if bootlimit < 1:
        raise InvalidInput("bootlimit must be at least 1")
    good = Slot(
        state=SlotState.GOOD,
        version=version,
        sha256=sha256,
        size=size,
        security_version=security_version,
    )
    return BootEnv(
        bootlimit=bootlimit,
        slots={"a": good, "b": Slot()},
        last_event="provisioned",
    )


def admissible(env: BootEnv, security_version: int) -> str | None:
    """Why an offer with this security version must be refused, or ``None`` if allowed.

    Anti-rollback: an image below the device's ``security_floor`` is never installed."""
    if security_version < env.security_floor:
        return (
            f"security version {security_version} is below the device's security floor "
            f"{env.security_floor}"
        )
    return None


def _persist(env: BootEnv, *extra: Command) -> Step:
    return Step(env, (PersistEnv(env), *extra))


def _require(env: BootEnv, allowed: set[Phase], what: str) -> None:
    if env.phase not in allowed:
        raise TransitionRefused(f"cannot {what} while {env.phase.value}")


_AT_REST = {Phase.IDLE, Phase.COMMITTED, Phase.REVERTED}


def begin_download(env: BootEnv, offer: Offer) -> Step:
    """Start an install into the inactive slot.

    The inactive slot is marked bad (its old image is about to be overwritten) and the env
    persisted *before* the first byte is written, so a power cut mid-write never leaves the
    bootloader believing the slot holds a bootable image. Refused while an update is under
    way, while the device runs a slot that is not yet confirmed, or below the floor."""
    _require(env, _AT_REST, "start a download")
    if env.upgrade_available or env.booted_slot != env.active_slot:
        raise TransitionRefused("cannot start a download before the running slot is confirmed")
    if env.slots[env.active_slot].state is not SlotState.GOOD:
        raise TransitionRefused("cannot start a download from a slot that is not good")
    reason = admissible(env, offer.security_version)
    if reason is not None:
        raise TransitionRefused(reason)
    target = env.inactive_slot
    new = dataclasses.replace(
        env.with_slot(target, Slot(state=SlotState.BAD)),
        phase=Phase.DOWNLOADING,
        action_id=offer.action_id,
        report=None,
        last_event=f"downloading {offer.version} into slot {target}",
    )
    return _persist(new)


def image_written(env: BootEnv, offer: Offer) -> Step:
    """Record that the inactive slot now holds the offered image, read back and hashed.

    The caller promises it has fsynced the slot and re-read its hash; the slot becomes
    ``unknown`` (written, not yet booted), never ``good``."""
    _require(env, {Phase.DOWNLOADING}, "record a written image")
    if offer.action_id != env.action_id:
        raise TransitionRefused("the written image belongs to another action")
    target = env.inactive_slot
    slot = Slot(
        state=SlotState.UNKNOWN,
        version=offer.version,
        sha256=offer.sha256,
        size=offer.size,
        security_version=offer.security_version,
        target=offer.target,
    )
    new = dataclasses.replace(
        env.with_slot(target, slot),
        phase=Phase.WRITTEN,
        last_event=f"wrote {offer.version} to slot {target}",
    )
    return _persist(new)


def switch(env: BootEnv) -> Step:
    """Make the written slot the one to boot next, on trial (``upgrade_available``), and
    reboot. The previously active slot stays good: it is the fallback."""
    _require(env, {Phase.WRITTEN}, "switch slots")
    target = env.inactive_slot
    if env.slots[target].state is not SlotState.UNKNOWN:
        raise TransitionRefused("the inactive slot holds no freshly written image")
    new = dataclasses.replace(
        env,
        active_slot=target,
        upgrade_available=True,
        bootcount=0,
        phase=Phase.PENDING_REBOOT,
        last_event=f"switched to slot {target} on trial",
    )
    return _persist(new, Reboot(f"boot the new image in slot {target}"))


def abort_install(env: BootEnv, reason: str) -> Step:
    """Give up an install that has not switched yet (refused, corrupted, cancelled).

    The half-written slot stays marked bad; the running slot is untouched. The failure is
    owed to the server."""
    _require(env, {Phase.DOWNLOADING, Phase.WRITTEN}, "abort an install")
    target = env.inactive_slot
    report = (
        None if env.action_id is None else PendingReport(env.action_id, Outcome.FAILURE, (reason,))
    )
    new = dataclasses.replace(
        env.with_slot(target, dataclasses.replace(env.slots[target], state=SlotState.BAD)),
        phase=Phase.REVERTED,
        report=report,
        last_event=f"install aborted: {reason}",
    )
    return _persist(new)


def boot(env: BootEnv) -> Step:
    """What the bootloader does at power-on (U-Boot ``bootcount``/``altbootcmd`` logic).

    While an update is on trial it counts the boot; past ``bootlimit`` it falls back to the
    other slot, marks the trial slot bad and records the revert. A slot without a good or
    trial image is never started: the other (good) slot is. Nothing is rebooted here: the
    returned env's ``booted_slot`` is the slot now running."""
    active = env.active_slot
    fallback = other(active)
    new = env
    if env.upgrade_available:
        count = env.bootcount + 1
        if count > env.bootlimit:
            new = _fall_back(
                env,
                f"boot limit {env.bootlimit} reached on slot {active}",
            )
        else:
            new = dataclasses.replace(env, bootcount=count)
    elif env.slots[active].state is not SlotState.GOOD and (
        env.slots[fallback].state is SlotState.GOOD
    ):
        # Never start a slot that is not confirmed unless it is on trial.
        new = dataclasses.replace(env, active_slot=fallback)
    booted = new.active_slot
    phase = new.phase
    if phase is Phase.PENDING_REBOOT and new.upgrade_available:
        phase = Phase.TRIAL_BOOT
    new = dataclasses.replace(
        new, booted_slot=booted, phase=phase, last_event=new.last_event or "booted"
    )
    if new == env:
        return Step(env, ())
    return _persist(new)


def _fall_back(env: BootEnv, reason: str) -> BootEnv:
    """Return to the known-good slot and mark the trial slot bad; the failure is owed."""
    trial = env.active_slot
    good = other(trial)
    report = (
        None
        if env.action_id is None
        else PendingReport(
            env.action_id,
            Outcome.FAILURE,
            (
                reason,
                f"reverted to slot {good} running {env.slots[good].version}",
            ),
        )
    )
    return dataclasses.replace(
        env.with_slot(trial, dataclasses.replace(env.slots[trial], state=SlotState.BAD)),
        active_slot=good,
        upgrade_available=False,
        bootcount=0,
        phase=Phase.REVERTED,
        report=report,
        last_event=f"reverted to slot {good}: {reason}",
        failed_trials=env.failed_trials + 1,
    )


def commit(env: BootEnv) -> Step:
    """The trial image passed its health check: mark it good, end the trial. The server is
    owed a success."""
    _require(env, {Phase.TRIAL_BOOT}, "commit")
    if env.booted_slot != env.active_slot or not env.upgrade_available:
        raise TransitionRefused("the running slot is not the one on trial")
    slot = env.slots[env.active_slot]
    report = (
        None
        if env.action_id is None
        else PendingReport(
            env.action_id,
            Outcome.SUCCESS,
            (f"running {slot.version} from slot {env.active_slot}",),
        )
    )
    new = dataclasses.replace(
        env.with_slot(env.active_slot, dataclasses.replace(slot, state=SlotState.GOOD)),
        upgrade_available=False,
        bootcount=0,
        phase=Phase.COMMITTED,
        report=report,
        last_event=f"committed {slot.version} in slot {env.active_slot}",
    )
    return _persist(new)


def revert(env: BootEnv, reason: str) -> Step:
    """The trial image failed its health check: go back to the known-good slot and reboot.
    The failed slot is marked bad; the known-good slot is not touched."""
    _require(env, {Phase.TRIAL_BOOT}, "revert")
    if not env.upgrade_available:
        raise TransitionRefused("no update is on trial")
    new = _fall_back(env, reason)
    return _persist(new, Reboot(f"return to known-good slot {new.active_slot}"))


def report_delivered(env: BootEnv, action_id: str) -> Step:
    """The server acknowledged the final feedback for ``action_id``; the device is idle."""
    if env.report is None or env.report.action_id != action_id:
        raise TransitionRefused("no report is owed for this action")
    if env.phase not in {Phase.COMMITTED, Phase.REVERTED}:
        raise TransitionRefused(f"cannot close the report while {env.phase.value}")
    if env.upgrade_available or env.booted_slot != env.active_slot:
        raise TransitionRefused("report only from the slot that will stay")
    new = dataclasses.replace(
        env, phase=Phase.IDLE, action_id=None, report=None, last_event="reported"
    )
    return _persist(new)


def raise_floor(env: BootEnv, floor: int) -> Step:
    """Raise the anti-rollback floor, as signed metadata of a completed campaign says.

    The floor never drops, and never rises above the security version of the confirmed
    running image, so the device can always boot its known-good slot."""
    if env.upgrade_available or env.phase not in _AT_REST:
        raise TransitionRefused("the security floor moves only while no update is under way")
    running = env.slots[env.active_slot]
    ceiling = running.security_version if running.state is SlotState.GOOD else env.security_floor
    new_floor = max(env.security_floor, min(floor, ceiling))
    if new_floor == env.security_floor:
        return Step(env, ())
    return _persist(
        dataclasses.replace(
            env, security_floor=new_floor, last_event=f"security floor raised to {new_floor}"
        )
    )


def check_invariants(env: BootEnv) -> list[str]:
    """Every safety rule the env breaks (empty when it is sound). Used by tests and by the
    agent's status command to say whether an env can be trusted."""
    problems: list[str] = []
    good = [n for n in SLOTS if env.slots[n].state is SlotState.GOOD and env.slots[n].has_image]
    if not good:
        problems.append("no slot is marked good")
    if env.phase is Phase.DOWNLOADING:
        writing = env.inactive_slot
        if env.slots[writing].state is not SlotState.BAD:
            problems.append(f"slot {writing} is being written but not marked bad")
    if env.upgrade_available:
        if env.slots[env.inactive_slot].state is not SlotState.GOOD:
            problems.append("an update is on trial without a good fallback slot")
        if env.bootcount > env.bootlimit:
            problems.append("bootcount is past bootlimit")
    elif env.slots[env.active_slot].state is not SlotState.GOOD:
        problems.append(f"active slot {env.active_slot} is not good and not on trial")
    for name in good:
        if env.slots[name].security_version < env.security_floor and name == env.active_slot:
            problems.append(f"active slot {name} is below the security floor")
    return problems
