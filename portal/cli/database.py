"""`flask db ...`: apply and inspect the Alembic migrations."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to `revision` (used by make run, the CLI and the tests)."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


@click.group("db", help="Database schema migrations.", cls=AppGroup)
def db_group() -> None:
    pass


@db_group.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from portal.extensions import db

    upgrade(db.engine, revision)
    click.echo(f"Database at {revision}: {_safe_url(current_app.config['DATABASE_URL'])}")


@db_group.command("downgrade")
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from portal.extensions import db

    downgrade(db.engine, revision)
    click.echo(f"Database at {revision}")


@db_group.command("current")
def current_command() -> None:
    """Show the revision the database is at."""
    from portal.extensions import db

    command.current(alembic_config(db.engine), verbose=False)


@db_group.command("revision")
@click.option("-m", "--message", required=True)
def revision_command(message: str) -> None:
    """Generate a migration from the difference between the models and the database."""
    from portal.extensions import db

    command.revision(alembic_config(db.engine), message=message, autogenerate=True)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
