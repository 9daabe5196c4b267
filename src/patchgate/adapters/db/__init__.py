"""SQLAlchemy 2 storage: typed models, repositories, the unit of work, Alembic migrations."""
