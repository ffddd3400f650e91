"""`flask check`: validate the configuration before starting servers."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("check")
@with_appcontext
def check_command() -> None:
    """Refuse (exit 1) an unsafe production configuration, naming each problem."""
    from portal.operations.checks import problems
    from portal.operations.health import database_revision, head_revision

    found = problems(current_app)
    revision, head = database_revision(), head_revision()
    if revision != head:
        found.append(f"the database is at migration {revision}, not {head}: run `flask db upgrade`")
    for problem in found:
        click.echo(f"problem: {problem}", err=True)
    if found:
        raise SystemExit(1)
    click.echo(f"Configuration OK ({current_app.config['ENVIRONMENT']}).")
