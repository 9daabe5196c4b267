"""Every CLI capability is reachable over the management API (docs/api.md): a table from
each ``patchgate`` command to its route, checked against the CLI's own command tree and
the server's OpenAPI document, and the routes that were added for it, used for real."""

from __future__ import annotations

from typing import Any

import httpx

from patchgate.entrypoints.cli import main
from patchgate.services import devices as device_service
from patchgate.services import policy as policy_service
from patchgate.services.setup import demo_policy_source
from tests.conftest import Env
from tests.factories import make_release
from tests.support import LiveServer

V = "/vulnerabilities/{vuln_id}"
C = "/campaigns/{campaign_id}"
# Each command: its route(s) ("METHOD /path" under /api/v1), or why it stays local.
ROUTES: dict[str, tuple[str, ...] | str] = {
    "init": "sets up the installation the server runs on",
    "serve": "starts the server",
    "db upgrade": "migrates the database before a server runs on it",
    "db check": "compares models and migrations (development)",
    "db revision": "writes a migration file (development)",
    "db prune-actions": "database maintenance on the host, beside db upgrade (docs/deploy.md)",
    "policy check": ("POST /policy/check",),
    "policy render": ("POST /policy/render", "GET /policy"),
    "policy apply": ("PUT /policy",),
    "vuln add": ("POST /vulnerabilities",),
    "vuln import": ("POST /vulnerabilities/import",),
    "vuln list": ("GET /vulnerabilities",),
    "vuln show": (f"GET {V}",),
    "vuln triage": (f"POST {V}/triage",),
    "vuln affects": (f"PUT {V}/products",),
    "vuln override": (f"POST {V}/override",),
    "vuln exploited": (f"POST {V}/exploited",),
    "vuln upstream": (f"POST {V}/upstream",),
    "vuln art14": (f"GET {V}/art14/{{kind}}",),
    "vuln submit": (f"POST {V}/art14/{{kind}}/submitted",),
    "vuln due": ("GET /vulnerabilities/reports/due",),
    "vuln export-vex": ("GET /vulnerabilities/vex/{product}",),
    "report sla": ("GET /vulnerabilities/reports/sla",),
    "release create": ("POST /releases",),
    "release list": ("GET /releases",),
    "release show": ("GET /releases/{release_id}",),
    "release withdraw": ("POST /releases/{release_id}/withdraw",),
    "release sign": "signs with the offline targets key, which never goes to the server",
    "keys init": "creates the offline root and targets keys beside the data folder",
    "keys rotate": "signs a new root with the offline root keys",
    "keys sign-targets": "signs with the offline targets key",
    "keys status": ("GET /trust",),
    "device add": ("POST /devices",),
    "device import": ("POST /devices/import",),
    "device list": ("GET /devices",),
    "device show": ("GET /devices/{controller_id}",),
    "device tag": ("POST /devices/{controller_id}/groups",),
    "device remove": ("DELETE /devices/{controller_id}",),
    "device rotate-token": ("POST /devices/{controller_id}/token",),
    "device assign": ("POST /devices/{controller_id}/actions",),
    "device cancel": ("POST /actions/{action_id}/cancel",),
    "ddi gateway-token": ("POST /ddi/gateway-token", "DELETE /ddi/gateway-token"),
    "ddi anonymous": ("PUT /ddi/anonymous",),
    "campaign create": ("POST /campaigns",),
    "campaign start": (f"POST {C}/start",),
    "campaign pause": (f"POST {C}/pause",),
    "campaign resume": (f"POST {C}/resume",),
    "campaign approve": (f"POST {C}/approve",),
    "campaign complete": (f"POST {C}/complete",),
    "campaign halt": (f"POST {C}/halt",),
    "campaign revert": (f"POST {C}/revert",),
    "campaign cancel": (f"POST {C}/cancel",),
    "campaign status": (f"GET {C}",),
    "campaign list": ("GET /campaigns",),
    "campaign tick": ("POST /campaigns/tick",),
    "simulate": "a virtual fleet; in http mode it drives a server through these routes",
    "agent": "the device side: it speaks the device API",
    "agent boot": "the device side",
    "agent status": "the device side",
    "audit verify": ("GET /audit/verify",),
    "audit list": ("GET /audit",),
    "token create": ("POST /tokens",),
    "token list": ("GET /tokens",),
    "token revoke": ("DELETE /tokens/{name}",),
    "audit checkpoint": "prints the signed chain head, to be kept off this machine",
    "advisory create": ("POST /advisories",),
    "advisory list": ("GET /advisories",),
    "advisory show": ("GET /advisories/{advisory_id}",),
    "advisory publish": ("POST /advisories/{advisory_id}/publish",),
    "report checklist": ("GET /compliance/checklist",),
    "support show": ("GET /compliance/products/{name}",),
    "techfile export": "writes a folder on the machine it runs on (its figures: the GET routes)",
    "notify list": ("GET /notifications",),
    "notify run": ("POST /notifications/run",),
    "filter create": ("POST /filters",),
    "filter save": ("PUT /filters/{name}",),
    "filter update": ("PATCH /filters/{name}",),
    "filter list": ("GET /filters",),
    "filter show": ("GET /filters/{name}",),
    "filter delete": ("DELETE /filters/{name}",),
    "device meta set": ("PUT /devices/{controller_id}/metadata/{key}",),
    "device meta unset": ("DELETE /devices/{controller_id}/metadata/{key}",),
    "device meta list": ("GET /devices/{controller_id}/metadata",),
    "release meta set": ("PUT /releases/{release_id}/metadata/{key}",),
    "release meta unset": ("DELETE /releases/{release_id}/metadata/{key}",),
    "release meta list": ("GET /releases/{release_id}/metadata",),
}


def _commands(prefix: str, command: Any) -> list[str]:
    subs = getattr(command, "commands", None)
    if not subs:
        return [prefix]
    found = [prefix] if getattr(command, "invoke_without_command", False) else []
    for name, sub in subs.items():
        found += _commands(f"{prefix} {name}", sub)
    return found


def _cli_commands() -> set[str]:
    names: set[str] = set()
    for name, (module, _) in main.COMMANDS.items():
        names.update(_commands(name, main._load(module)[name]))
    return names


def test_every_cli_command_has_a_route_or_a_reason_to_stay_local(
    env: Env, server: LiveServer
) -> None:
    cli = _cli_commands()
    assert not cli - set(ROUTES), (
        f"commands without a route or a reason: {sorted(cli - set(ROUTES))}"
    )
    assert not set(ROUTES) - cli, f"table rows for no command: {sorted(set(ROUTES) - cli)}"
    spec = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=30).json()
    served = {
        f"{method.upper()} {path.removeprefix('/api/v1')}"
        for path, item in spec["paths"].items()
        for method in item
    }
    wanted = {r for routes in ROUTES.values() if isinstance(routes, tuple) for r in routes}
    assert not wanted - served, f"routes the API does not serve: {sorted(wanted - served)}"


def _campaign(env: Env, client: httpx.Client) -> int:
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, hardware=["demo-gw-1"])
    made = client.post("/api/v1/campaigns", json={"release_id": release.id, "stages": "100"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_campaign_cancel_and_tick_over_rest(env: Env, server: LiveServer) -> None:
    device_service.add_device(env.ctx, "gw-1", hardware="demo-gw-1", version="1.0.0", actor="t")
    with server.client(env.admin_token) as client:
        first = _campaign(env, client)
        assert client.post(f"/api/v1/campaigns/{first}/start").status_code == 200
        ticked = client.post("/api/v1/campaigns/tick")
        assert ticked.status_code == 200, ticked.text
        assert set(ticked.json()["verdicts"]) <= {str(first)}
        cancelled = client.post(f"/api/v1/campaigns/{first}/cancel", json={"reason": "wrong build"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled"
        assert client.get(f"/api/v1/campaigns/{first}").json()["state"] == "cancelled"
        # Cancelling again, or a campaign that does not exist, is refused.
        again = client.post(f"/api/v1/campaigns/{first}/cancel")
        assert again.status_code == 409, again.text
        assert client.post("/api/v1/campaigns/999/cancel").status_code == 404
        long = client.post(f"/api/v1/campaigns/{first}/cancel", json={"reason": "x" * 2001})
        assert long.status_code == 422
    entries = env.cli("audit", "list", "--json").json()["entries"]
    assert any(e["subject"] == f"campaign:{first}" and "cancel" in e["action"] for e in entries)
    viewer = env.cli("token", "create", "ro", "--role", "viewer", "--json").json()["token"]
    with server.client(viewer) as client:
        assert client.post("/api/v1/campaigns/tick").status_code == 403
        assert client.post(f"/api/v1/campaigns/{first}/cancel").status_code == 403


def test_gateway_token_revocation_and_anonymous_mode_over_rest(
    env: Env, server: LiveServer
) -> None:
    base = f"{server.url}/DEFAULT/controller/v1"
    with server.client(env.admin_token) as client:
        token = client.post("/api/v1/ddi/gateway-token").json()["token"]
        gateway = {"Authorization": f"GatewayToken {token}"}
        assert httpx.get(f"{base}/gw-1", headers=gateway, timeout=30).status_code == 200
        assert client.delete("/api/v1/ddi/gateway-token").status_code == 204
        assert httpx.get(f"{base}/gw-1", headers=gateway, timeout=30).status_code == 401

        assert httpx.get(f"{base}/lab-1", timeout=30).status_code == 401
        on = client.put("/api/v1/ddi/anonymous", json={"enabled": True})
        assert on.status_code == 200 and on.json() == {"tenant": "DEFAULT", "anonymous": True}
        assert httpx.get(f"{base}/lab-1", timeout=30).status_code == 200
        assert client.put("/api/v1/ddi/anonymous", json={"enabled": False}).status_code == 200
        assert httpx.get(f"{base}/lab-2", timeout=30).status_code == 401
        assert client.put("/api/v1/ddi/anonymous", json={"enabled": "maybe"}).status_code == 422
    viewer = env.cli("token", "create", "ro", "--role", "viewer", "--json").json()["token"]
    with server.client(viewer) as client:
        assert client.put("/api/v1/ddi/anonymous", json={"enabled": True}).status_code == 403
        assert client.delete("/api/v1/ddi/gateway-token").status_code == 403
    actions = [e["action"] for e in env.cli("audit", "list", "--json").json()["entries"]]
    assert "tenant.gateway_token_revoke" in actions and "tenant.anonymous_ddi" in actions


def test_policy_check_and_render_over_rest_leave_the_policy_in_force(
    env: Env, server: LiveServer
) -> None:
    before = policy_service.in_force(env.ctx).sha256
    draft = demo_policy_source()
    toml = {"content-type": "application/toml"}
    with server.client(env.admin_token) as client:
        checked = client.post("/api/v1/policy/check", content=draft, headers=toml)
        assert checked.status_code == 200, checked.text
        body = checked.json()
        assert body["valid"] is True and body["summary"].startswith("valid (")
        assert [p["name"] for p in body["policy"]["products"]] == ["Demo Gateway"]
        bad = client.post("/api/v1/policy/check", content="organisation = 3\n", headers=toml)
        assert bad.status_code == 422 and bad.json()["problems"], bad.text
        md = client.post("/api/v1/policy/render", content=draft, headers=toml)
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
        assert "Demo Gateway" in md.text
        html = client.post("/api/v1/policy/render?format=html", content=draft, headers=toml)
        assert html.headers["content-type"].startswith("text/html") and "<" in html.text
        as_json = client.post("/api/v1/policy/render?format=json", content=draft, headers=toml)
        assert as_json.json() == body["policy"]
        wrong = client.post("/api/v1/policy/render?format=pdf", content=draft, headers=toml)
        assert wrong.status_code == 422
    # Neither puts the draft in force.
    assert policy_service.in_force(env.ctx).sha256 == before
