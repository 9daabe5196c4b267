"""``device list --filter`` and ``GET /api/v1/devices?filter=``: hawkBit's target-filter
language over the fleet, paged, on SQLite and PostgreSQL."""

from __future__ import annotations

from patchgate.services import devices as device_service
from patchgate.services.devices import DeviceRow
from tests.conftest import Env
from tests.support import LiveServer


def _fleet(env: Env) -> None:
    rows = [
        DeviceRow(f"gw-{i:03d}", ("qa",) if i % 3 == 0 else (), "gw-1", f"1.{i % 12}.0")
        for i in range(60)
    ]
    device_service.import_devices(env.ctx, rows, actor="t")


def _expected() -> list[str]:
    # group==qa and version below 1.10 (1.10 > 1.9: versions order by number, not by text)
    return [f"gw-{i:03d}" for i in range(60) if i % 3 == 0 and (i % 12) < 10]


def test_the_cli_lists_the_devices_a_query_selects(env: Env) -> None:
    _fleet(env)
    shown = env.cli("device", "list", "--filter", "group==qa;version<1.10", "--json")
    assert shown.code == 0, shown.stderr
    assert [d["id"] for d in shown.json()["devices"]] == _expected()
    text = env.cli("device", "list", "--filter", "id==gw-00*")
    assert text.code == 0
    assert "gw-009" in text.stdout and "gw-010" not in text.stdout


def test_a_malformed_query_names_the_position_and_lists_nothing(env: Env) -> None:
    _fleet(env)
    bad = env.cli("device", "list", "--filter", "group==qa;colour==red", "--json")
    assert bad.code == 2
    assert bad.stdout == ""
    assert bad.stderr.strip() == (
        "error: filter: unknown field 'colour' at position 10 "
        "(fields: id, group, hardware, version, last_seen, attribute.NAME, metadata.KEY)"
    )


def test_the_api_pages_through_the_devices_a_query_selects(env: Env, server: LiveServer) -> None:
    _fleet(env)
    with server.client(env.admin_token) as client:
        seen: list[str] = []
        after = None
        while True:
            params = {"filter": "group==qa;version<1.10", "limit": "3"}
            if after:
                params["after"] = after
            page = client.get("/api/v1/devices", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            seen += [d["id"] for d in body["devices"]]
            after = body["next_after"]
            if after is None:
                break
        assert seen == _expected()
        bad = client.get("/api/v1/devices", params={"filter": "group=="})
        assert bad.status_code == 422
        assert "a value at position 7" in bad.json()["message"]
