"""Schema management with Alembic: upgrade, version check, and the model/migration drift check.

Alembic is imported by the functions that run it (upgrade, drift, revision), not here:
importing it costs about half a second (it loads every dialect's DDL support, Mako and
Pygments), and every command checks the schema version before it runs, which needs only
the version table and the migration files (:func:`current_revision`, :func:`head_revision`).
"""

from __future__ import annotations

import ast
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, text

from patchgate.adapters.db.models import AuditHead, Base, StateVersion
from patchgate.domain.audit import GENESIS_HASH

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic's defaults, which env.py keeps: the table, and a revision file's identifiers.
VERSION_TABLE = "alembic_version"
_IDENTIFIER = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*(.+)$", re.MULTILINE)


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this version of patchgate: the one revision no
    other revision names as its ``down_revision`` (Alembic's head, read from the files
    without importing Alembic; a test keeps the two equal)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for name, value in _IDENTIFIER.findall(path.read_text(encoding="utf-8")):
            named = ast.literal_eval(value.strip())
            found = {named} if isinstance(named, str) else set(named or ())
            (revisions if name == "revision" else parents).update(found)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database (what Alembic's
    ``MigrationContext.get_current_revision`` reads: the one row of its version table)."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, VERSION_TABLE):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"the database is at several revisions: {sorted(rows)}")
    return str(rows[0]) if rows else None


def upgrade(engine: Engine, now: datetime) -> None:
    """Bring the schema to the newest revision and seed the single-row tables."""
    from alembic import command

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
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def revision(engine: Engine, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a new migration from the models (a developer tool)."""
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
