"""Alembic environment: runs with the portal's own engine (SQLite or PostgreSQL)."""

from alembic import context

import portal.models  # noqa: F401 - registers every table on the metadata
from portal.core.db import Base

config = context.config
engine = config.attributes["engine"]


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


with engine.connect() as connection:
    if connection.dialect.name != "sqlite":
        with connection.begin():
            _run(connection)
    else:
        # SQLite changes a table by rebuilding it (Alembic's batch mode). Foreign keys must be
        # off meanwhile, or dropping the old table would trip the rows that point at it; they
        # are checked before the migration commits and switched back on afterwards.
        sqlite = connection.connection.driver_connection
        sqlite.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                _run(connection)
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            sqlite.execute("PRAGMA foreign_keys=ON")
