"""`flask demo load`: one demonstration account per role, loaded once."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.accounts.services import create_user
from portal.comprehension.services import answer
from portal.consent.documents import submit_version
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
# The rest of the ethics panel, so that the UK quorum (7 non-conflicted members, lay and
# expert) can be met; they share the panel member's password.
DEMO_PANEL = [
    ("lay", "panel2@example.org", "Mair Williams"),
    ("expert", "panel3@example.org", "Dr Tomasz Nowak"),
    ("expert", "panel4@example.org", "Dr Aisha Rahman"),
    ("lay", "panel5@example.org", "Owen Davies"),
    ("expert", "panel6@example.org", "Prof Linda Okafor"),
    ("expert", "panel7@example.org", "Dr Sean Murphy"),
]
DEMO_PROTOCOL_REFERENCE = "IRAS 330001"
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
        created[role] = _demo_user(session, role, email, name, password)
    # The demo patient was brought in by the demo therapist, as a real one would be.
    created[Role.PATIENT].invited_by_id = created[Role.THERAPIST].id
    for role, user in created.items():
        if role != Role.PATIENT:
            _enrol_demo_second_factor(session, user)
    session.flush()
    _advance_demo_documents(session, created[Role.ADMINISTRATOR])
    panel = [created[Role.PANEL_CHAIR], created[Role.PANEL_MEMBER], *_demo_panel(session)]
    _demo_review(session, created[Role.INVESTIGATOR], panel)
    _offer_demo_consents(session, created[Role.THERAPIST], created[Role.PATIENT])
    for account, countersigned in ((DEMO_CONSENTED_PATIENT, True), (DEMO_SIGNED_PATIENT, False)):
        email, name, password = account
        patient = _demo_user(session, Role.PATIENT, email, name, password)
        patient.invited_by_id = created[Role.THERAPIST].id
        session.flush()
        _sign_demo_consents(session, created[Role.THERAPIST], patient, password, countersigned)
    return len(created) + 2 + len(DEMO_PANEL)


def _demo_user(session, role: Role, email: str, name: str, password: str) -> User:
    return create_user(
        session,
        email=email,
        full_name=name,
        role=role,
        password=password,
        actor=audit.SYSTEM,
        reason="demo data",
    )


def _demo_panel(session) -> list[User]:
    password = next(p for r, _e, _n, p in DEMO_ACCOUNTS if r == Role.PANEL_MEMBER)
    members = []
    for membership, email, name in DEMO_PANEL:
        member = _demo_user(session, Role.PANEL_MEMBER, email, name, password)
        member.panel_membership = membership
        _enrol_demo_second_factor(session, member)
        members.append(member)
    return members


def _demo_review(session, investigator: User, panel: list[User]) -> None:
    """The trial's protocol and first consent versions, approved through the real review
    steps (so they are in use); a substantial modification carrying the later versions waits
    for the panel, as on a site mid-study."""
    from weasyprint import HTML

    from portal.review import services as review

    chair, member = panel[0], panel[1]
    first_versions = [
        d.versions[0].id
        for d in session.scalars(select(ConsentDocument))
        if d.versions and d.versions[0].status == VersionStatus.SUBMITTED
    ]
    chair.panel_membership, member.panel_membership = "expert", "lay"
    protocol_pdf = HTML(
        string="<h1>MDMA-assisted therapy for PTSD: UK trial protocol</h1>"
        "<p>Demonstration protocol document.</p>"
    ).write_pdf()
    initial = review.submit_protocol(
        session,
        investigator,
        review.Application(
            kind="initial",
            summary="A randomised trial of MDMA-assisted therapy for adults with PTSD.",
            upload=review.Upload("protocol-v3.pdf", protocol_pdf),
            version_ids=first_versions,
            reference=DEMO_PROTOCOL_REFERENCE,
            title="MDMA-assisted therapy for PTSD: UK trial",
            sites="St Elsewhere Hospital, London\nCardiff Trauma Clinic",
            chief_investigator=investigator.full_name,
            team_emails=investigator.email,
        ),
    )
    for person in panel:
        review.declare_interests(session, person, initial, False, "")
        review.cast_vote(session, person, initial, "for")
    review.record_opinion(
        session,
        chair,
        initial,
        review.OpinionDecision(
            category="favourable",
            reasons="The design, consent process and safeguards are sound (demo data).",
            conditions=[],
            material={},
        ),
    )
    pending = [v.id for v in review.versions_to_submit(session, initial.protocol)]
    if pending:
        review.submit_modification(
            session,
            investigator,
            initial.protocol,
            review.Application(
                kind="substantial",
                summary="Adds a new safety finding (overheating and trouble sleeping) to the "
                "information sheet, and keeps recordings for 10 years instead of 5.",
                upload=None,
                version_ids=pending,
            ),
        )


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
            leave_section(session, consent, visit, position, "next")
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
    """Send every imported draft to the panel (the demo review then approves the first)."""
    for document in session.scalars(select(ConsentDocument)):
        for version in [v for v in document.versions if v.status == VersionStatus.DRAFT]:
            try:
                submit_version(session, version, admin)
            except DocumentError as exc:  # e.g. a translation still missing: leave it a draft
                click.echo(f"Left {version.label} as a draft: {exc}", err=True)
                break


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


from portal.cli.generate import generate_command  # noqa: E402 - joins the group defined above

demo_group.add_command(generate_command)
