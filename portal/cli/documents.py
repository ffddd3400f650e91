"""`flask docs ...`: check, import, inspect and move consent document versions along."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from portal.consent.document_format import read_all
from portal.consent.readability import PLAIN_LANGUAGE_TARGET, score


def documents_root() -> Path:
    return Path(current_app.config["CONSENT_DOCS_PATH"])


@click.group("docs", help="Consent documents.", cls=AppGroup)
def docs_group() -> None:
    pass


@docs_group.command("check")
def check_command() -> None:
    """Validate every file under consent_docs/ without importing anything."""
    found = read_all(documents_root())
    for problem in found.problems:
        click.echo(str(problem), err=True)
    if found.problems:
        click.echo(f"{len(found.problems)} problem(s) found.", err=True)
        sys.exit(1)
    click.echo(f"{len(found.files)} document file(s) are valid.")


@docs_group.command("stats")
def stats_command() -> None:
    """Print each section's Flesch reading ease (target: 60 or more) and grade level."""
    found = read_all(documents_root())
    for problem in found.problems:
        click.echo(str(problem), err=True)
    for parsed in found.files:
        click.echo(f"{parsed.document} v{parsed.version} {parsed.language}: {parsed.title}")
        for section in parsed.sections:
            result = score(section.body, parsed.language)
            if result is None:
                click.echo(f"  {section.id:<28} not scored (Flesch applies to English text)")
                continue
            flag = "" if result.meets_target else f"  below {PLAIN_LANGUAGE_TARGET:g}"
            click.echo(
                f"  {section.id:<28} reading ease {result.reading_ease:5.1f}  "
                f"grade {result.grade:4.1f}  {result.words:4d} words{flag}"
            )
    if found.problems:
        sys.exit(1)


def _administrator(email: str):
    from portal.accounts.models import User
    from portal.extensions import db

    user = User.by_email(db.session, email)
    if user is None or user.role != "administrator" or not user.active:
        raise click.ClickException(f"{email} is not an active administrator")
    return user


def _run_lifecycle(action, slug: str, version: str, **kwargs) -> None:
    """Find the version, apply one lifecycle step, commit, or explain why not."""
    from portal.consent.documents import find_version
    from portal.consent.models import DocumentError
    from portal.extensions import db

    try:
        found = find_version(db.session, slug, version)
        action(db.session, found, **kwargs)
    except DocumentError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"{found.label} is now {found.status}.")


@docs_group.command("import")
def import_command() -> None:
    """Validate every file and import new versions; nothing is imported if anything is wrong."""
    from portal.consent.documents import ImportRefused, import_documents
    from portal.core import audit
    from portal.extensions import db

    try:
        report = import_documents(db.session, read_all(documents_root()), audit.SYSTEM)
    except ImportRefused as exc:
        db.session.rollback()
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"Nothing imported: {len(exc.problems)} problem(s).", err=True)
        sys.exit(1)
    db.session.commit()
    for line in report.imported:
        click.echo(f"Imported {line}")
    click.echo(f"{len(report.imported)} imported, {report.unchanged} already up to date.")


@docs_group.command("list")
def list_command() -> None:
    """Show every document version, its status and its languages' content hashes."""
    from sqlalchemy import select

    from portal.consent.models import ConsentDocument
    from portal.extensions import db

    for document in db.session.scalars(select(ConsentDocument).order_by(ConsentDocument.slug)):
        click.echo(document.slug)
        for version in document.versions:
            flag = {True: " (material change)", False: " (no material change)"}.get(
                version.material_change, ""
            )
            click.echo(f"  v{version.version}  {version.status}{flag}")
            for text in version.texts:
                click.echo(f"    {text.language:<6} {text.content_hash}  {text.title}")


_BY = click.option("--by", "by_email", required=True, help="The administrator's email address.")


@docs_group.command("submit")
@click.argument("slug")
@click.argument("version")
@_BY
def submit_command(slug: str, version: str, by_email: str) -> None:
    """Send a draft version for ethics review."""
    from portal.consent.documents import submit_version

    _run_lifecycle(submit_version, slug, version, actor=_administrator(by_email))


@docs_group.command("approve")
@click.argument("slug")
@click.argument("version")
@_BY
@click.option(
    "--material-change/--no-material-change",
    default=None,
    help="Whether patients must re-consent (required after the first version).",
)
@click.option(
    "--reference",
    required=True,
    help="The ethics opinion this approval records, e.g. 'REC 26/WA/0001 letter'.",
)
def approve_command(
    slug: str, version: str, by_email: str, material_change: bool | None, reference: str
) -> None:
    """Record the ethics panel's approval of a submitted version (audited)."""
    from portal.consent.documents import approve_version

    _run_lifecycle(
        approve_version,
        slug,
        version,
        actor=_administrator(by_email),
        material_change=material_change,
        reference=reference,
    )


@docs_group.command("activate")
@click.argument("slug")
@click.argument("version")
@_BY
def activate_command(slug: str, version: str, by_email: str) -> None:
    """Offer an approved version to patients (the previous one is superseded)."""
    from portal.consent.documents import activate_version

    _run_lifecycle(activate_version, slug, version, actor=_administrator(by_email))


@docs_group.command("withdraw")
@click.argument("slug")
@click.argument("version")
@_BY
@click.option("--reason", required=True)
def withdraw_command(slug: str, version: str, by_email: str, reason: str) -> None:
    """Withdraw a version (it is never offered again)."""
    from portal.consent.documents import withdraw_version

    _run_lifecycle(withdraw_version, slug, version, actor=_administrator(by_email), reason=reason)
