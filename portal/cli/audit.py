"""`flask audit verify`: recompute the whole hash chain."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from portal.core.audit import verify_chain


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
    """Exit 0 when the chain and its signed checkpoints are intact; else say why and exit 1."""
    from portal.core import checkpoints
    from portal.extensions import db

    report = verify_chain(db.session)
    if not report.intact:
        click.echo(
            f"Audit chain BROKEN at event {report.first_bad_seq}: {report.problem} "
            f"({report.events_verified} events verified before it).",
            err=True,
        )
        sys.exit(1)
    signed = checkpoints.verify(db.session, _witness(witness))
    if not signed.intact:
        click.echo(f"Audit chain BROKEN: {signed.problem}.", err=True)
        sys.exit(1)
    click.echo(
        f"Audit chain intact: {report.events_verified} events verified, "
        f"{signed.checked} signed checkpoints match."
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
