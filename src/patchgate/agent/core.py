"""The agent's shell around :mod:`patchgate.domain.ab_state`: it polls DDI, verifies with
TUF, moves bytes, runs the health check, and executes the commands the state machine
returns. It decides nothing the state machine does not allow.

One pass (:meth:`Agent.run_once`):

1. Read the env. On a trial boot run the health check, then commit or revert.
2. Deliver the final report the env still owes (DDI ``closed``), and the running version
   (``configData``), once the device runs the slot it will keep.
3. Send health telemetry.
4. Poll; on an offered deployment verify its TUF target, refuse what the rules forbid,
   otherwise download (resuming with Range), verify, write the inactive slot, fsync,
   re-read its hash, switch and reboot.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import random
import shlex
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from patchgate.agent.ddi import Chunk, DdiClient, Deployment
from patchgate.agent.env_store import EnvStore
from patchgate.agent.errors import (
    ActionGone,
    DdiError,
    NoValidEnv,
    RebootRequested,
    Refused,
    RestartFromZero,
    ServerUnavailable,
    TrustError,
    TrustUnavailable,
)
from patchgate.agent.io import DeviceIO
from patchgate.agent.trust import SignedTarget, TrustStore
from patchgate.domain import ab_state
from patchgate.domain.ab_state import BootEnv, Offer, PersistEnv, Phase, Reboot, SlotState, Step
from patchgate.domain.errors import TransitionRefused

__all__ = [
    "Agent",
    "AgentConfig",
    "HealthCheck",
    "RebootRequested",
    "backoff_delay",
    "builtin_health",
    "command_health",
    "sha256_of",
]

HealthCheck = Callable[[BootEnv, str], "str | None"]
"""``(env, slot_path) -> None`` when healthy, else the reason it is not."""

STAGING = "download.part"
SLOTS_FILE = "slots.json"
_CHUNK = 64 * 1024


class PassProblem(enum.Enum):
    """Why a pass ended without the server's answer: ``agent --once`` exits non-zero."""

    UNAVAILABLE = "unavailable"  # the server or its TUF metadata could not be reached
    REFUSED = "refused"  # the server refused the request (wrong token, unknown device)


@dataclass
class AgentConfig:
    server: str
    device_id: str
    token: str
    state_dir: str
    tenant: str = "DEFAULT"
    slot_paths: dict[str, str] = field(default_factory=dict)
    hardware: str | None = None
    initial_version: str = "0"
    bootlimit: int = 3
    reboot_cmd: Sequence[str] = ()

    def slot_path(self, slot: str) -> str:
        return self.slot_paths.get(slot) or os.path.join(self.state_dir, f"slot-{slot}.img")


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)], so a
    fleet that lost its server does not come back in lockstep."""
    return rng.uniform(0, min(cap, base * (2 ** min(attempt, 30))))


def sha256_of(io: DeviceIO, path: str, length: int) -> str:
    digest = hashlib.sha256()
    for chunk in io.read_chunks(path, length):
        digest.update(chunk)
    return digest.hexdigest()


def builtin_health(io: DeviceIO) -> HealthCheck:
    """The built-in check: the running slot holds exactly the image the env recorded."""

    def check(env: BootEnv, slot_path: str) -> str | None:
        slot = env.slots[env.booted_slot]
        if slot.sha256 is None:
            return f"slot {env.booted_slot} has no recorded image"
        if sha256_of(io, slot_path, slot.size) != slot.sha256:
            return f"slot {env.booted_slot} does not hold the image recorded for it"
        return None

    return check


def command_health(command: str, timeout: float = 120.0) -> HealthCheck:
    """A health check by command: exit 0 means healthy. The command sees the running slot
    and version in ``PATCHGATE_SLOT`` and ``PATCHGATE_VERSION``."""

    def check(env: BootEnv, slot_path: str) -> str | None:
        extra = {
            "PATCHGATE_SLOT": env.booted_slot,
            "PATCHGATE_SLOT_PATH": slot_path,
            "PATCHGATE_VERSION": env.installed_version or "",
        }
        try:
            done = subprocess.run(
                shlex.split(command),
                env={**os.environ, **extra},
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"health check could not run: {exc}"
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return f"health check exited {done.returncode} {tail[0]}".strip()
        return None

    return check


class Agent:
    """The reference device agent for one device."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        ddi: DdiClient,
        trust: TrustStore,
        io: DeviceIO | None = None,
        health: HealthCheck | None = None,
        rng: random.Random | None = None,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.config = config
        self.ddi = ddi
        self.trust = trust
        self.io = io or DeviceIO()
        self.store = EnvStore(config.state_dir, self.io)
        self.health = health or builtin_health(self.io)
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self.log = log
        self.failures = 0
        # Why the last pass did not reach the server's answer (None: it did).
        self.last_problem: PassProblem | None = None

    # -- env and commands ----------------------------------------------------------------
    def provision(self) -> BootEnv:
        """Create the env on first start: slot ``a`` holds the running (factory) image."""
        try:
            return self.store.load()
        except NoValidEnv:
            pass
        # Where the slots are, so `agent status` can check their bytes without flags.
        self.io.write_file_atomic(
            os.path.join(self.config.state_dir, SLOTS_FILE),
            json.dumps({s: self.config.slot_path(s) for s in ab_state.SLOTS}).encode(),
        )
        for slot in ab_state.SLOTS:
            # The default slots are image files in the state folder: made empty on first
            # start (slot a then holds a zero-byte factory image of the initial version).
            default = self.config.slot_path(slot)
            if slot not in self.config.slot_paths and not os.path.exists(default):
                self.io.write_file_atomic(default, b"")
        path = self.config.slot_path("a")
        size = self.io.size(path)
        env = ab_state.fresh_env(
            version=self.config.initial_version,
            sha256=sha256_of(self.io, path, size),
            size=size,
            bootlimit=self.config.bootlimit,
        )
        self.store.save(env)
        return env

    def execute(self, step: Step) -> BootEnv:
        """Carry out a transition's commands in order (persist first, reboot last)."""
        for command in step.commands:
            if isinstance(command, PersistEnv):
                self.store.save(command.env)
            elif isinstance(command, Reboot):
                self.io.checkpoint("reboot")
                self.log(f"reboot: {command.reason}")
                raise RebootRequested(command.reason)
        return step.env

    # -- one pass ------------------------------------------------------------------------
    def run_once(self) -> float:
        """One pass of the loop; returns how long to sleep before the next.

        Raises :class:`RebootRequested` when the device must restart."""
        env = self.store.load()
        if env.phase is Phase.TRIAL_BOOT and env.booted_slot == env.active_slot:
            env = self._judge_trial(env)
        if env.phase is Phase.PENDING_REBOOT or env.booted_slot != env.active_slot:
            # A switch is persisted but this boot predates it: restart into it.
            raise RebootRequested(f"slot {env.active_slot} waits to be booted")
        try:
            env = self._deliver_report(env)
            self._send_health(env)
            poll = self.ddi.poll()
            if poll.config_data_href:
                self._answer_config_request(env)  # DDI: the server asks for the attributes
            if poll.cancel_href:
                env = self._handle_cancel(env, poll.cancel_href)
            if poll.deployment_href:
                env = self._handle_deployment(env, self.ddi.deployment(poll.deployment_href))
            elif env.phase in (Phase.DOWNLOADING, Phase.WRITTEN):
                env = self.execute(ab_state.abort_install(env, "the server withdrew the offer"))
                env = self._deliver_report(env)
            self._maybe_raise_floor(env)
        except (ServerUnavailable, TrustUnavailable) as exc:
            self.last_problem = PassProblem.UNAVAILABLE
            self.failures += 1
            delay = backoff_delay(self.failures, base=2.0, cap=300.0, rng=self.rng)
            self.log(f"server unavailable ({exc}); retry in {delay:.1f}s")
            return delay
        except (DdiError, TransitionRefused) as exc:
            # A refused request (bad token, unknown device) or a step the state machine
            # does not allow: keep the current slot, say why, and try again later.
            self.last_problem = PassProblem.REFUSED
            self.failures += 1
            delay = backoff_delay(self.failures, base=30.0, cap=3600.0, rng=self.rng)
            self.log(f"{exc}; retry in {delay:.1f}s")
            return delay
        self.failures = 0
        self.last_problem = None
        return poll.sleep_seconds

    def _judge_trial(self, env: BootEnv) -> BootEnv:
        slot_path = self.config.slot_path(env.booted_slot)
        self.io.checkpoint("health check")
        problem = self.health(env, slot_path)
        if problem is None:
            self.log(f"health check passed; committing slot {env.active_slot}")
            return self.execute(ab_state.commit(env))
        self.log(f"health check failed: {problem}; reverting")
        return self.execute(ab_state.revert(env, f"health check failed: {problem}"))

    def _deliver_report(self, env: BootEnv) -> BootEnv:
        report = env.report
        if report is None or env.upgrade_available or env.booted_slot != env.active_slot:
            return env
        running = env.slots[env.booted_slot]
        details = [*report.details, f"running version {running.version}"]
        self.io.checkpoint("feedback closed")
        try:
            self.ddi.feedback(
                report.action_id, "closed", finished=report.outcome.value, details=details
            )
        except ActionGone:
            pass  # closed already (by us before a power cut, or cancelled): nothing owed
        except DdiError as exc:
            if isinstance(exc, ServerUnavailable):
                raise
            self.log(f"final feedback refused: {exc}")
        self._config_data(env)
        return self.execute(ab_state.report_delivered(env, report.action_id))

    def _config_data(self, env: BootEnv) -> None:
        running = env.slots[env.booted_slot]
        attributes = {
            "version": running.version or "",
            "slot": env.booted_slot,
            "security_floor": str(env.security_floor),
            "agent": "patchgate-agent",
        }
        if self.config.hardware:
            attributes["hardware"] = self.config.hardware
        self.io.checkpoint("configData")
        self.ddi.config_data(attributes)

    def _answer_config_request(self, env: BootEnv) -> None:
        try:
            self._config_data(env)
        except ServerUnavailable:
            raise
        except DdiError as exc:
            self.log(f"configData refused: {exc}")

    def _send_health(self, env: BootEnv) -> None:
        self.io.checkpoint("health telemetry")
        try:
            self.ddi.health(self.telemetry(env))
        except ServerUnavailable:
            raise
        except DdiError as exc:
            self.log(f"health telemetry refused: {exc}")

    def telemetry(self, env: BootEnv) -> dict[str, Any]:
        """The health report in the server's fields (docs/ddi.md, ``POST health``); what
        has no field of its own goes into ``metrics``."""
        return {
            "running_version": env.installed_version,
            "boot_count": env.bootcount,
            "uptime_s": _uptime(),
            "crash_count": env.failed_trials,
            "metrics": {
                "booted_slot": env.booted_slot,
                "active_slot": env.active_slot,
                "phase": env.phase.value,
                "security_floor": env.security_floor,
            },
        }

    def _handle_cancel(self, env: BootEnv, href: str) -> BootEnv:
        cancel_id = self.ddi.cancel_action(href)
        if env.action_id == cancel_id and env.phase in (Phase.DOWNLOADING, Phase.WRITTEN):
            env = self.execute(ab_state.abort_install(env, "cancelled by the server"))
            self.ddi.cancel_feedback(cancel_id, "closed", "success", ["install cancelled"])
            return self._deliver_report(env)
        if env.action_id == cancel_id:
            self.ddi.cancel_feedback(
                cancel_id, "rejected", "none", [f"too late to cancel: {env.phase.value}"]
            )
        else:
            self.ddi.cancel_feedback(cancel_id, "closed", "success", ["nothing to cancel"])
        return env

    # -- install -------------------------------------------------------------------------
    def _handle_deployment(self, env: BootEnv, deployment: Deployment) -> BootEnv:
        if env.action_id not in (None, deployment.action_id) and env.phase in (
            Phase.DOWNLOADING,
            Phase.WRITTEN,
        ):
            env = self.execute(
                ab_state.abort_install(env, f"superseded by action {deployment.action_id}")
            )
            env = self._deliver_report(env)
        if env.report is not None:
            return env  # the last action's report is not delivered yet
        if deployment.download == "skip":
            return env  # DDI: the server only announces the action; nothing to fetch yet
        try:
            chunk, offer, signed = self._check_offer(env, deployment)
        except Refused as exc:
            self.log(f"refused action {deployment.action_id}: {exc}")
            self.io.checkpoint("feedback refused")
            with contextlib.suppress(ActionGone):
                self.ddi.feedback(
                    deployment.action_id, "closed", finished="failure", details=[str(exc)]
                )
            return env
        return self._install(env, deployment, chunk, offer, signed)

    def _check_offer(
        self, env: BootEnv, deployment: Deployment
    ) -> tuple[Chunk, Offer, SignedTarget]:
        chunks = [c for c in deployment.chunks if c.artifacts]
        if len(chunks) != 1 or len(chunks[0].artifacts) != 1:
            raise Refused("this agent installs exactly one artifact (one chunk) per action")
        chunk = chunks[0]
        artifact = chunk.artifacts[0]
        target_path = chunk.metadata.get("tuf_target")
        if not target_path:
            raise Refused("the DDI chunk names no TUF target (metadata key tuf_target)")
        try:
            signed = self.trust.target(target_path)
        except TrustUnavailable:
            raise
        except TrustError as exc:
            raise Refused(f"TUF verification failed: {exc}") from exc
        if signed.sha256 is None:
            raise Refused(f"signed target {target_path} carries no sha256")
        offered_sha = artifact.hashes.get("sha256")
        if offered_sha and offered_sha.lower() != signed.sha256.lower():
            raise Refused(f"the DDI artifact's sha256 differs from signed target {target_path}")
        if artifact.size and artifact.size != signed.length:
            raise Refused(f"the DDI artifact's size differs from signed target {target_path}")
        if signed.hardware and self.config.hardware not in signed.hardware:
            raise Refused(
                f"hardware {self.config.hardware or 'unknown'} is not among "
                f"{', '.join(signed.hardware)} for target {target_path}"
            )
        reason = ab_state.admissible(env, signed.security_version)
        if reason is not None:
            raise Refused(reason)
        if artifact.download_href is None:
            raise Refused("the DDI artifact has no download link")
        version = str(signed.custom.get("version") or chunk.version)
        offer = Offer(
            action_id=deployment.action_id,
            version=version,
            sha256=signed.sha256.lower(),
            size=signed.length,
            security_version=signed.security_version,
            target=target_path,
        )
        return chunk, offer, signed

    def _install(
        self, env: BootEnv, deployment: Deployment, chunk: Chunk, offer: Offer, signed: SignedTarget
    ) -> BootEnv:
        action = deployment.action_id
        if env.phase is Phase.WRITTEN and env.action_id == action:
            return self._switch(env, offer)
        staging = os.path.join(self.config.state_dir, STAGING)
        if not (env.phase is Phase.DOWNLOADING and env.action_id == action):
            self.io.unlink(staging)  # whatever an earlier action left is not this image
            env = self.execute(ab_state.begin_download(env, offer))
        artifact = chunk.artifacts[0]
        assert artifact.download_href is not None  # checked in _check_offer
        for attempt in range(2):
            self._download(action, artifact.download_href, staging, offer.size)
            try:
                signed.verify(staging)
                break
            except TrustError as exc:
                self.io.unlink(staging)  # discarded; the retry starts from a clean state
                if attempt == 1:
                    return self._abort(env, f"the artifact does not match its signed target: {exc}")
        self._feedback(action, "downloaded", details=[f"verified {offer.size} bytes"])
        if not deployment.may_install:
            # Downloaded and verified; install once the server opens the window.
            self._feedback(action, "scheduled", details=["waiting for the maintenance window"])
            return env
        target = env.inactive_slot
        self._feedback(action, "proceeding", details=[f"installing into slot {target}"])
        path = self.config.slot_path(target)
        self._write_slot(staging, path, offer.size)
        self._feedback(action, "proceeding", details=[f"verifying slot {target}"])
        if sha256_of(self.io, path, offer.size) != offer.sha256:
            return self._abort(env, f"slot {target} read back a different image")
        env = self.execute(ab_state.image_written(env, offer))
        self.io.unlink(staging)
        return self._switch(env, offer)

    def _switch(self, env: BootEnv, offer: Offer) -> BootEnv:
        self._feedback(
            offer.action_id,
            "proceeding",
            details=[f"rebooting into slot {env.inactive_slot} ({offer.version})"],
        )
        return self.execute(ab_state.switch(env))

    def _abort(self, env: BootEnv, reason: str) -> BootEnv:
        self.log(f"install aborted: {reason}")
        env = self.execute(ab_state.abort_install(env, reason))
        return self._deliver_report(env)

    def _feedback(
        self,
        action: str,
        execution: str,
        *,
        progress: tuple[int, int] | None = None,
        details: Sequence[str] = (),
    ) -> None:
        self.io.checkpoint(f"feedback {execution}")
        try:
            self.ddi.feedback(action, execution, progress=progress, details=details)
        except ActionGone:
            raise
        except ServerUnavailable:
            raise
        except DdiError as exc:
            self.log(f"feedback refused: {exc}")

    def _download(self, action: str, href: str, staging: str, size: int) -> None:
        """Fetch the artifact into the staging file, resuming from what is already there."""
        have = self.io.size(staging)
        if have > size:
            self.io.unlink(staging)
            have = 0
        if have == size:
            return
        self._feedback(action, "download", progress=(have, size), details=["downloading"])
        try:
            self._fetch_into(href, staging, have, size, action)
        except RestartFromZero:
            self.io.unlink(staging)
            self._fetch_into(href, staging, 0, size, action)

    def _fetch_into(self, href: str, staging: str, start: int, size: int, action: str) -> None:
        handle = self.io.open_write(staging, offset=start, truncate=start == 0)
        written = start
        next_report = start + max(size // 4, 1)
        try:
            for _total, data in self.ddi.download(href, start=start):
                if written + len(data) > size:
                    data = data[: size - written]
                if not data:
                    break
                self.io.write(handle, data)
                written += len(data)
                if written >= next_report and written < size:
                    next_report = written + max(size // 4, 1)
                    self._feedback(action, "download", progress=(written, size))
            self.io.fsync(handle)
        finally:
            self.io.close(handle)
        # The file's fsync makes its bytes durable, not its name (fsync(2)); without the
        # folder's, a cut after a finished download can cost the whole download again.
        self.io.fsync_dir(os.path.dirname(staging))

    def _write_slot(self, staging: str, path: str, size: int) -> None:
        """Stream the verified image into the slot, then fsync it."""
        truncate = not _is_block_device(path)
        handle = self.io.open_write(path, truncate=truncate)
        try:
            for data in self.io.read_chunks(staging, size, _CHUNK):
                self.io.write(handle, data)
            self.io.fsync(handle)
        finally:
            self.io.close(handle)

    # -- anti-rollback floor -------------------------------------------------------------
    def _maybe_raise_floor(self, env: BootEnv) -> None:
        """Raise the floor to what signed metadata says for the running target, once the
        campaign for it completed (the server then sets ``security_floor`` in ``custom``)."""
        running = env.slots[env.active_slot]
        if running.target is None or running.state is not SlotState.GOOD:
            return
        if env.phase not in (Phase.IDLE, Phase.COMMITTED, Phase.REVERTED):
            return
        if env.security_floor >= running.security_version:
            return  # the floor never rises above the running image: no metadata to fetch
        try:
            signed = self.trust.target(running.target)
        except TrustError:
            return
        floor = signed.security_floor
        if floor is not None and floor > env.security_floor:
            self.execute(ab_state.raise_floor(env, floor))


def _is_block_device(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def _uptime() -> float:
    try:
        with open("/proc/uptime") as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return time.monotonic()
