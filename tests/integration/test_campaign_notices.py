"""A halt's webhook notice (delivered with retry to a real HTTP endpoint), the refusal of an
unsigned release, and deadline-aware plans."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from patchgate.domain.errors import Conflict
from patchgate.entrypoints.presenters import campaigns as present
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands, views
from patchgate.services.campaigns.options import CreateOptions
from tests.conftest import Env
from tests.factories import make_release
from tests.support import run_cli


class Receiver:
    """A loopback HTTP endpoint that fails its first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(failures=2)
    yield made
    made.httpd.shutdown()


def test_a_halt_posts_a_json_notice_to_the_configured_webhooks_with_retry(
    sqlite_env: Env, receiver: Receiver
) -> None:
    env = sqlite_env
    device_service.add_device(env.ctx, "qa-1", groups=["qa"], hardware="demo-gw-1", actor="t")
    release = make_release(env, "2.0.0", {"fw.bin": b"x"}, security_version=2)
    made = commands.create(env.ctx, release.id, CreateOptions(stages="qa,100"), actor="t")
    commands.start(env.ctx, made, actor="t")
    hooks = {**env.vars, "PATCHGATE_WEBHOOKS": receiver.url}
    result = run_cli(["campaign", "halt", str(made), "--reason", "field reports"], hooks)
    assert result.code == 0, result.stderr
    assert receiver.attempts == 3  # two refusals, then delivered
    [notice] = receiver.bodies
    assert notice["event"] == "campaign.halted"
    assert notice["campaign_id"] == made
    assert notice["reason"] == "field reports"


def test_a_campaign_for_an_unsigned_release_is_refused(sqlite_env: Env) -> None:
    env = sqlite_env
    offline = env.data_dir / "offline-keys"
    shutil.move(offline, env.data_dir.parent / "moved-offline-keys")  # production trust mode
    release = make_release(env, "2.0.0", {"fw.bin": b"x"}, security_version=2)
    with pytest.raises(Conflict, match="not signed"):
        commands.create(env.ctx, release.id, CreateOptions(stages="100"), actor="t")
    assert views.list_campaigns(env.ctx).campaigns == ()


def test_a_release_fixing_a_vulnerability_gets_a_plan_that_meets_its_due_date(
    sqlite_env: Env,
) -> None:
    env = sqlite_env
    for i in range(20):
        device_service.add_device(env.ctx, f"d-{i}", hardware="demo-gw-1", actor="t")
    vuln = env.cli(
        "vuln",
        "add",
        "CVE-2026-0001",
        "--title",
        "remote code execution",
        "--cvss",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "--product",
        "Demo Gateway",
        "--json",
    )
    assert vuln.code == 0, vuln.stderr
    release = make_release(
        env, "2.0.0", {"fw.bin": b"x"}, security_version=2, fixes=["CVE-2026-0001"]
    )
    made_id = commands.create(env.ctx, release.id, CreateOptions(stages="10,50,100"), actor="t")
    made = present.status_json(views.status(env.ctx, made_id))
    assert made["deadline_at"] == vuln.json()["due_at"]
    schedule = made["schedule"]
    assert schedule["feasible"] is True
    assert schedule["last_stage_reached_at"] <= made["deadline_at"]
    assert made["deadline_at_risk"] is False
    commands.start(env.ctx, made_id, actor="t")
    started = present.status_json(views.status(env.ctx, made_id))
    assert started["forecast_complete_at"] is not None
    assert started["deadline_at_risk"] is False
