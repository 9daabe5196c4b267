"""Campaign test helpers: devices polling through the server's poll path in-process
(``ddi.Poller`` with the campaign engine plugged in as ``patchgate serve`` plugs it), and
campaigns made through the commands."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from patchgate.entrypoints.presenters import campaigns as present
from patchgate.services import ddi
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands, views
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.campaigns.poll import PollEngine
from tests.conftest import Env
from tests.factories import MadeRelease, make_release

HW = "demo-gw-1"


class Fleet:
    """Devices polling through the server's poll path, in-process."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.poller = ddi.Poller(env.ctx)
        self.engine = PollEngine(env.ctx)
        self.poller.plug(self.engine.decide, self.engine.load, self.engine.create)
        self.tokens: dict[str, str] = {}

    def add(self, cid: str, version: str, *groups: str) -> None:
        made = device_service.add_device(
            self.env.ctx, cid, groups=groups, hardware=HW, version=version, actor="test"
        )
        self.tokens[cid] = made.token

    def caller(self, cid: str) -> ddi.Caller:
        return ddi.authenticate(self.env.ctx, "DEFAULT", cid, f"TargetToken {self.tokens[cid]}")

    def poll(self, cid: str) -> ddi.rules.PollState:
        """One poll as the DDI app answers it: decided once, written only when needed."""
        caller = self.caller(cid)
        ready = self.poller.prepare(caller)
        if isinstance(ready, ddi.rules.PollState):
            return ready
        return self.poller.poll(caller, ready)

    def answer_without_writing(self, cid: str) -> ddi.rules.PollState | None:
        """The DDI app's answer from ``prepare`` when the poll needs no write; None when
        it does."""
        ready = self.poller.prepare(self.caller(cid))
        return ready if isinstance(ready, ddi.rules.PollState) else None

    def links(self, cid: str) -> set[str]:
        return set(ddi.rules.poll_links(self.poll(cid)))

    def offered(self, cid: str) -> int | None:
        """The release of the device's open action after a poll, if any."""
        state = self.poll(cid)
        if state.open_action_status in (None, "canceling", "canceled"):
            return None
        return state.open_action_release_id

    def feedback(self, cid: str, action_id: int, execution: str, finished: str = "none") -> None:
        fb = ddi.Feedback(ddi.rules.Execution(execution), ddi.rules.Finished(finished))
        ddi.deployment_feedback(self.env.ctx, self.caller(cid), action_id, fb)


def release(env: Env, version: str, security_version: int) -> MadeRelease:
    return make_release(
        env, version, {"fw.bin": version.encode()}, security_version=security_version
    )


def status(env: Env, campaign_id: int) -> dict[str, Any]:
    """``campaign status --json`` as the API and the CLI render it."""
    return present.status_json(views.status(env.ctx, campaign_id))


def started(env: Env, made: MadeRelease, **options: Any) -> int:
    campaign = commands.create(env.ctx, made.id, CreateOptions(**options), actor="test")
    commands.start(env.ctx, campaign, actor="test")
    return campaign


def halted(env: Env, made: MadeRelease, stages: str = "qa,100") -> int:
    campaign = started(env, made, stages=stages)
    commands.halt(env.ctx, campaign, reason="boot loop in the field", actor="test")
    return campaign


class Clock:
    """The context's clock moved by hand (``env.ctx.clock`` is read by every service)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.now: datetime = env.ctx.clock()
        env.ctx.clock = lambda: self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
