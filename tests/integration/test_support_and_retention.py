"""End of support and update retention: the public support statement page, and the rule
that a withdrawn release's artifacts stay (CRA Art. 13(9)) through withdraw and sweeps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from patchgate.domain.checklist import notice_due, notice_times, retained_until
from patchgate.domain.policy import Month
from patchgate.services import releases
from tests.conftest import Env
from tests.factories import make_release
from tests.support import LiveServer, run_cli


def test_retention_is_ten_years_or_the_end_of_support_whichever_is_later() -> None:
    released = datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert retained_until(released, Month(2031, 12)) == datetime(2036, 3, 1, 9, tzinfo=UTC)
    assert retained_until(released, Month(2040, 6)) == datetime(2040, 7, 1, tzinfo=UTC)
    leap = datetime(2028, 2, 29, tzinfo=UTC)
    assert retained_until(leap, None) == datetime(2038, 2, 28, tzinfo=UTC)


def test_notices_fall_due_12_6_and_1_months_before_and_on_the_last_day() -> None:
    end = Month(2031, 12)
    assert [(n, at.date().isoformat()) for n, at in notice_times(end)] == [
        ("12 months", "2031-01-01"),
        ("6 months", "2031-07-01"),
        ("1 month", "2031-12-01"),
        ("end of support", "2031-12-31"),
    ]
    assert notice_due(end, datetime(2030, 12, 31, tzinfo=UTC)) is None
    assert notice_due(end, datetime(2031, 8, 1, tzinfo=UTC)) == "6 months"


def test_a_withdrawn_release_keeps_its_bytes_through_sweeps(demo_env: Env) -> None:
    made = make_release(demo_env, "1.0.2", {"fw.bin": b"kept for years"}, hardware=["demo-gw-1"])
    sha256 = str(made.artifacts["fw.bin"]["sha256"])
    result = demo_env.cli("release", "withdraw", str(made.id), "--reason", "boot loop")
    assert result.code == 0, result.stderr
    releases.sweep_unused_blobs(demo_env.ctx, older_than_seconds=0)
    path = demo_env.ctx.artifacts.local_path(sha256)
    assert path is not None and Path(path).read_bytes() == b"kept for years"
    assert releases.get_release(demo_env.ctx, made.id).state == "withdrawn"


def test_the_public_support_statement(demo_env: Env, tmp_path: Path) -> None:
    shown = demo_env.cli("support", "show", "Demo Gateway", "--json").json()
    assert shown["support_end"] == "2031-12" and shown["ends_at"] == "2032-01-01T00:00:00Z"
    srv = LiveServer(demo_env.vars, tmp_path / "log").start()
    try:
        page = httpx.get(f"{srv.url}/products/Demo%20Gateway")
        assert page.status_code == 200
        assert "December 2031" in page.text and "demo-gw-1" in page.text
        assert httpx.get(f"{srv.url}/products/Nope").status_code == 404
        bad = httpx.get(f"{srv.url}/products/a%5Cb")
        assert 400 <= bad.status_code < 500 and "not a product name" in bad.text
    finally:
        srv.stop()
    r = demo_env.cli("support", "show", "a/b")
    assert r.code == 2 and "not a product name" in r.stderr


SOON_ENDING = """
[[products]]
name = "Old Gateway"
support_start = "{start}"
support_end = "{end}"
short_support_reason = "the radio module is discontinued"
hardware = ["old-gw"]
"""


def test_a_running_server_sends_the_notice_due_once(demo_env: Env, tmp_path: Path) -> None:
    import time

    from patchgate.services import policy as policy_service
    from patchgate.services.setup import demo_policy_source
    from tests.integration.test_campaign_notices import Receiver

    now = datetime.now(UTC)
    end = Month(now.year + (now.month + 2) // 12, (now.month + 2) % 12 + 1)  # ~3 months on
    source = demo_policy_source() + SOON_ENDING.format(start=f"{now.year - 1}-01", end=end)
    policy_service.apply(demo_env.ctx, source, actor="t")
    receiver = Receiver(failures=0)
    servers = []
    hooked = {**demo_env.vars, "PATCHGATE_WEBHOOKS": receiver.url}
    try:
        servers.append(LiveServer(hooked, tmp_path / "log0").start())
        deadline = time.monotonic() + 30
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.2)
        # A second process, and then a delivery pass run to its end by a third (the CLI's
        # `notify run` returns once its pass is over): neither sends the notice again.
        servers.append(LiveServer(hooked, tmp_path / "log1").start())
        again = run_cli(["notify", "run"], hooked)
        assert again.code == 0, again.stderr
        assert [(b["product"], b["notice"]) for b in receiver.bodies] == [
            ("Old Gateway", "6 months")
        ]
    finally:
        for srv in servers:
            srv.stop()
        receiver.httpd.shutdown()
