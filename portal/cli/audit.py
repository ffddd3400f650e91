"""`flask audit verify`: recompute the whole hash chain."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from portal.core.audit import verify_chain


@click.group("audit", help="The tamper-evident audit trail.", cls=AppGroup)
def audit_group() -> None:
    pass


@audit_group.command("verify")
def verify_command() -> None:
    """Exit 0 when the chain is intact; otherwise name the first bad event and exit 1."""
    from portal.extensions import db

    report = verify_chain(db.session)
    if report.intact:
        click.echo(f"Audit chain intact: {report.events_verified} events verified.")
        return
    click.echo(
        f"Audit chain BROKEN at event {report.first_bad_seq}: {report.problem} "
        f"({report.events_verified} events verified before it).",
        err=True,
    )
    sys.exit(1)
