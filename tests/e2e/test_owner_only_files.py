"""Owner-only permissions wherever the data folder's files are created, not only at
``init``: from an empty data folder, through ``patchgate serve`` (then an upload and an
audit checkpoint over the API) and through a CLI command, the folders are 0700 and the
database, key files and audit journal 0600 (docs/security.md "The data folder")."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from tests.support import LiveServer, run_cli_process


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _check(data: Path) -> None:
    for folder in (data, data / "keys", data / "artifacts"):
        assert _mode(folder) == 0o700, folder
    secrets = [data / "patchgate.db", data / "audit-checkpoints.jsonl"]
    secrets += [p for p in (data / "keys").iterdir() if p.is_file()]
    offline = data / "offline-keys"
    if offline.exists():
        assert _mode(offline) == 0o700
        secrets += [p for p in offline.iterdir() if p.suffix == ".key"]
    for path in secrets:
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    for path in data.rglob("*"):
        assert not _mode(path) & 0o002, path  # nothing is writable by others


def test_a_cli_command_on_an_empty_data_folder_creates_owner_only_files(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    env = {"PATCHGATE_DATA_DIR": str(data), "PATCHGATE_DATABASE_URL": ""}
    upgraded = run_cli_process(["db", "upgrade"], env)  # migrations on an empty folder
    assert upgraded.code == 0, upgraded.stderr
    made = run_cli_process(["token", "create", "ops", "--role", "viewer"], env)
    assert made.code == 0, made.stderr  # audited: the checkpoint journal is written
    _check(data)


def test_serve_makes_a_loose_data_folder_owner_only_and_keeps_it_so(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    env = {"PATCHGATE_DATA_DIR": str(data), "PATCHGATE_DATABASE_URL": ""}
    made = run_cli_process(["init", "--json"], env)
    assert made.code == 0, made.stderr
    token = made.json()["admin_token"]
    # A folder made by hand, or by an older version, with modes others can read.
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    server = LiveServer(env, tmp_path / "serve.log").start(timeout=120)
    try:
        created = httpx.post(
            f"{server.url}/api/v1/tokens",
            json={"name": "ci", "role": "viewer"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
    finally:
        server.stop()
    _check(data)
