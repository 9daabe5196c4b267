"""``patchgate simulate --mode http --server URL --token T``: a rehearsal against a running
deployment (a live ``patchgate serve`` started here, on its own data folder), through its
APIs only: the virtual fleet provisioned under a prefix and removed afterwards, the
campaign created, watched and reverted over the management API; and the refusal to touch
an installation that its policy does not mark as staging or test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from patchgate.sim.http_server import CliServerSide

STAGING = '\n[instance]\nkind = "staging"\n'


def _server(tmp_path: Path, *, staging: bool) -> CliServerSide:
    server = CliServerSide(data_dir=tmp_path, poll_sleep=5, campaign_tick=1.0)
    server.setup()
    if staging:
        policy = tmp_path / "var" / "policy.toml"
        policy.write_text(policy.read_text() + STAGING)
        server.cli("policy", "apply", str(policy))
    server.cli("device", "add", "real-0001", "--hardware", "sim-board", "--version", "1.0.0")
    server.start()
    return server


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[CliServerSide]:
    server = _server(tmp_path, staging=True)
    yield server
    server.stop()


@pytest.fixture
def production(tmp_path: Path) -> Iterator[CliServerSide]:
    server = _server(tmp_path, staging=False)
    yield server
    server.stop()


def _manager_token(server: CliServerSide) -> str:
    made = server.cli_json("token", "create", "rehearsal", "--role", "release_manager")
    return str(made["token"])


def _simulate(server: CliServerSide, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    args = ["simulate", "--mode", "http", "--server", server.url, "--token", token]
    args += ["--devices", "200", "--fault", "boot:0.3", "--time-scale", "180"]
    args += ["--http-timeout", "150", "--prefix", "rehearsal-", "--json", *extra]
    return subprocess.run(
        [sys.executable, "-m", "patchgate.entrypoints.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


def _api(server: CliServerSide, path: str) -> dict[str, object]:
    response = httpx.get(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {server.api_token}"}
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert isinstance(out, dict)
    return out


@pytest.mark.timeout(300)
def test_a_rehearsal_drives_a_running_staging_server_and_cleans_up(
    staging: CliServerSide,
) -> None:
    proc = _simulate(staging, _manager_token(staging))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["mode"] == "http" and out["devices"] == 200
    assert out["settings"]["instance"] == "staging"
    assert out["settings"]["prefix"] == "rehearsal-"
    assert out["halted"] is True and out["false_halt"] is False
    assert out["bricked"] == 0
    assert 0 < out["exposed"] < 200 * 0.2
    assert out["every_exposed_on_known_good"] is True
    assert out["cleanup"] == {"devices_removed": 200, "releases_withdrawn": 2}

    # The virtual fleet is gone: its tokens stop, it is out of the device list; the
    # installation's own device never saw the rehearsal's release.
    listed = _api(staging, "/api/v1/devices?filter=id==rehearsal-*")
    assert listed["devices"] == []
    gone = httpx.get(
        f"{staging.url}/DEFAULT/controller/v1/rehearsal-0000000",
        headers={"Authorization": "TargetToken whatever"},
    )
    assert gone.status_code == 401
    real = _api(staging, "/api/v1/devices/real-0001")
    assert real["installed_version"] == "1.0.0"
    assert _api(staging, "/api/v1/devices/real-0001/actions")["actions"] == []
    # Both rehearsal releases are withdrawn: never offered again.
    releases = _api(staging, "/api/v1/releases")["releases"]
    rehearsal = [r for r in releases if str(r["version"]).startswith("0.")]  # type: ignore[index]
    assert len(rehearsal) == 2
    assert all(r["withdrawn_at"] for r in rehearsal)  # type: ignore[index]
    # Every step is in the audit log under the rehearsal token.
    audit = _api(staging, "/api/v1/audit?limit=1000")
    actions = {e["action"] for e in audit["entries"]}  # type: ignore[index,union-attr]
    wanted = {"device.import", "campaign.create", "campaign.revert-started", "device.remove"}
    assert wanted <= actions


@pytest.mark.timeout(120)
def test_a_production_server_is_refused_unless_told(production: CliServerSide) -> None:
    proc = _simulate(production, _manager_token(production))
    assert proc.returncode == 2
    assert "production instance" in proc.stderr and "--i-know-this-is-production" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Nothing was provisioned.
    listed = _api(production, "/api/v1/devices")
    assert [d["id"] for d in listed["devices"]] == ["real-0001"]  # type: ignore[index,union-attr]
