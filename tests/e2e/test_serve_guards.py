"""What `patchgate serve` guards at start and at its edge: a busy port is an error unless
sharing is asked for; a forged Host header never reaches device links; a server on a
non-loopback address without a public URL warns; the data folder is owner-only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import Env
from tests.support import LiveServer, free_port, run_cli_process


def test_a_second_server_on_a_busy_port_exits_2_with_one_line(env: Env, server: LiveServer) -> None:
    result = run_cli_process(["serve", "--port", str(server.port)], env.vars, timeout=60)
    assert result.code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(server.port) in errors[0], result.stderr
    assert "--reuse-port" in errors[0]
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_forged_host_header_never_reaches_the_links_given_to_devices(
    env: Env, server: LiveServer
) -> None:
    added = env.cli("device", "add", "dev-h", "--json")
    token = added.json()["token"]
    answer = httpx.get(
        f"{server.url}/DEFAULT/controller/v1/dev-h",
        headers={"Authorization": f"TargetToken {token}", "Host": "evil.example"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert "evil.example" not in answer.text
    assert f"127.0.0.1:{server.port}/DEFAULT/controller/v1/dev-h" in answer.text


def test_serving_on_a_public_address_without_a_public_url_warns(env: Env, tmp_path: Path) -> None:
    port = free_port()
    command = ["serve", "--host", "0.0.0.0", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "patchgate.entrypoints.cli", *command],
        env={**os.environ, **env.vars, "PATCHGATE_PUBLIC_URL": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline and "serving on" not in seen:
            seen += proc.stderr.readline()
        assert "warning: PATCHGATE_PUBLIC_URL is not set" in seen, seen
    finally:
        proc.terminate()
        proc.wait(10)


def test_init_makes_the_database_keys_and_data_folder_owner_only(tmp_path: Path) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    data = tmp_path / "fresh"
    result = run_cli_process(["init"], {"PATCHGATE_DATA_DIR": str(data)}, timeout=120)
    assert result.code == 0, result.stderr
    assert mode(data) == 0o700
    assert mode(data / "keys") == 0o700
    for key in (data / "keys").iterdir():
        assert mode(key) == 0o600, key
    assert mode(data / "patchgate.db") == 0o600
