"""`flask demo load`: one demonstration account per role, loaded once."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.accounts.services import create_user
from portal.comprehension.services import answer
from portal.consent.documents import activate_version, approve_version, submit_version
from portal.consent.journey import (
    countersign,
    leave_section,
    offer,
    open_section,
    save_choices,
    sign,
)
from portal.consent.journey_models import SignatureMethod
from portal.consent.models import ConsentDocument, DocumentError, VersionStatus
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import Role

# These passwords and the staff accounts' TOTP key are printed in the README: demo data is for
# local trials only.
DEMO_TOTP_SECRET = "DEMODEMODEMODEMODEMODEMODEMODEMO"  # noqa: S105 - published demo key
DEMO_ACCOUNTS = [
    (Role.ADMINISTRATOR, "admin@example.org", "Alex Morgan", "demo-admin-pass"),
    (Role.THERAPIST, "therapist@example.org", "Dr Rhian Evans", "demo-therapist-pass"),
    (Role.PATIENT, "patient@example.org", "Sam Taylor", "demo-patient-pass"),
    (Role.INVESTIGATOR, "investigator@example.org", "Prof Priya Shah", "demo-investigator-pass"),
    (Role.PANEL_MEMBER, "panel@example.org", "Gareth Jones", "demo-panel-pass"),
    (Role.PANEL_CHAIR, "chair@example.org", "Dr Helen Price", "demo-chair-pass"),
]
# A second patient whose consent is complete, so that a sealed record exists from the start.
DEMO_CONSENTED_PATIENT = ("consented@example.org", "Alex Rivera", "demo-consented-pass")
# A third patient who has signed, so that the therapist has a consent to countersign.
DEMO_SIGNED_PATIENT = ("signed@example.org", "Jordan Lee", "demo-signed-pass")


def load_demo_accounts(session) -> int:
    """Create the demo accounts unless any account exists; return how many were created.

    Imported document drafts are moved along too: the first version of each document is put in
    use and later ones are submitted for review (run `flask docs import` first).
    """
    if session.scalar(select(func.count(User.id))):
        return 0
    created: dict[Role, User] = {}
    for role, email, name, password in DEMO_ACCOUNTS:
        created[role] = create_user(
            session,
            email=email,
            full_name=name,
            role=role,
            password=password,
            actor=audit.SYSTEM,
            reason="demo data",
        )
    # The demo patient was brought in by the demo therapist, as a real one would be.
    created[Role.PATIENT].invited_by_id = created[Role.THERAPIST].id
    for role, user in created.items():
        if role != Role.PATIENT:
            _enrol_demo_second_factor(session, user)
    session.flush()
    _advance_demo_documents(session, created[Role.ADMINISTRATOR])
    _offer_demo_consents(session, created[Role.THERAPIST], created[Role.PATIENT])
    for account, countersigned in ((DEMO_CONSENTED_PATIENT, True), (DEMO_SIGNED_PATIENT, False)):
        email, name, password = account
        patient = create_user(
            session,
            email=email,
            full_name=name,
            role=Role.PATIENT,
            password=password,
            actor=audit.SYSTEM,
            reason="demo data",
        )
        patient.invited_by_id = created[Role.THERAPIST].id
        session.flush()
        _sign_demo_consents(session, created[Role.THERAPIST], patient, password, countersigned)
    return len(created) + 2


def _offer_demo_consents(session, therapist: User, patient: User) -> None:
    """The demo patient has started reading two days ago, so the cooling-off period is over."""
    for document in session.scalars(select(ConsentDocument)):
        if document.active_version is None:
            continue
        consent = offer(session, therapist, patient, document)
        open_section(session, consent, 0)
        consent.opened_at = utcnow() - dt.timedelta(days=2)


def _sign_demo_consents(
    session, therapist: User, patient: User, password: str, countersigned: bool
) -> None:
    """Walk the journey through the real services: read, answer, choose, sign (and seal)."""
    for document in session.scalars(select(ConsentDocument)):
        if document.active_version is None:
            continue
        consent = offer(session, therapist, patient, document)
        for position in range(len(consent.sections)):
            visit = open_section(session, consent, position)
            leave_section(session, consent, visit.id, position, "next")
        for question in consent.questions:
            answer(session, consent, question.key, question.answer)
        save_choices(
            session,
            consent,
            {item.key: item.key == "future-contact" for item in consent.text.optional_consents},
        )
        consent.opened_at = utcnow() - dt.timedelta(days=3)
        sign(
            session,
            consent,
            patient,
            typed_name=patient.full_name,
            password=password,
            attested=True,
            method=SignatureMethod.TYPED,
            image=None,
        )
        if not countersigned:
            continue
        therapist_password = next(p for r, _e, _n, p in DEMO_ACCOUNTS if r == Role.THERAPIST)
        countersign(
            session,
            consent,
            therapist,
            password=therapist_password,
            discussed=True,
            identity_checked=True,
            witnessed_typed=True,
        )


def _enrol_demo_second_factor(session, user: User) -> None:
    user.totp_secret = DEMO_TOTP_SECRET
    user.totp_enabled_at = utcnow()
    audit.record(
        session,
        "account.mfa_enrolled",
        actor=audit.SYSTEM,
        object_type="user",
        object_id=user.id,
        reason="demo data: the shared demo key from the README",
    )


def _advance_demo_documents(session, admin: User) -> None:
    """Put the trial's v1.0 in use and v1.1 before the panel, as on a site mid-study."""
    for document in session.scalars(select(ConsentDocument)):
        drafts = [v for v in document.versions if v.status == VersionStatus.DRAFT]
        for position, version in enumerate(drafts):
            try:
                submit_version(session, version, admin)
            except DocumentError as exc:  # e.g. a translation still missing: leave it a draft
                click.echo(f"Left {version.label} as a draft: {exc}", err=True)
                break
            if position == 0:
                approve_version(
                    session,
                    version,
                    admin,
                    material_change=None,
                    reference="demo data: approved for the demonstration",
                )
                activate_version(session, version, admin)


@click.group("demo", help="Demonstration data.", cls=AppGroup)
def demo_group() -> None:
    pass


@demo_group.command("load")
def load_command() -> None:
    """Load the demo accounts into an empty database (does nothing otherwise)."""
    from portal.extensions import db

    count = load_demo_accounts(db.session)
    db.session.commit()
    if count:
        click.echo(f"Loaded {count} demo accounts (passwords in the README).")
    else:
        click.echo("Accounts already exist: demo data not loaded.")


@demo_group.command("code")
def code_command() -> None:
    """Print the current two-step verification code of the demo staff accounts."""
    import pyotp

    click.echo(pyotp.TOTP(DEMO_TOTP_SECRET).now())
