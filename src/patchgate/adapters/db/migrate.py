"""Schema management with Alembic: upgrade, version check, and the model/migration drift check."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, insert, select, text

from patchgate.adapters.db.models import AuditHead, Base, StateVersion
from patchgate.domain.audit import GENESIS_HASH

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this version of patchgate."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, now: datetime) -> None:
    """Bring the schema to the newest revision and seed the single-row tables."""
    cfg = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Hosts upgrading at once take turns; the later ones find the schema current
            # (docs/deploy.md, "Upgrading").
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('patchgate-migrate'))"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.begin() as conn:
        if conn.execute(select(StateVersion.id)).first() is None:
            conn.execute(insert(StateVersion).values(id=1, version=0, changed_at=now))
        if conn.execute(select(AuditHead.id)).first() is None:
            conn.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS_HASH))


def drift(engine: Engine) -> list[Any]:
    """Differences between the models and a database migrated to head (empty when they agree)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def revision(engine: Engine, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a new migration from the models (a developer tool)."""
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
