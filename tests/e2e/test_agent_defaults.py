"""The agent as documented, against a real ``patchgate serve``: with its default slots (image
files in the state folder) it provisions and polls; ``--once`` reports through its exit
code whether the pass reached the server (0), was refused (2) or found no server (3)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import Env
from tests.support import LiveServer, free_port, run_cli_process


def agent(server_url: str, folder: Path, token: str, *extra: str) -> list[str]:
    return [
        "agent",
        "--server",
        server_url,
        "--device-id",
        "dev-d",
        "--token",
        token,
        "--state-dir",
        str(folder / "state"),
        "--trusted-root",
        str(folder / "root.json"),
        "--once",
        *extra,
    ]


def provisioned(env: Env, server: LiveServer, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    root = httpx.get(f"{server.url}/tuf/metadata/1.root.json", timeout=10)
    (folder / "root.json").write_bytes(root.content)
    added = env.cli("device", "add", "dev-d", "--json")
    assert added.code == 0, added.stderr
    return str(added.json()["token"])


def test_the_agent_runs_with_its_default_slots_in_the_state_folder(
    env: Env, server: LiveServer, tmp_path: Path
) -> None:
    token = provisioned(env, server, tmp_path)
    result = run_cli_process(agent(server.url, tmp_path, token), {}, timeout=60)
    assert result.code == 0, result.stderr
    assert "internal error" not in result.stderr
    for slot in ("a", "b"):
        assert (tmp_path / "state" / f"slot-{slot}.img").is_file()
    status = run_cli_process(
        ["agent", "status", "--state-dir", str(tmp_path / "state"), "--json"], {}
    )
    assert status.code == 0 and status.json()["installed_version"] == "0"


def test_once_exits_2_when_the_server_refuses_the_token_and_3_when_it_is_down(
    env: Env, server: LiveServer, tmp_path: Path
) -> None:
    provisioned(env, server, tmp_path)
    refused = run_cli_process(agent(server.url, tmp_path, "wrong-token"), {}, timeout=60)
    assert refused.code == 2, refused.stderr
    down = f"http://127.0.0.1:{free_port()}"
    unreachable = run_cli_process(agent(down, tmp_path, "wrong-token"), {}, timeout=60)
    assert unreachable.code == 3, unreachable.stderr


def test_a_missing_explicit_slot_is_a_readable_refusal(
    env: Env, server: LiveServer, tmp_path: Path
) -> None:
    token = provisioned(env, server, tmp_path)
    missing = str(tmp_path / "nowhere" / "a.img")
    args = agent(server.url, tmp_path, token, "--slot-a", missing, "--slot-b", missing)
    result = run_cli_process(args, {}, timeout=60)
    assert result.code == 2, result.stderr
    assert f"--slot-a {missing} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
