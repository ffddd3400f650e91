"""Alembic environment: runs with the portal's own engine (SQLite or PostgreSQL)."""

from alembic import context

import portal.models  # noqa: F401 - registers every table on the metadata
from portal.core.db import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
