"""The schema check every command makes before it runs: the database's revision against
the newest migration shipped, read without Alembic (docs/cli.md, "Start-up")."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from patchgate.adapters.db import migrate
from tests.conftest import Env
from tests.support import run_cli


def test_the_head_read_from_the_migration_files_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    alembic_head = ScriptDirectory.from_config(migrate._config()).get_current_head()
    assert migrate.head_revision() == alembic_head


def test_a_migrated_database_is_at_the_head(env: Env) -> None:
    assert migrate.current_revision(env.app.engines.write) == migrate.head_revision()


def test_an_empty_database_is_at_no_revision_and_a_command_asks_for_init(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = create_engine(f"sqlite:///{data_dir / 'patchgate.db'}")
    assert migrate.current_revision(engine) is None
    engine.dispose()
    result = run_cli(["campaign", "list"], {"PATCHGATE_DATA_DIR": str(data_dir)})
    assert result.code == 2
    assert "the database is not at the current schema (empty); run `patchgate init`" in (
        result.stderr
    )
