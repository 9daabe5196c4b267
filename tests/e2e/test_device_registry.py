"""The fleet registry through its CLI (in-process) and its REST API (a real server):
what a new user types, and what they get back."""

from __future__ import annotations

import re
from pathlib import Path

from patchgate.services import devices as device_service
from patchgate.services import policy as policy_service
from patchgate.services.setup import demo_policy_source
from tests.conftest import Env
from tests.support import LiveServer

_REPR = re.compile(r"None|\[\'|\{\'|\(\)|True|False")


def test_import_refuses_an_unknown_hardware_model_and_a_non_version_naming_the_line(
    demo_env: Env, tmp_path: Path
) -> None:
    bad = tmp_path / "fleet.csv"
    bad.write_text(
        "id,groups,hardware,version\n"
        "gw-1,qa,demo-gw-1,1.0.0\n"
        "gw-2,,demo-gw-9,1.0.0\n"
        "gw-3,,demo-gw-1,banana\n"
    )
    result = demo_env.cli("device", "import", str(bad))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: line 3: unknown hardware model 'demo-gw-9'")
    assert "demo-gw-1" in lines[0]  # says which models the policy names
    assert lines[1].startswith("error: line 4: version 'banana' is not a version")
    # All or nothing: the good line was not provisioned either.
    assert demo_env.cli("device", "show", "gw-1").code == 2


def test_device_add_refuses_them_too(demo_env: Env) -> None:
    unknown = demo_env.cli("device", "add", "gw-1", "--hardware", "rev-z")
    assert unknown.code == 2 and "unknown hardware model 'rev-z'" in unknown.stderr
    banana = demo_env.cli("device", "add", "gw-1", "--version", "banana")
    assert banana.code == 2 and "version 'banana' is not a version" in banana.stderr
    assert len(banana.stderr.strip().splitlines()) == 1
    assert (
        demo_env.cli("device", "add", "gw-1", "--hardware", "demo-gw-1", "--version", "1.0.0").code
        == 0
    )


def test_any_hardware_model_is_accepted_while_the_policy_names_none(env: Env) -> None:
    made = device_service.add_device(env.ctx, "lab-1", hardware="bench-board", actor="t")
    assert made.device.hardware == "bench-board"


def test_device_show_prints_values_as_a_person_writes_them(env: Env) -> None:
    assert env.cli("device", "add", "d-1", "--group", "internal").code == 0
    shown = env.cli("device", "show", "d-1")
    assert shown.code == 0, shown.stderr
    assert not _REPR.search(shown.stdout), shown.stdout
    assert "groups:" in shown.stdout and "internal" in shown.stdout
    assert re.search(r"last seen:\s+never", shown.stdout)
    assert re.search(r"hardware:\s+-$", shown.stdout, re.M)


def test_device_list_pages_through_the_fleet(env: Env) -> None:
    rows = [device_service.DeviceRow(f"d-{i:02d}", ("qa",) if i % 2 else ()) for i in range(7)]
    device_service.import_devices(env.ctx, rows, actor="t")
    first = device_service.device_page(env.ctx, limit=3)
    assert [d.controller_id for d in first.devices] == ["d-00", "d-01", "d-02"]
    assert first.next_after == "d-02"
    last = device_service.device_page(env.ctx, after="d-05", limit=3)
    assert [d.controller_id for d in last.devices] == ["d-06"] and last.next_after is None
    walked = [d.controller_id for d in device_service.iter_devices(env.ctx, page_size=2)]
    assert walked == [f"d-{i:02d}" for i in range(7)]
    qa = [d.controller_id for d in device_service.iter_devices(env.ctx, group="qa", page_size=2)]
    assert qa == ["d-01", "d-03", "d-05"]
    listed = env.cli("device", "list", "--json")
    assert [d["id"] for d in listed.json()["devices"]] == walked
    text = env.cli("device", "list").stdout.splitlines()
    assert text[0].split() == ["ID", "HARDWARE", "VERSION", "GROUPS", "LAST", "SEEN"]
    assert len(text) == 8 and len({line.index("never") for line in text[1:]}) == 1


def test_audit_and_token_lists_line_up_their_columns(env: Env) -> None:
    assert env.cli("token", "create", "a-rather-long-token-name", "--role", "viewer").code == 0
    assert env.cli("device", "add", "d-1").code == 0
    for command in (("audit", "list"), ("token", "list")):
        result = env.cli(*command)
        assert result.code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) >= 3
        # Every column starts at the same offset on every line.
        header = lines[0]
        starts = [m.start() for m in re.finditer(r"(?<=  )\S", header)]
        assert starts, header
        for line in lines[1:]:
            for start in starts:
                assert line[start - 2 : start] == "  " and line[start] != " ", (command, line)
        assert not _REPR.search(result.stdout)


def test_the_api_refuses_a_device_list_that_is_not_csv(env: Env, server: LiveServer) -> None:
    policy_service.apply(env.ctx, demo_policy_source(), actor="t")
    with server.client(env.admin_token) as client:
        for headers in ({}, {"content-type": "application/json"}):
            answer = client.post("/api/v1/devices/import", content=b"null", headers=headers)
            assert answer.status_code == 422, answer.text
        assert client.get("/api/v1/devices/null").status_code == 404
        bad = client.post(
            "/api/v1/devices/import",
            content=b"gw-1,,demo-gw-7,1.0\n",
            headers={"content-type": "text/csv"},
        )
        assert bad.status_code == 422
        assert bad.json()["problems"][0].startswith("line 1: unknown hardware model")
        added = client.post("/api/v1/devices", json={"id": "gw-2", "version": "banana"})
        assert added.status_code == 422 and "banana" in added.json()["message"]
        good = client.post(
            "/api/v1/devices/import",
            content=b"gw-1,,demo-gw-1,1.0\ngw-3,,,\n",
            headers={"content-type": "text/csv; charset=utf-8"},
        )
        assert good.status_code == 201
        page = client.get("/api/v1/devices", params={"limit": 1}).json()
        assert [d["id"] for d in page["devices"]] == ["gw-1"] and page["next_after"] == "gw-1"
        rest = client.get("/api/v1/devices", params={"after": "gw-1"}).json()
        assert [d["id"] for d in rest["devices"]] == ["gw-3"] and rest["next_after"] is None
        shown = client.get("/api/v1/devices/gw-1").json()
        assert shown == env.cli("device", "show", "gw-1", "--json").json()
