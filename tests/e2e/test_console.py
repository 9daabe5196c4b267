"""The web console in a real browser (Debian's Chromium through Playwright): sign-in,
roles, the release manager's halt, the security engineer's forms, paging a large fleet,
no script errors and no serious accessibility problem on any page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

from patchgate.services import access
from patchgate.services import audit as audit_service
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands as campaign_commands
from patchgate.services.campaigns import views as campaign_views
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.devices import DeviceRow
from tests.conftest import Env
from tests.factories import make_release
from tests.support import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HTTP_STATUS_MESSAGE = "Failed to load resource: the server responded with a status of"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (make test installs it)"
    with sync_playwright() as p:
        made = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield made
        made.close()


class Console:
    """One signed-in browser page, recording script errors."""

    def __init__(self, browser: Browser, server: LiveServer, width: int = 1280) -> None:
        self.server = server
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page: Page = self.context.new_page()
        # Script errors, and sub-resources (styles, icons…) that failed to load. A page's
        # own status (a 401 for a wrong token, say) is each test's business.
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(HTTP_STATUS_MESSAGE):
            self.errors.append(message.text)

    def _response(self, response: Response) -> None:
        if response.status >= 400 and not response.request.is_navigation_request():
            self.errors.append(f"{response.status} {response.url}")

    def go(self, path: str) -> Page:
        self.page.goto(self.server.url + path)
        return self.page

    def sign_in(self, token: str) -> Page:
        page = self.go("/console/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        return page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser: Browser, server: LiveServer) -> Iterator[Console]:
    made = Console(browser, server)
    yield made
    made.close()


def _token(env: Env, role: str) -> str:
    _record, token = access.create_token(env.ctx, name=f"{role}-1", role=role, actor="test")
    return token


def _running_campaign(env: Env) -> int:
    device_service.add_device(env.ctx, "qa-1", groups=["qa"], hardware="demo-gw-1", actor="t")
    release = make_release(env, "2.0.0", {"fw.bin": b"x"}, security_version=2)
    made = campaign_commands.create(env.ctx, release.id, CreateOptions(stages="qa,100"), actor="t")
    campaign_commands.start(env.ctx, made, actor="t")
    return made


def test_without_a_session_every_page_sends_you_to_sign_in_and_back(
    env: Env, console: Console
) -> None:
    page = console.go("/console/vulnerabilities?sort=score")
    assert page.url.endswith("/console/login?next=/console/vulnerabilities%3Fsort%3Dscore")
    page.fill("#token", "pgt_not-a-token")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("#token-problem")
    page.fill("#token", env.admin_token)
    page.click("button[type=submit]")
    assert page.url.endswith("/console/vulnerabilities?sort=score")
    page.click("text=Sign out")
    assert page.url.endswith("/console/login")
    console.go("/console/")
    assert "/console/login" in console.page.url
    assert console.errors == []


def test_the_session_cookie_is_httponly_and_strict(env: Env, console: Console) -> None:
    console.sign_in(env.admin_token)
    [cookie] = console.context.cookies()
    assert cookie["name"] == "patchgate_session"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["value"] != env.admin_token


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(
    env: Env, console: Console, server: LiveServer
) -> None:
    campaign_id = _running_campaign(env)
    page = console.sign_in(_token(env, "viewer"))
    console.go(f"/console/campaigns/{campaign_id}")
    assert page.locator(".actions a, .actions button").count() == 0
    console.go("/console/vulnerabilities")
    assert page.locator("text=Add a vulnerability").count() == 0
    console.go("/console/releases/1")
    assert page.locator("text=Withdraw").count() == 0
    # Forge the halt with the viewer's own session and a valid CSRF token: still refused.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{server.url}/console/campaigns/{campaign_id}/halt",
        form={"csrf": csrf or "", "confirm": "yes", "reason": "forged"},
    )
    assert answer.status == 403
    assert campaign_views.status(env.ctx, campaign_id).state == "running"


def test_a_post_without_the_csrf_token_changes_nothing(
    env: Env, console: Console, server: LiveServer
) -> None:
    campaign_id = _running_campaign(env)
    page = console.sign_in(env.admin_token)
    for form in (
        {"confirm": "yes", "reason": "x"},
        {"csrf": "stale", "confirm": "yes", "reason": "x"},
    ):
        answer = page.request.post(f"{server.url}/console/campaigns/{campaign_id}/halt", form=form)
        assert answer.status == 403
        assert "stale" in answer.text()
    assert campaign_views.status(env.ctx, campaign_id).state == "running"
    # A request from another site carries no cookie at all (SameSite=Strict): sign-in.
    outside = httpx.post(
        f"{server.url}/console/campaigns/{campaign_id}/halt",
        data={"confirm": "yes", "reason": "x"},
        follow_redirects=False,
    )
    assert outside.status_code == 303
    assert outside.headers["location"].startswith("/console/login")


def test_halting_a_campaign_from_its_page_asks_for_a_reason_and_the_cli_sees_it(
    env: Env, console: Console
) -> None:
    campaign_id = _running_campaign(env)
    page = console.sign_in(env.admin_token)
    console.go(f"/console/campaigns/{campaign_id}")
    page.click(".actions >> text=Halt")
    # No reason, no confirmation: said next to the fields, nothing changes.
    page.click("button:has-text('Halt')")
    assert "tick the box" in page.inner_text("#e-confirm")
    page.check("input[name=confirm]")
    page.click("button:has-text('Halt')")
    assert "say why" in page.inner_text("#e-reason")
    assert campaign_views.status(env.ctx, campaign_id).state == "running"
    page.fill("#reason", "boot loops on rev B boards")
    page.check("input[name=confirm]")
    page.click("button:has-text('Halt')")
    assert page.url.endswith(f"/console/campaigns/{campaign_id}")
    assert "boot loops on rev B boards" in page.inner_text("[role=alert]")
    shown = env.cli("campaign", "status", str(campaign_id), "--json").json()
    assert shown["state"] == "halted"
    assert shown["halt_reason"] == "boot loops on rev B boards"
    entry = env.cli("audit", "list", "--json").json()["entries"][0]
    assert entry["action"].startswith("campaign.halt")
    assert entry["actor"] == "token:admin"
    assert console.errors == []


def test_a_security_engineer_adds_and_triages_a_vulnerability_through_the_forms(
    env: Env, console: Console
) -> None:
    make_release(env, "1.0.0", {"fw.bin": b"x"})  # puts the demo product in the policy
    page = console.sign_in(_token(env, "security_analyst"))
    console.go("/console/vulnerabilities/new")
    page.fill("#f-id", "CVE-2026-4242")
    page.fill("#f-title", "RCE in the web UI")
    page.fill("#f-cvss", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:Q")
    page.select_option("#f-product", "Demo Gateway")
    page.click("button:has-text('Add')")
    assert page.locator("#f-cvss[aria-invalid=true]").count() == 1
    assert page.inner_text("#e-cvss")
    assert env.cli("vuln", "show", "CVE-2026-4242").code == 2
    page.fill("#f-cvss", CRITICAL)
    page.click("button:has-text('Add')")
    assert page.url.endswith("/console/vulnerabilities/CVE-2026-4242")
    assert "critical" in page.inner_text("main")
    page.click("button:has-text('Save triage')")
    assert "choose a status" in page.inner_text("#e-status")
    page.select_option("#t-status", "not_affected")
    page.click("button:has-text('Save triage')")
    assert page.locator("#t-just[aria-invalid=true]").count() == 1
    page.select_option("#t-status", "fix_in_progress")
    page.click("button:has-text('Save triage')")
    shown = env.cli("vuln", "show", "CVE-2026-4242", "--json").json()
    assert shown["status"] == "fix_in_progress"
    assert shown["severity"] == "critical"
    assert console.errors == []


def test_ten_thousand_devices_page_by_keyset_and_filter_by_query(
    env: Env, console: Console
) -> None:
    rows = [
        DeviceRow(f"gw-{i:05d}", ("qa",) if i % 10 == 0 else (), "demo-gw-1", "1.0.0")
        for i in range(10_000)
    ]
    device_service.import_devices(env.ctx, rows, actor="t")
    page = console.sign_in(env.admin_token)
    console.go("/console/devices")
    first = page.locator("tbody tr td:first-child").all_inner_texts()
    assert first[0] == "gw-00000" and len(first) == 50
    for _ in range(3):
        page.click("a[rel=next]")
    assert page.locator("tbody tr td:first-child").first.inner_text() == "gw-00150"
    console.go("/console/devices?q=group%3D%3Dqa&search=gw-09")
    ids = page.locator("tbody tr td:first-child").all_inner_texts()
    assert ids[:3] == ["gw-09000", "gw-09010", "gw-09020"]
    assert all(int(i[3:]) % 10 == 0 for i in ids)
    console.go("/console/devices?q=group%3D%3D")
    assert "a value at position 7" in page.inner_text("#e-q")
    assert console.errors == []


PAGES = [
    "/console/",
    "/console/vulnerabilities",
    "/console/vulnerabilities/new",
    "/console/vulnerabilities/CVE-2026-0001",
    "/console/releases",
    "/console/releases/1",
    "/console/releases/1/withdraw",
    "/console/campaigns",
    "/console/campaigns/1",
    "/console/campaigns/1/halt",
    "/console/devices",
    "/console/devices/qa-1",
    "/console/audit",
    "/console/notifications",
    "/console/compliance",
    "/console/advisories",
    "/console/advisories/SA-2026-0001",
]


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_renders_without_script_errors_or_serious_accessibility_problems(
    sqlite_env: Env, browser: Browser, tmp_path: Path, width: int
) -> None:
    env = sqlite_env
    _running_campaign(env)
    env.cli("vuln", "add", "CVE-2026-0001", "--title", "t", "--cvss", CRITICAL,
            "--product", "Demo Gateway")  # fmt: skip
    assert env.cli("advisory", "create", "CVE-2026-0001").code == 0
    server = LiveServer(env.vars, tmp_path / "server.log").start()
    made = Console(browser, server, width=width)
    try:
        made.sign_in(env.admin_token)
        axe = Axe()
        for path in PAGES:
            answer = made.page.goto(server.url + path)
            assert answer is not None and answer.status == 200, path
            headers = answer.headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            results = axe.run(made.page)
            serious = [
                f"{v['id']}: {v['help']}"
                for v in results.response["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert serious == [], f"{path}: {serious}"
        assert made.errors == []
    finally:
        made.close()
        server.stop()


def test_the_notice_outbox_shows_each_delivery_and_an_admin_runs_a_pass(
    env: Env, browser: Browser, tmp_path: Path
) -> None:
    from tests.integration.test_campaign_notices import Receiver

    hooks = Receiver(failures=10**6)  # refuses every delivery: the notice stays queued
    campaign_id = _running_campaign(env)
    campaign_commands.halt(env.ctx, campaign_id, reason="boot loop on canaries", actor="t")
    served = {**env.vars, "PATCHGATE_WEBHOOKS": hooks.url, "PATCHGATE_NOTIFY_TICK": "3600"}
    server = LiveServer(served, tmp_path / "server.log").start(timeout=120)
    made = Console(browser, server)
    try:
        page = made.sign_in(env.admin_token)
        made.go("/console/notifications")
        run = "button:has-text('Run a delivery pass')"
        with page.expect_navigation():
            page.click(run)  # without ticking the box: nothing runs
        assert "tick the box" in page.inner_text("main")
        assert audit_service.entries(env.ctx, limit=1, action_prefix="notify.run") == []
        page.check("input[name=confirm]")
        with page.expect_navigation():
            page.click(run)
        assert "Delivery pass done" in page.inner_text("main")
        row = page.locator("tbody tr", has_text="halted").first
        assert "failed" in row.inner_text() and "503" in row.inner_text()
        assert row.locator("td.num").inner_text() == "1"  # attempts
        assert hooks.attempts >= 1
        [entry] = audit_service.entries(env.ctx, limit=1, action_prefix="notify.run")
        assert entry.actor == "token:admin" and set(entry.details) == {"stored", "sent", "failed"}
        # A viewer sees the outbox but cannot run a pass, not even with a forged POST.
        viewer = Console(browser, server)
        try:
            seen = viewer.sign_in(_token(env, "viewer"))
            viewer.go("/console/notifications")
            assert seen.locator(run).count() == 0
            assert "boot loop" in seen.inner_text("main") or "halted" in seen.inner_text("main")
            csrf = seen.locator("input[name=csrf]").first.get_attribute("value")
            answer = seen.request.post(
                f"{server.url}/console/notifications/run",
                form={"csrf": csrf or "", "confirm": "yes"},
            )
            assert answer.status == 403
        finally:
            viewer.close()
        assert made.errors == []
    finally:
        made.close()
        server.stop()
        hooks.httpd.shutdown()


OLD_PRODUCT = """
[[products]]
name = "Old Gateway"
support_start = "2019-01"
support_end = "2024-12"
on_sale = false
update_types = ["security"]
hardware = ["old-gw-1"]
"""


def test_devices_of_a_product_past_its_end_of_support_are_marked(
    env: Env, console: Console
) -> None:
    from patchgate.services import policy as policy_service
    from patchgate.services.setup import demo_policy_source

    policy_service.apply(env.ctx, demo_policy_source() + OLD_PRODUCT, actor="t")
    device_service.add_device(env.ctx, "old-1", hardware="old-gw-1", actor="t")
    device_service.add_device(env.ctx, "new-1", hardware="demo-gw-1", actor="t")
    page = console.sign_in(env.admin_token)
    console.go("/console/devices")
    rows = {
        r.locator("td").first.inner_text(): r.inner_text() for r in page.locator("tbody tr").all()
    }
    assert "end of support" in rows["old-1"]
    assert "end of support" not in rows["new-1"]
    console.go("/console/devices/old-1")
    assert "Old Gateway's support period has ended" in page.inner_text("main")
    console.go("/console/devices/new-1")
    assert "support period has ended" not in page.inner_text("main")
