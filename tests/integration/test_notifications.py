"""Notices by e-mail (a real SMTP server, aiosmtpd) and webhook, from the durable outbox:
each event once, queued while the mail server is down, never resent after a restart."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from patchgate.adapters.notice_channels import HttpWebhookSender, SmtpMailer
from patchgate.bootstrap import Settings, build
from patchgate.domain.notices import Routes, parse_routes
from patchgate.services import devices as device_service
from patchgate.services import notifications
from patchgate.services.campaigns import commands as campaign_commands
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.context import Context
from patchgate.services.notice_ports import Channels
from tests import vuln_views as vulns
from tests.conftest import Env
from tests.factories import make_release
from tests.integration.test_campaign_notices import Receiver

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8: due 72 h after awareness
NOW = datetime(2031, 12, 10, 12, 0, tzinfo=UTC)  # three weeks before Demo Gateway's end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """aiosmtpd's handler: every message received, parsed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        message["X-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def subjects(self) -> list[str]:
        # RFC 5322 unfolding keeps the space after "Subject:" when the value was folded.
        return sorted(str(m["Subject"]).strip() for m in self.messages)


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(_free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    made = Receiver(failures=0)
    yield made
    made.httpd.shutdown()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _channels(smtp: SmtpServer, hooks: Receiver, routes: Routes | None = None) -> Channels:
    return Channels(
        routes=routes or Routes(("psirt@example.com",)),
        mailer=SmtpMailer(f"smtp://127.0.0.1:{smtp.port}", "patchgate@example.com", timeout=2),
        webhook_urls=(hooks.url,),
        webhooks=HttpWebhookSender(timeout=2),
        base_url="https://updates.example.com",
    )


def _state(env: Env, clock: Clock) -> Context:
    """One event of each kind the register, the campaigns and the policy can cause."""
    ctx = dataclasses.replace(env.ctx, clock=clock)
    release = make_release(env, "2.0.0", {"fw.bin": b"x"}, security_version=2)
    # Overdue: critical, known for four days (due after 72 h).
    vulns.add(ctx, vuln_id="CVE-2031-0001", title="RCE in the web UI", cvss=CRITICAL,
              actor="t", aware_at=NOW - timedelta(days=4), products=["Demo Gateway"])  # fmt: skip
    # Due within a day: critical, known for 60 hours.
    vulns.add(ctx, vuln_id="CVE-2031-0002", title="auth bypass", cvss=CRITICAL, actor="t",
              aware_at=NOW - timedelta(hours=60), products=["Demo Gateway"])  # fmt: skip
    # Actively exploited two hours ago: the 24 h and 72 h Art. 14 reports are due.
    vulns.add(ctx, vuln_id="CVE-2031-0003", title="exploited", cvss=CRITICAL, actor="t",
              aware_at=NOW - timedelta(hours=2), products=["Demo Gateway"],
              exploited=True)  # fmt: skip
    device_service.add_device(ctx, "qa-1", groups=["qa"], hardware="demo-gw-1", actor="t")
    made = campaign_commands.create(ctx, release.id, CreateOptions(stages="qa,100"), actor="t")
    campaign_commands.start(ctx, made, actor="t")
    campaign_commands.halt(ctx, made, reason="boot loops on rev B", actor="t")
    return ctx


EXPECTED_SUBJECTS = [
    "[patchgate] Due within a day: CVE-2031-0002 (critical) at 2031-12-11T00:00:00Z",
    "[patchgate] Due: CRA Art. 14 early warning (24 h) for CVE-2031-0003, 2031-12-11T10:00:00Z",
    "[patchgate] Due: CRA Art. 14 vulnerability notification (72 h) for CVE-2031-0003, "
    "2031-12-13T10:00:00Z",
    "[patchgate] End of support in 1 month: Demo Gateway on 2031-12-31",
    "[patchgate] HALTED: campaign 1 (Demo Gateway 2.0.0) at stage qa",
    "[patchgate] OVERDUE: CVE-2031-0001 (critical) was due 2031-12-09T12:00:00Z",
]


def test_each_event_is_mailed_and_posted_once_with_what_to_do(
    env: Env, smtp: SmtpServer, hooks: Receiver
) -> None:
    clock = Clock(NOW)
    ctx = _state(env, clock)
    channels = _channels(smtp, hooks)
    first = notifications.run_once(ctx, channels)
    assert first.stored == len(EXPECTED_SUBJECTS)
    assert first.failed == 0
    assert smtp.inbox.subjects() == sorted(EXPECTED_SUBJECTS)
    halted = next(m for m in smtp.inbox.messages if "HALTED" in str(m["Subject"]))
    text = str(halted.get_payload(decode=True), "utf-8")
    assert "boot loops on rev B" in text
    assert "https://updates.example.com/console/campaigns/1" in text
    assert halted["To"] == "psirt@example.com"
    events = sorted(b["event"] for b in hooks.bodies)
    assert events == sorted(
        [
            "vulnerability.due_soon",
            "art14.report_due",
            "art14.report_due",
            "support.ending",
            "campaign.halted",
            "vulnerability.overdue",
        ]
    )
    notice = next(b for b in hooks.bodies if b["event"] == "campaign.halted")
    assert notice["campaign_id"] == 1
    assert notice["reason"] == "boot loops on rev B"
    # The same state again, an hour later: nothing new.
    clock.now = NOW + timedelta(hours=1)
    again = notifications.run_once(ctx, channels)
    assert (again.stored, again.sent) == (0, 0)
    assert len(smtp.inbox.messages) == len(EXPECTED_SUBJECTS)


def test_the_due_soon_notice_is_followed_by_overdue_once_the_deadline_passes(
    env: Env, smtp: SmtpServer, hooks: Receiver
) -> None:
    clock = Clock(NOW)
    ctx = _state(env, clock)
    channels = _channels(smtp, hooks)
    notifications.run_once(ctx, channels)
    # CVE-2031-0002 was due at NOW + 12 h; the early warning of CVE-2031-0003 at NOW + 22 h.
    clock.now = NOW + timedelta(hours=23)
    later = notifications.run_once(ctx, channels)
    assert later.stored == 2
    assert sorted(set(smtp.inbox.subjects()) - set(EXPECTED_SUBJECTS)) == [
        "[patchgate] OVERDUE: CRA Art. 14 early warning (24 h) for CVE-2031-0003, "
        "2031-12-11T10:00:00Z",
        "[patchgate] OVERDUE: CVE-2031-0002 (critical) was due 2031-12-11T00:00:00Z",
    ]


def test_with_the_mail_server_down_notices_wait_and_arrive_when_it_is_back(
    env: Env, smtp: SmtpServer, hooks: Receiver
) -> None:
    clock = Clock(NOW)
    ctx = _state(env, clock)
    channels = _channels(smtp, hooks)
    smtp.stop()
    down = notifications.run_once(ctx, channels)
    assert down.stored == len(EXPECTED_SUBJECTS)
    assert down.failed == len(EXPECTED_SUBJECTS)  # the e-mails; the webhooks went out
    assert len(hooks.bodies) == len(EXPECTED_SUBJECTS)
    [latest, *_] = notifications.page(ctx)
    email = next(d for d in latest.deliveries if d.channel == "email")
    assert email.state == "pending"
    assert email.attempts == 1
    assert email.last_error is not None and "127.0.0.1" in email.last_error
    assert email.next_attempt_at == NOW + timedelta(seconds=30)
    smtp.start()
    # Before the retry time nothing is tried; after it, everything arrives once.
    assert notifications.deliver(ctx, channels) == (0, 0)
    clock.now = NOW + timedelta(seconds=31)
    assert notifications.deliver(ctx, channels) == (len(EXPECTED_SUBJECTS), 0)
    assert smtp.inbox.subjects() == sorted(EXPECTED_SUBJECTS)
    assert len(hooks.bodies) == len(EXPECTED_SUBJECTS)


def test_a_restarted_server_sends_nothing_already_sent(
    env: Env, smtp: SmtpServer, hooks: Receiver
) -> None:
    clock = Clock(NOW)
    ctx = _state(env, clock)
    notifications.run_once(ctx, _channels(smtp, hooks))
    restarted = build(Settings(data_dir=env.data_dir, database_url=env.database_url))
    try:
        ctx2 = dataclasses.replace(restarted.context, clock=clock)
        result = notifications.run_once(ctx2, _channels(smtp, hooks))
    finally:
        restarted.close()
    assert (result.stored, result.sent) == (0, 0)
    assert len(smtp.inbox.messages) == len(EXPECTED_SUBJECTS)
    assert len(hooks.bodies) == len(EXPECTED_SUBJECTS)


def test_routes_send_each_kind_to_its_own_addresses(
    env: Env, smtp: SmtpServer, hooks: Receiver
) -> None:
    clock = Clock(NOW)
    ctx = _state(env, clock)
    routes = parse_routes(
        "psirt@example.com",
        "campaign_halted=release@example.com,ops@example.com;end_of_support=",
    )
    notifications.run_once(ctx, _channels(smtp, hooks, routes))
    by_subject: dict[str, list[str]] = {}
    for m in smtp.inbox.messages:
        by_subject.setdefault(str(m["Subject"]).strip(), []).append(str(m["X-Rcpt"]))
    halted = next(s for s in by_subject if "HALTED" in s)
    assert sorted(by_subject[halted]) == ["ops@example.com", "release@example.com"]
    assert not any("End of support" in s for s in by_subject)
    assert by_subject[EXPECTED_SUBJECTS[-1]] == ["psirt@example.com"]
