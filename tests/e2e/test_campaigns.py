"""The campaign engine end to end: real servers, real DDI polls, the real CLI and REST API,
on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from patchgate.services import access
from patchgate.services import devices as device_service
from tests.conftest import Env
from tests.factories import MadeRelease, make_release
from tests.support import PG_ADMIN_URL, LiveServer, live_server

HW = "demo-gw-1"
OLD = "1.0.0"
NEW = "2.0.0"


@dataclass
class Device:
    """A device speaking DDI to one server."""

    server: LiveServer
    controller_id: str
    token: str

    @property
    def base(self) -> str:
        return f"{self.server.url}/DEFAULT/controller/v1/{self.controller_id}"

    def on(self, server: LiveServer) -> Device:
        return Device(server, self.controller_id, self.token)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"TargetToken {self.token}", "Accept": "application/hal+json"}

    def poll(self) -> dict[str, Any]:
        answer = httpx.get(self.base, headers=self._headers(), timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json()).get("_links", {})

    def deployment(self) -> int | None:
        """The action id of an offered deployment, fetched as a client does; else None."""
        link = self.poll().get("deploymentBase")
        if link is None:
            return None
        body = httpx.get(link["href"], headers=self._headers(), timeout=30).json()
        return int(body["id"])

    def feedback(self, action: int, execution: str, finished: str = "none") -> None:
        status = {"execution": execution, "result": {"finished": finished}}
        answer = httpx.post(
            f"{self.base}/deploymentBase/{action}/feedback",
            json={"id": str(action), "status": status},
            headers=self._headers(),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    def health(self, version: str, *, crashes: int, uptime_hours: float) -> None:
        body = {"running_version": version, "crash_count": crashes, "uptime_s": uptime_hours * 3600}
        answer = httpx.post(f"{self.base}/health", json=body, headers=self._headers(), timeout=30)
        assert answer.status_code == 200, answer.text


def add_device(env: Env, server: LiveServer, cid: str, *groups: str, version: str = OLD) -> Device:
    """``patchgate device add`` (the CLI, for the first device of a test)."""
    args = [a for g in groups for a in ("--group", g)]
    result = env.cli("device", "add", cid, *args, "--hardware", HW, "--version", version, "--json")
    assert result.code == 0, result.stderr
    return Device(server, cid, result.json()["token"])


def add_devices(env: Env, server: LiveServer, cids: list[str], *groups: str) -> list[Device]:
    """Many devices through the service behind ``device add`` (faster than one CLI run each)."""
    made = []
    for cid in cids:
        provisioned = device_service.add_device(
            env.ctx, cid, groups=groups, hardware=HW, version=OLD, actor="test"
        )
        made.append(Device(server, cid, provisioned.token))
    return made


def releases(env: Env) -> tuple[MadeRelease, MadeRelease]:
    old = make_release(env, OLD, {"fw.bin": b"old image"}, security_version=1)
    new = make_release(env, NEW, {"fw.bin": b"new image"}, security_version=2)
    return old, new


def create(env: Env, release: MadeRelease, *flags: str) -> dict[str, Any]:
    result = env.cli("campaign", "create", str(release.id), *flags, "--json")
    assert result.code == 0, result.stderr
    return result.json()


def api(server: LiveServer, env: Env) -> httpx.Client:
    return server.client(env.admin_token)


@pytest.fixture
def server(env: Env, tmp_path: Path) -> Iterator[LiveServer]:
    """``patchgate serve`` whose own timer never evaluates a gate: the tests ask for each
    evaluation (``POST /api/v1/campaigns/{id}/evaluate``) once the feedback they send has
    been answered, so every count they check is exact rather than a race with the timer."""
    with live_server({**env.vars, "PATCHGATE_CAMPAIGN_TICK": "0"}, tmp_path / "server.log") as srv:
        yield srv


@pytest.fixture
def fleet(env: Env, server: LiveServer) -> tuple[list[Device], list[Device]]:
    """Eight opted-in canary devices and ten others, all on the old release."""
    canary = [add_device(env, server, "canary-0", "canary-optin")]
    canary += add_devices(env, server, [f"canary-{i}" for i in range(1, 8)], "canary-optin")
    others = add_devices(env, server, [f"other-{i}" for i in range(10)])
    return canary, others


def _start_canary_campaign(env: Env, server: LiveServer) -> int:
    _old, new = releases(env)
    made = create(
        env,
        new,
        "--stages",
        "canary-optin,100",
        "--min-finished",
        "4",
        "--max-failure-rate",
        "0.2",
        "--soak",
        "1h",
    )
    assert made["state"] == "draft" and made["release_id"] == new.id
    started = env.cli("campaign", "start", str(made["id"]), "--json")
    assert started.code == 0, started.stderr
    assert started.json()["state"] == "running"
    return int(made["id"])


def _check_halt_obeyed(
    env: Env,
    server: LiveServer,
    campaign_id: int,
    holding: dict[str, int],
    others: list[Device],
    canary: list[Device],
) -> dict[str, Any]:
    with api(server, env) as client:
        evaluated = client.post(f"/api/v1/campaigns/{campaign_id}/evaluate")
        assert evaluated.status_code == 200, evaluated.text
        status = evaluated.json()
    assert status["state"] == "halted", status
    # The canary devices still holding an open action are told to cancel it.
    by_id = {d.controller_id: d for d in canary}
    for cid, action in holding.items():
        links = by_id[cid].poll()
        assert "deploymentBase" not in links
        assert links["cancelAction"]["href"].endswith(f"/cancelAction/{action}")
    # No other device is offered the release.
    for device in others:
        assert "deploymentBase" not in device.poll()
    return dict(status)


def test_canary_failures_halt_the_campaign_cancel_pending_actions_and_offer_nothing_more(
    env: Env, server: LiveServer, fleet: tuple[list[Device], list[Device]]
) -> None:
    canary, others = fleet
    campaign_id = _start_canary_campaign(env, server)
    for device in others:
        assert device.deployment() is None  # not in the canary stage
    actions = {d.controller_id: d.deployment() for d in canary}
    assert all(actions.values())
    failing, holding = canary[:2], canary[2:]  # 2 of 8 is over the 20 % allowed
    for device in failing:
        action = actions[device.controller_id]
        assert action is not None
        device.feedback(action, "proceeding")
        device.feedback(action, "closed", "failure")
    status = _check_halt_obeyed(
        env,
        server,
        campaign_id,
        {d.controller_id: a for d in holding if (a := actions[d.controller_id]) is not None},
        others,
        canary,
    )
    counts = status["counts"]
    # The six still holding their offer are told cancelAction at their next poll (checked
    # above); until they answer it, they count as offered.
    assert (counts["failed"], counts["offered"], counts["cancelled"], counts["succeeded"]) == (
        2,
        6,
        0,
        0,
    )
    assert status["stage"] == {"index": 0, "name": "canary-optin"}
    assert status["last_gate"]["verdict"] == "halt"
    assert status["last_gate"]["failures"] == 2
    assert "failure rate" in status["halt_reason"]
    shown = env.cli("campaign", "status", str(campaign_id))
    assert shown.code == 0 and "HALTED" in shown.stdout and "failure rate" in shown.stdout
    audit = env.cli("audit", "list", "--json")
    assert "campaign.halted" in audit.stdout


def test_post_boot_crashes_reported_as_health_telemetry_halt_the_campaign(
    env: Env, server: LiveServer, fleet: tuple[list[Device], list[Device]]
) -> None:
    canary, others = fleet
    campaign_id = _start_canary_campaign(env, server)
    actions = {d.controller_id: d.deployment() for d in canary}
    crashing, holding = canary[:4], canary[4:]
    # The devices still on the previous release run quietly over the same period.
    for device in others:
        device.health(OLD, crashes=0, uptime_hours=10)
    for device in crashing:
        action = actions[device.controller_id]
        assert action is not None
        device.feedback(action, "closed", "success")
        device.health(NEW, crashes=6, uptime_hours=10)
    status = _check_halt_obeyed(
        env,
        server,
        campaign_id,
        {d.controller_id: a for d in holding if (a := actions[d.controller_id]) is not None},
        others,
        canary,
    )
    counts = status["counts"]
    # Each of the four came back on the new release (its health report names it), so each
    # counts as a success; the four others hold their offer, which the halt cancels.
    assert (counts["succeeded"], counts["failed"], counts["offered"]) == (4, 0, 4)
    assert "crash rate" in status["halt_reason"]
    gate = status["last_gate"]
    assert (gate["updated_crashes"], gate["updated_exposure_hours"]) == (24, 40.0)
    assert (gate["baseline_crashes"], gate["baseline_exposure_hours"]) == (0, 100.0)


@pytest.mark.skipif(not PG_ADMIN_URL, reason="PATCHGATE_TEST_POSTGRES is not set")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_halt_through_one_server_or_the_cli_is_obeyed_by_another_from_its_next_poll(
    env: Env, tmp_path: Path
) -> None:
    with (
        live_server(env.vars, tmp_path / "one.log") as one,
        live_server(env.vars, tmp_path / "two.log") as two,
    ):
        devices = [add_device(env, one, "dev-0", "qa")]
        devices += add_devices(env, one, [f"dev-{i}" for i in range(1, 6)], "qa")
        _old, new = releases(env)
        first = create(env, new, "--stages", "qa,100", "--soak", "1h")["id"]
        with api(two, env) as client:
            assert client.post(f"/api/v1/campaigns/{first}/start").status_code == 200
        assert devices[0].deployment() is not None  # served by process one
        with api(two, env) as client:
            answer = client.post(f"/api/v1/campaigns/{first}/halt", json={"reason": "bad smell"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "halted"
        for device in devices[1:]:
            assert "deploymentBase" not in device.poll()  # process one, next poll
        # Roll forward, then a halt through the CLI, obeyed by process two.
        fixed = make_release(env, "2.0.1", {"fw.bin": b"fixed"}, security_version=3)
        second = create(env, fixed, "--stages", "qa,100", "--soak", "1h")
        assert second["supersedes"] == first
        assert env.cli("campaign", "start", str(second["id"])).code == 0
        assert devices[1].on(two).deployment() is not None
        halted = env.cli("campaign", "halt", str(second["id"]), "--reason", "second thoughts")
        assert halted.code == 0, halted.stderr
        for device in devices[2:]:
            assert "deploymentBase" not in device.on(two).poll()


def test_campaign_create_refuses_bad_plans_and_releases_naming_the_rule(
    env: Env, server: LiveServer
) -> None:
    add_device(env, server, "qa-1", "qa")
    _old, new = releases(env)
    cases = {
        ("--stages", "qa,50,10"): "does not increase",
        ("--stages", "qa,150"): "over 100 %",
        ("--stages", "nosuch,100"): "unknown group 'nosuch'",
        ("--rate", "lots"): "rate",
        ("--window", "nonsense"): "window",
    }
    for flags, rule in cases.items():
        result = env.cli("campaign", "create", str(new.id), *flags)
        assert result.code == 2, (flags, result.stderr)
        assert rule in result.stderr, (flags, result.stderr)
        assert "Traceback" not in result.stderr
    withdrawn = make_release(env, "3.0.0", {"fw.bin": b"withdrawn"})
    assert env.cli("release", "withdraw", str(withdrawn.id), "--reason", "broken").code == 0
    result = env.cli("campaign", "create", str(withdrawn.id))
    assert result.code == 2 and "withdrawn" in result.stderr
    assert env.cli("campaign", "list", "--json").json() == {"campaigns": []}
    with api(server, env) as client:
        answer = client.post("/api/v1/campaigns", json={"release_id": new.id, "stages": "qa,5,1"})
        assert answer.status_code == 422 and "does not increase" in answer.text
        viewer = client.post(
            "/api/v1/campaigns", json={"release_id": new.id}, headers={"Authorization": "x"}
        )
        assert viewer.status_code == 401
    made = create(env, new, "--stages", "qa,100")
    _record, viewer_token = access.create_token(env.ctx, name="viewer", role="viewer", actor="t")
    with server.client(viewer_token) as viewer:
        assert viewer.get(f"/api/v1/campaigns/{made['id']}").json()["state"] == "draft"
        assert viewer.post(f"/api/v1/campaigns/{made['id']}/start").status_code == 403
    assert env.cli("campaign", "start", str(made["id"])).code == 0
    assert env.cli("campaign", "halt", str(made["id"]), "--reason", "stop").code == 0
    again = env.cli("campaign", "start", str(made["id"]))
    assert again.code == 2 and "halted" in again.stderr
    assert env.cli("campaign", "status", str(made["id"]), "--json").json()["state"] == "halted"


def test_the_api_takes_every_campaign_create_option_by_its_name() -> None:
    """create_campaign passes the body on to CreateOptions by field name."""
    from patchgate.entrypoints.api.campaigns import CampaignIn
    from patchgate.services.campaigns.options import CreateOptions

    fields = set(CampaignIn.model_fields) - {"release_id"}
    assert fields == {f.name for f in dataclasses.fields(CreateOptions)}
