"""The simulator counts a success the way the server does, for every DDI client kind: a
simulated fleet (before-boot and after-boot clients, boot failures, devices offline after
their reboot) records each device's DDI reports, and the same reports, at the same
instants, go through the real server (poll, feedback, health reports) on SQLite and
PostgreSQL. Per device the server's status must be the simulator's."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from patchgate.domain import executions as ex
from patchgate.domain.actions import Execution, Finished
from patchgate.services import ddi
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands as campaign_commands
from patchgate.services.campaigns import views as campaign_views
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.campaigns.poll import PollEngine
from patchgate.sim.clients import configured_kinds
from patchgate.sim.engine import Run
from patchgate.sim.feedback import CODE
from patchgate.sim.model import NEW, OLD
from patchgate.sim.scenario import BEFORE_BOOT, GROUPS_OF, Fault, Fleet, Scenario, device_id
from tests.conftest import Env
from tests.factories import make_release

HW = "demo-gw-1"
STATUS_OF_CODE = {code: status for status, code in CODE.items()}
FEEDBACK = {
    ex.DOWNLOADING: (Execution.DOWNLOAD, Finished.NONE),
    ex.DOWNLOADED: (Execution.DOWNLOADED, Finished.NONE),
    ex.INSTALLING: (Execution.PROCEEDING, Finished.NONE),
    ex.SUCCESS_REPORTED: (Execution.CLOSED, Finished.SUCCESS),
    ex.FAILURE_REPORTED: (Execution.CLOSED, Finished.FAILURE),
}


def simulated(mode: str) -> tuple[Run, dict[int, list[ex.Event]]]:
    """A fleet of before- and after-boot clients under a release that fails to boot on
    30 %, a third of the fleet offline at times (hawkBit's rules, which do not halt at
    30 %, so every device runs its course)."""
    scenario = Scenario(
        devices=240,
        fault=Fault.parse("boot:0.3"),
        before_boot=0.5,
        client_kinds=mode,
        offline=0.3,
        offline_hours=4.0,
        stages="100",
        internal=0,
        push=True,
        seed=7,
        stop_hours=10.0,
    )
    run = Run(scenario, Fleet(scenario), "hawkbit")
    run.trace = {}
    run.run()
    return run, run.trace


def chosen(run: Run, trace: dict[int, list[ex.Event]]) -> list[int]:
    """Up to six devices of each (client behaviour, final status) pair."""
    picked: list[int] = []
    seen: Counter[tuple[bool, str]] = Counter()
    for device, events in sorted(trace.items()):
        if any(e.kind == ex.CANCELLED_EVENT for e in events):
            continue
        key = (bool(run.mask_list[device] & BEFORE_BOOT), STATUS_OF_CODE[int(run.status[device])])
        if seen[key] < 6:
            seen[key] += 1
            picked.append(device)
    return picked


@pytest.mark.parametrize("mode", ["detect", "configured"])
def test_the_simulator_and_the_server_count_the_same_reports_the_same_way(
    env: Env, mode: str
) -> None:
    run, trace = simulated(mode)
    devices = chosen(run, trace)
    statuses = Counter(STATUS_OF_CODE[int(run.status[d])] for d in devices)
    behaviours = Counter(bool(run.mask_list[d] & BEFORE_BOOT) for d in devices)
    # The fleet exercised every path: both behaviours, confirmed after the device came back,
    # reverted by the A/B fallback, and timed out when it stayed away.
    assert behaviours[True] > 0 and behaviours[False] > 0
    assert statuses[ex.SUCCEEDED] and statuses[ex.REVERTED] and statuses[ex.FAILED]
    assert statuses[ex.TIMED_OUT]

    first = min(trace[d][0].at for d in devices)
    env.ctx.clock = lambda: first
    env.ctx.client_kinds = configured_kinds(mode)
    release = make_release(env, NEW.version, {"fw.bin": b"new"}, hardware=[HW])
    poller = ddi.Poller(env.ctx)
    engine = PollEngine(env.ctx)
    poller.plug(engine.decide, engine.load, engine.create)
    callers = {}
    for device in devices:
        cid = device_id(device)
        groups = tuple(GROUPS_OF[run.mask_list[device]])
        made = device_service.add_device(
            env.ctx, cid, groups=groups, hardware=HW, version=OLD.version, actor="test"
        )
        callers[device] = ddi.authenticate(env.ctx, "DEFAULT", cid, f"TargetToken {made.token}")
    campaign = campaign_commands.create(
        env.ctx, release.id, CreateOptions(stages="100"), actor="test"
    )
    campaign_commands.start(env.ctx, campaign, actor="test")

    # Every device's reports, in the order the simulator's clock had them.
    timeline = sorted(
        ((e.at, device, index, e) for device in devices for index, e in enumerate(trace[device])),
        key=lambda item: (item[0], item[1], item[2]),
    )
    actions: dict[int, int] = {}
    sent: Counter[int] = Counter()
    for when, device, _, event in timeline:
        env.ctx.clock = lambda when=when: when
        caller = callers[device]
        if event.kind == ex.OFFERED:
            state = poller.poll(caller)
            assert state.open_action_id is not None
            actions[device] = state.open_action_id
        elif event.kind in FEEDBACK:
            execution, finished = FEEDBACK[event.kind]
            # Install progress as the clients send it: each report names its progress.
            sent[device] += 1
            feedback = ddi.Feedback(execution, finished, progress_cnt=sent[device], progress_of=9)
            ddi.deployment_feedback(env.ctx, caller, actions[device], feedback)
        else:
            assert event.kind == ex.SEEN_WITH_VERSION
            ddi.report_health(env.ctx, caller, ddi.Health(running_version=event.version))

    # When the simulation stopped, every confirmation window had closed.
    end = max(when for when, *_ in timeline) + timedelta(hours=3)
    env.ctx.clock = lambda: end
    server = campaign_views.status(env.ctx, campaign).counts.to_json()
    wanted = {k: v for k, v in statuses.items() if v}
    assert {k: v for k, v in server.items() if k != "eligible" and v} == wanted
