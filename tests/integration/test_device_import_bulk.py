"""``device import`` at fleet scale, on both backends: rows stream into the fleet's
tables (COPY on PostgreSQL, a staging table on SQLite) and are written in one
transaction, so a bad row among many, a controllerId the tenant has, or a process killed
halfway leaves nothing imported (docs/devices.md, "Importing a fleet")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from patchgate.adapters.db.engine import make_throwaway_engine
from patchgate.services import devices as device_service
from tests.conftest import Env


def _fleet_csv(path: Path, count: int, *, bad_line: int | None = None) -> Path:
    with path.open("w") as out:
        out.write("id,groups,hardware,version\n")
        for i in range(count):
            line = i + 2
            version = "banana" if line == bad_line else "1.0.0"
            group = "canary-optin" if i % 10 == 0 else ""
            out.write(f"dev-{i:07d},{group},hw-1,{version}\n")
    return path


def _count(env: Env) -> int:
    with env.ctx.read_uow() as uow:
        return len(uow.devices.list("DEFAULT", limit=100_000))


def test_an_import_puts_every_device_in_its_groups_and_the_groups_given(
    env: Env, tmp_path: Path
) -> None:
    fleet = _fleet_csv(tmp_path / "fleet.csv", 2_500)
    result = env.cli("device", "import", str(fleet), "--group", "plant-7", "--group", "eu")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2_500 and lines[0].startswith("dev-0000000,")
    tokens = dict(line.split(",") for line in lines)
    assert all(len(t) == 32 for t in tokens.values()) and len(set(tokens.values())) == 2_500
    first = env.cli("device", "show", "dev-0000000", "--json").json()
    assert first["groups"] == ["canary-optin", "eu", "plant-7"]
    assert first["hardware"] == "hw-1" and first["installed_version"] == "1.0.0"
    second = env.cli("device", "show", "dev-0000001", "--json").json()
    assert second["groups"] == ["eu", "plant-7"]
    with env.ctx.read_uow() as uow:
        assert len(uow.devices.list("DEFAULT", group="plant-7", limit=10_000)) == 2_500
        assert len(uow.devices.list("DEFAULT", group="canary-optin", limit=10_000)) == 250
    assert _count(env) == 2_500
    # Each printed token is the device's own (stored hashed): the device API accepts it.
    with env.ctx.read_uow() as uow:
        from patchgate.services.access import hash_token

        row = uow.devices.auth_by_token("DEFAULT", hash_token(tokens["dev-0000042"]))
    assert row is not None and row.device_id is not None


def test_text_cells_are_stored_as_written(env: Env, tmp_path: Path) -> None:
    # PostgreSQL stages the rows as COPY text, where a backslash is an escape: a cell
    # holding one (or letters beyond ASCII) must still be stored as written.
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(
        "id,groups,hardware,version\ndev-a,,board\\rev2,1.0.0\ndev-b,qa,Gerät ü \\N,2.0\n",
        encoding="utf-8",
    )
    result = env.cli("device", "import", str(fleet))
    assert result.code == 0, result.stderr
    first = env.cli("device", "show", "dev-a", "--json").json()
    assert first["hardware"] == "board\\rev2" and first["groups"] == []
    second = env.cli("device", "show", "dev-b", "--json").json()
    assert second["hardware"] == "Gerät ü \\N" and second["groups"] == ["qa"]
    assert second["installed_version"] == "2.0"


def test_a_bad_row_among_many_is_named_by_its_line_and_nothing_is_imported(
    env: Env, tmp_path: Path
) -> None:
    fleet = _fleet_csv(tmp_path / "fleet.csv", 30_000, bad_line=25_001)
    result = env.cli("device", "import", str(fleet))
    assert result.code == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: line 25001: version 'banana' is not a version (digits first, like 1.4.2 or "
        "2026.03-rc1)"
    ]
    assert result.stdout == "" and _count(env) == 0


def test_ids_the_tenant_has_or_had_are_named_by_line_and_nothing_is_imported(
    env: Env, tmp_path: Path
) -> None:
    device_service.add_device(env.ctx, "dev-0000003", actor="test")
    device_service.add_device(env.ctx, "dev-0000005", actor="test")
    assert env.cli("device", "remove", "dev-0000005", "--reason", "scrapped").code == 0
    fleet = _fleet_csv(tmp_path / "fleet.csv", 12_000)
    result = env.cli("device", "import", str(fleet))
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "error: line 5: device 'dev-0000003' already exists",
        "error: line 7: device 'dev-0000005' was removed; a removed device's ID is not reused",
    ]
    assert _count(env) == 1  # the one added before
    twice = tmp_path / "twice.csv"
    twice.write_text("a-1\na-2\na-1\n")
    repeated = env.cli("device", "import", str(twice), "--group", "bad group")
    assert repeated.code == 2 and "group 'bad group'" in repeated.stderr
    repeated = env.cli("device", "import", str(twice))
    assert repeated.code == 2 and "line 3: device ID 'a-1' appears twice" in repeated.stderr
    assert env.cli("device", "import", str(tmp_path / "missing.csv")).code == 2


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _halfway(env: Env, pid: int) -> bool:
    """Whether the import is in the middle of its transaction. On PostgreSQL: another
    session of the test's database holds a transaction that has written (it has a
    transaction id), i.e. rows are written and not committed; a reading of the client's
    CPU would depend on how fast the database takes them. On SQLite: the import has been
    busy checking and staging rows for a while."""
    if not env.database_url.startswith("postgresql"):
        return _cpu_seconds(pid) >= 4.0
    engine = make_throwaway_engine(env.database_url)
    try:
        with engine.connect() as conn:
            writing = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(writing) > 0


def test_an_import_killed_halfway_imports_nothing(env: Env, tmp_path: Path) -> None:
    fleet = _fleet_csv(tmp_path / "fleet.csv", 400_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "patchgate.entrypoints.cli", "device", "import", str(fleet)],
        env={**os.environ, **env.vars},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Killed in the middle of its transaction (rows written, nothing committed).
        deadline = time.monotonic() + 120
        while not _halfway(env, proc.pid) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert proc.poll() is None, "the import finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert _count(env) == 0
    # The database is usable at once: the same file imports in full afterwards.
    small = _fleet_csv(tmp_path / "small.csv", 100)
    assert env.cli("device", "import", str(small)).code == 0
    assert _count(env) == 100
