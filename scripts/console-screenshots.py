"""Screenshots of every console page at 1280 px, into docs/console/ (run after a change to
the pages: ``.venv/bin/python scripts/console-screenshots.py``).

It builds a throwaway installation with the demo product, a few vulnerabilities (one
overdue, one exploited), a running and a halted campaign, starts ``patchgate serve`` on
a free port, signs in and photographs each page with Debian's Chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "console"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
HIGH = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:L/A:N"
MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:L"


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "patchgate.entrypoints.cli", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"patchgate {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def seed(env: dict[str, str], work: Path) -> str:
    cli(env, "init", "--demo")
    token = cli(env, "token", "create", "screenshots", "--role", "admin").split()[-1]
    now = datetime.now(UTC).replace(microsecond=0)
    ago = lambda hours: (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    cli(env, "vuln", "add", "CVE-2026-1001", "--title", "Remote code execution in the web UI",
        "--cvss", CRITICAL, "--product", "Demo Gateway", "--affected", "<1.0.2",
        "--aware-at", ago(80))  # fmt: skip
    cli(env, "vuln", "add", "CVE-2026-1002", "--title", "Session fixation in the API",
        "--cvss", HIGH, "--product", "Demo Gateway", "--affected", "<1.0.2",
        "--aware-at", ago(24 * 20))  # fmt: skip
    cli(env, "vuln", "add", "CVE-2026-1003", "--title", "Actively exploited auth bypass",
        "--cvss", CRITICAL, "--product", "Demo Gateway", "--exploited",
        "--aware-at", ago(3))  # fmt: skip
    cli(env, "vuln", "add", "CVE-2026-1004", "--title", "Information leak in logs",
        "--cvss", MEDIUM, "--product", "Demo Gateway", "--aware-at", ago(24 * 5))  # fmt: skip
    image = work / "demo-gw-1-1.0.2.img"
    image.write_bytes(b"patchgate demo image 1.0.2\n" * 2000)
    cli(env, "release", "create", "Demo Gateway", "1.0.2", "--artifact", str(image),
        "--security-version", "2", "--hardware", "demo-gw-1",
        "--fixes", "CVE-2026-1001,CVE-2026-1002")  # fmt: skip
    image3 = work / "demo-gw-1-1.0.3.img"
    image3.write_bytes(b"patchgate demo image 1.0.3\n" * 2000)
    cli(env, "release", "create", "Demo Gateway", "1.0.3", "--artifact", str(image3),
        "--security-version", "3", "--hardware", "demo-gw-1")  # fmt: skip
    cli(env, "campaign", "create", "2", "--stages", "internal,qa,canary:2,10,50,100")
    cli(env, "campaign", "start", "1")
    cli(env, "campaign", "create", "3", "--stages", "internal,100")
    cli(env, "campaign", "start", "2")
    cli(env, "campaign", "halt", "2", "--reason", "boot loops on rev B boards")
    cli(env, "advisory", "create", "CVE-2026-1001", "CVE-2026-1002")
    # The halt, the overdue and due-soon deadlines as notices: one webhook takes them, the
    # other refuses, so the outbox shows both states.
    cli(env, "notify", "run")
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PAGES = {
    "login": "/console/login",
    "dashboard": "/console/",
    "vulnerabilities": "/console/vulnerabilities",
    "vulnerability": "/console/vulnerabilities/CVE-2026-1003",
    "vulnerability-new": "/console/vulnerabilities/new",
    "releases": "/console/releases",
    "release": "/console/releases/2",
    "campaigns": "/console/campaigns",
    "campaign": "/console/campaigns/1",
    "campaign-halted": "/console/campaigns/2",
    "campaign-halt-confirm": "/console/campaigns/1/halt",
    "devices": "/console/devices",
    "device": "/console/devices/demo-gw-0001",
    "compliance": "/console/compliance",
    "advisories": "/console/advisories",
    "advisory": "/console/advisories/SA-{year}-0001",
    "notifications": "/console/notifications",
    "audit": "/console/audit",
}


class Hook(BaseHTTPRequestHandler):
    """A webhook receiver that takes every notice."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        hook = HTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        refused = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        env = {
            **os.environ,
            "PATCHGATE_DATA_DIR": str(work / "var"),
            "PATCHGATE_WEBHOOKS": f"http://127.0.0.1:{hook.server_port}/hook {refused}",
            "PATCHGATE_NOTIFY_TICK": "3600",
        }
        env.pop("PATCHGATE_DATABASE_URL", None)
        token = seed(env, work)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "patchgate.entrypoints.cli", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{base}/console/login")
                page.screenshot(path=str(OUT / "login.png"), full_page=True)
                page.fill("#token", token)
                page.click("button[type=submit]")
                year = datetime.now(UTC).year
                for name, path in PAGES.items():
                    if name == "login":
                        continue
                    page.goto(base + path.format(year=year))
                    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                    print(f"docs/console/{name}.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
