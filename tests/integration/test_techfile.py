"""The technical file export (both backends): a self-contained folder whose every local
link resolves and whose figures match the register, releases and campaigns; opened in
Chromium when it is installed; refused for a non-empty or unwritable folder."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from patchgate.services.campaigns import commands as campaign_commands
from patchgate.services.campaigns import views as campaign_views
from patchgate.services.campaigns.options import CreateOptions
from tests import vuln_views as vulns
from tests.conftest import Env
from tests.factories import make_release

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
CHROMIUM = "/usr/bin/chromium"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.hrefs.append(value)


def local_links(folder: Path) -> list[tuple[Path, str]]:
    """Every relative link of every HTML and Markdown file: (file, target)."""
    out = []
    for page in folder.rglob("*"):
        if page.suffix == ".html":
            parser = Links()
            parser.feed(page.read_text())
            targets = parser.hrefs
        elif page.suffix == ".md":
            targets = re.findall(r"\]\(([^)]+)\)", page.read_text())
        else:
            continue
        out += [(page, t) for t in targets if not urlparse(t).scheme and not t.startswith("#")]
    return out


def _populate(env: Env) -> None:
    vulns.add(env.ctx, vuln_id="CVE-2026-6001", title="RCE", cvss=CRITICAL, actor="t",
              products=["Demo Gateway"], affected=["<1.0.2"])  # fmt: skip
    release = make_release(env, "1.0.2", {"fw.bin": b"fixed"}, hardware=["demo-gw-1"],
                           fixes=["CVE-2026-6001"])  # fmt: skip
    campaign_commands.create(env.ctx, release.id, CreateOptions(), actor="t")
    made = env.cli("advisory", "create", "CVE-2026-6001", "--json")
    assert env.cli("advisory", "publish", made.json()["id"]).code == 0


def test_export_is_self_contained_and_matches_the_register(demo_env: Env, tmp_path: Path) -> None:
    _populate(demo_env)
    target = tmp_path / "techfile"
    result = demo_env.cli("techfile", "export", str(target), "--json")
    assert result.code == 0, result.stderr
    body = result.json()
    assert body["path"] == str(target)
    assert {"index.html", "index.md", "data/register.json"} <= set(body["files"])
    links = local_links(target)
    assert len(links) > 20
    for page, href in links:
        assert (page.parent / unquote(href)).resolve().is_file(), (page, href)
    # The figures are those of the register, the releases and the campaigns, with their IDs.
    register = {v["id"]: v for v in vulns.list_all(demo_env.ctx)}
    exported = json.loads((target / "data" / "register.json").read_text())
    assert {v["id"]: (v["score"], v["due_at"], v["status"]) for v in exported} == {
        k: (v["score"], v["due_at"], v["status"]) for k, v in register.items()
    }
    md = (target / "register.md").read_text()
    for v in register.values():
        assert f"| {v['id']} | {v['title']} | {v['severity']} | {v['score']} |" in md
    # The SLA figures per severity, as `report sla --json` gives them, in the page and data.
    sla = json.loads((target / "data" / "sla.json").read_text())
    assert sla["severities"], "the demo register has vulnerabilities"
    for severity, row in sla["severities"].items():
        assert f"| {severity} | {row['count']} | {row['open']} | {row['overdue']} |" in md
    releases_md = (target / "releases.md").read_text()
    for r in json.loads((target / "data" / "releases.json").read_text()):
        for a in r["artifacts"]:
            assert f"| {r['id']} | {r['product']} | {r['version']} |" in releases_md
            assert a["sha256"] in releases_md
    listed = campaign_views.list_campaigns(demo_env.ctx).campaigns
    assert [c["id"] for c in json.loads((target / "data" / "campaigns.json").read_text())] == [
        c.id for c in listed
    ]
    advisories = list((target / "advisories").glob("*.json"))
    assert len(advisories) == 1 and json.loads(advisories[0].read_text())["document"]
    policy_md = (target / "policy.md").read_text()
    assert "| critical | 9.0 | 10.0 | 72 |" in policy_md
    assert "entries" in (target / "audit.md").read_text()
    assert '"intact"' in (target / "audit.md").read_text()

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed; the links were checked without it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(target.joinpath("index.html").as_uri())
        assert page.title().startswith("Technical file")
        page.click("text=Vulnerability register")
        assert page.url.endswith("/register.html")
        assert page.locator("td", has_text="CVE-2026-6001").count() == 1
        browser.close()


def test_a_non_empty_or_unwritable_folder_is_refused_and_nothing_is_written(
    demo_env: Env, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    r = demo_env.cli("techfile", "export", str(full))
    assert r.code == 2 and "not empty" in r.stderr
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    r = demo_env.cli("techfile", "export", str(tmp_path / "missing" / "deeper"))
    assert r.code == 2 and "does not exist" in r.stderr
    r = demo_env.cli("techfile", "export", str(tmp_path / "x"), "--product", "a/b")
    assert r.code == 2 and "not a product name" in r.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        r = demo_env.cli("techfile", "export", str(locked / "tf"))
        assert r.code == 2 and "not writable" in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".techfile-")]
