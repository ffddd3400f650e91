"""`flask records ...`: list, export and verify sealed PDF records."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select


@click.group("records", help="Sealed PDF records.", cls=AppGroup)
def records_group() -> None:
    pass


@records_group.command("list")
def list_command() -> None:
    """Every record: id, patient reference, kind, date."""
    from portal.extensions import db
    from portal.records.models import Record

    for record in db.session.scalars(select(Record).order_by(Record.id)):
        click.echo(
            f"{record.uid}  patient {record.consent.patient_id}  {record.kind}  "
            f"{record.created_at.isoformat()}"
        )


@records_group.command("export")
@click.argument("record_id")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export_command(record_id: str, path: Path) -> None:
    """Write record RECORD_ID's PDF to PATH."""
    from portal.core import audit
    from portal.extensions import db
    from portal.records.models import Record

    record = db.session.scalar(select(Record).where(Record.uid == record_id.upper()))
    if record is None:
        raise click.ClickException(f"there is no record {record_id}")
    path.write_bytes(record.pdf)
    audit.record(
        db.session,
        "record.exported",
        actor=audit.SYSTEM,
        object_type="record",
        object_id=record.uid,
        after={"sha256": record.sha256},
    )
    db.session.commit()
    click.echo(f"Wrote {path} ({len(record.pdf)} bytes, SHA-256 {record.sha256}).")


@records_group.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_command(path: Path) -> None:
    """Exit 0 when PATH is a genuine, unaltered record of this portal; non-zero otherwise."""
    from portal.extensions import db
    from portal.records.services import verify_file

    verdict = verify_file(db.session, path.read_bytes())
    if verdict.outcome == "genuine":
        found = verdict.record or verdict.paper
        what = "record" if verdict.record else verdict.paper.kind.replace("_", " ")
        click.echo(f"Genuine: {what} {found.uid}, sealed {found.created_at.isoformat()}.")
        return
    label = "Not a PDF" if verdict.outcome == "not_pdf" else "Altered or not sealed by this portal"
    click.echo(f"{label}: {verdict.reason}.", err=True)
    sys.exit(1 if verdict.outcome == "altered" else 2)
