"""`flask backup FILE` and `flask restore FILE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

_FILE = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))


@click.command("backup")
@_FILE
@with_appcontext
def backup_command(path: Path) -> None:
    """Write a consistent copy of the database to PATH (SQLite online backup, or pg_dump)."""
    from portal.operations.backup import BackupError, backup

    try:
        backup(current_app.config["DATABASE_URL"], path)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Backed up to {path}.")


@click.command("restore")
@_FILE
@with_appcontext
def restore_command(path: Path) -> None:
    """Restore PATH into the (empty) configured database, then verify the chain and records."""
    from portal.extensions import db
    from portal.operations.backup import BackupError, check_restored, restore

    db.engine.dispose()  # no pooled connection may hold the old, empty file open
    try:
        restore(current_app.config["DATABASE_URL"], path)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    check = check_restored(db.session)
    for problem in check.problems:
        click.echo(f"problem: {problem}", err=True)
    if check.problems:
        raise SystemExit(1)
    click.echo(f"Restored: {check.events} audit events verified, {check.records} records verified.")
