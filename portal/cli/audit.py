"""`flask audit verify`: recompute the whole hash chain (and record that it was done)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup


@click.group("audit", help="The tamper-evident audit trail.", cls=AppGroup)
def audit_group() -> None:
    pass


_WITNESS = click.option(
    "--witness",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A file of checkpoints kept outside the database (default: AUDIT_WITNESS_FILE).",
)


def _witness(path: Path | None) -> Path | None:
    configured = current_app.config.get("AUDIT_WITNESS_FILE")
    return path or (Path(configured) if configured else None)


@audit_group.command("verify")
@_WITNESS
def verify_command(witness: Path | None) -> None:
    """Exit 0 when the chain and its signed checkpoints are intact; else say why and exit 1.

    The run is recorded (and audited), so the panel's pages show when the trail was last
    verified and what was found.
    """
    from portal.core import audit
    from portal.extensions import db
    from portal.oversight import trail

    run = trail.verify_now(db.session, audit.SYSTEM, _witness(witness))
    db.session.commit()
    if run.first_bad_seq is not None:
        click.echo(
            f"Audit chain BROKEN at event {run.first_bad_seq}: {run.problem} "
            f"({run.events_verified} events verified before it).",
            err=True,
        )
        sys.exit(1)
    if not run.intact:
        click.echo(f"Audit chain BROKEN: {run.problem}.", err=True)
        sys.exit(1)
    click.echo(
        f"Audit chain intact: {run.events_verified} events verified, "
        f"{run.checkpoints_checked} signed checkpoints match."
    )


@audit_group.command("checkpoint")
@_WITNESS
def checkpoint_command(witness: Path | None) -> None:
    """Sign the chain's head now (run it hourly); append it to the witness file if given."""
    from portal.core import checkpoints
    from portal.extensions import db

    checkpoint = checkpoints.create(db.session)
    db.session.commit()
    line = checkpoints.as_line(checkpoint)
    target = _witness(witness)
    if target is not None:
        with target.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    click.echo(line)
