"""Alembic environment: runs on the connection that ``patchgate.adapters.db.migrate`` passes."""

from __future__ import annotations

from alembic import context

from patchgate.adapters.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `patchgate db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
