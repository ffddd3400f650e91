"""`flask export ...`: data for other systems (FHIR R4), each export recorded in the audit trail."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
from flask.cli import AppGroup


@click.group("export", help="Exports for other systems.", cls=AppGroup)
def export_group() -> None:
    pass


@export_group.command("fhir")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--validate/--no-validate",
    default=True,
    show_default=True,
    help="Check each resource against the FHIR R4 model before writing it.",
)
def fhir_command(file: str, validate: bool) -> None:
    """Write every consent as a FHIR R4 Consent resource, one per line (NDJSON), to FILE.

    FILE '-' writes to standard output (the summary then goes to standard error). A file is
    written in full or not at all: it appears only once every line is written.
    """
    from portal.core import audit
    from portal.extensions import db
    from portal.oversight import fhir

    check = _consent_validator() if validate else None
    to_stdout = file == "-"
    digest = hashlib.sha256()
    count = 0
    with click.open_file(file, "w", encoding="utf-8", atomic=not to_stdout) as out:
        for resource in fhir.iter_consent_resources(db.engine):
            if check is not None:
                check(resource)
            line = fhir.ndjson_line(resource)
            out.write(line)
            digest.update(line.encode("utf-8"))
            count += 1
    destination = "stdout" if to_stdout else str(Path(file).resolve())
    audit.record(
        db.session,
        "fhir.exported",
        actor=audit.SYSTEM,
        after={
            "resource_type": "Consent",
            "format": "ndjson",
            "count": count,
            "sha256": digest.hexdigest(),
            "destination": destination,
        },
    )
    db.session.commit()
    click.echo(
        f"Wrote {count} Consent resources to {destination} (SHA-256 {digest.hexdigest()}).",
        err=to_stdout,
    )


def _consent_validator():
    """A check that stops the export (nothing written) at the first invalid resource."""
    from fhir.resources.R4B.consent import Consent
    from pydantic import ValidationError

    def check(resource: dict) -> None:
        try:
            Consent.model_validate(resource)
        except ValidationError as exc:
            raise click.ClickException(
                f"consent {resource.get('id')} is not a valid FHIR R4 Consent; nothing was "
                f"exported: {exc}"
            ) from exc

    return check
