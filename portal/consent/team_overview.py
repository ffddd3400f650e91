"""What a therapist's consent dashboard shows, read in one place: one page of their consents,
and apart from it whatever needs them (countersignatures, withdrawals, teach-back, questions).

Therapists keep this page open and reload it all day, so its statements are built once and kept
(functools.cache): a statement object kept between requests also keeps its SQLAlchemy cache key,
which is otherwise worked out afresh for every new statement, and building and keying the page's
statements cost more than running them. What the page decides from the rows (which documents
can still be offered to whom, whose question a teach-back flag is) is decided here, not in the
template."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, exists, func, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from portal.accounts.models import PURPOSE_NEW_ACCOUNT, Invitation, User
from portal.comprehension.models import TeachBack
from portal.consent.journey_models import Consent, ConsentStatus, PatientQuestion, Withdrawal
from portal.consent.models import DocumentText, DocumentVersion, VersionStatus
from portal.core.db import utcnow
from portal.core.paging import page_count
from portal.core.permissions import Role
from portal.records.models import Record
from portal.records.services import records_by_consent

CONSENTS_PER_PAGE = 50


@dataclass(frozen=True)
class TeamOverview:
    # One page of the therapist's consents, newest first.
    consents: list[Consent]
    page: int
    pages: int
    total: int
    # What needs the therapist, whichever page its consent is on:
    # consents signed by the patient and awaiting the countersignature, oldest first;
    to_countersign: list[Consent]
    # withdrawals not yet marked as dealt with, oldest first;
    withdrawals: list[Withdrawal]
    # open teach-back flags, with the patient's name.
    flags: list[tuple[TeachBack, str]]
    invited: list[Invitation]
    # Patients' questions about the text, newest first: (question, patient's name, language).
    questions: list[tuple[PatientQuestion, str, str]]
    records: dict[int, list[Record]]
    has_patients: bool
    offers: list[Offer]


@dataclass(frozen=True)
class Offer:
    """A document's version in use that a patient has not been offered, or has withdrawn from
    (the rule journey.offer applies)."""

    patient_id: int
    patient_name: str
    version: DocumentVersion


def team_overview(session: Session, therapist_id: int, page: int = 1) -> TeamOverview:
    """Everything on the dashboard of the therapist who invited these patients. A therapist
    may look after thousands of patients, so the consents come a page at a time and whatever
    needs them is listed apart; raises NoSuchPage for a page that does not exist."""
    ids = {"therapist_id": therapist_id}
    total = session.scalar(_consent_count_query(), ids)
    pages = page_count(page, total, CONSENTS_PER_PAGE)
    consents = session.scalars(
        _consents_query(),
        {**ids, "limit": CONSENTS_PER_PAGE, "offset": (page - 1) * CONSENTS_PER_PAGE},
    ).all()
    by_id = {consent.id: consent for consent in consents}
    _fill_withdrawals(session, by_id)
    offers = [Offer(*row) for row in session.execute(_offers_query(), ids)]
    return TeamOverview(
        consents=consents,
        page=page,
        pages=pages,
        total=total,
        to_countersign=session.scalars(_to_countersign_query(), ids).all(),
        withdrawals=session.scalars(_to_act_on_query(), ids).all(),
        flags=session.execute(_flags_query(), ids).all(),
        invited=session.scalars(_invitations_query(), {**ids, "now": utcnow()}).all(),
        questions=session.execute(_questions_query(), ids).all(),
        records=records_by_consent(session, list(by_id)),
        # anyone who can be offered a document is a patient; asked only when no one can
        has_patients=bool(offers) or session.scalar(_has_patients_query(), ids),
        offers=offers,
    )


def _fill_withdrawals(session: Session, by_id: dict[int, Consent]) -> None:
    """The page's consents' withdrawals, loaded by one plain query for all of them (as
    selectinload would, at about a third of its cost) and set as loaded collections."""
    grouped: dict[int, list[Withdrawal]] = {consent_id: [] for consent_id in by_id}
    for withdrawal in session.scalars(_withdrawals_query(), {"consent_ids": list(by_id)}):
        grouped[withdrawal.consent_id].append(withdrawal)
    for consent_id, withdrawals in grouped.items():
        set_committed_value(by_id[consent_id], "withdrawals", withdrawals)


def _their_patients() -> list:
    return [User.invited_by_id == bindparam("therapist_id"), User.role == Role.PATIENT]


@functools.cache
def _has_patients_query() -> Select:
    return select(exists().where(*_their_patients()))


@functools.cache
def _offers_query() -> Select:
    """Each of the therapist's patients with each version in use that they have no consent to
    (but a withdrawn one): the pairs journey.offer would accept, by name."""
    open_consent = exists().where(
        Consent.patient_id == User.id,
        Consent.version_id == DocumentVersion.id,
        Consent.status != ConsentStatus.WITHDRAWN,
    )
    return (
        select(User.id, User.full_name, DocumentVersion)
        .join(DocumentVersion, DocumentVersion.status == VersionStatus.ACTIVE)
        .where(*_their_patients(), ~open_consent)
        .order_by(User.full_name, User.id, DocumentVersion.document_id)
        .options(joinedload(DocumentVersion.document))
    )


@functools.cache
def _consent_count_query() -> Select:
    return select(func.count(Consent.id)).where(Consent.therapist_id == bindparam("therapist_id"))


# What each row of the consents table shows besides the consent.
_WITH_PATIENT_AND_DOCUMENT = (
    joinedload(Consent.patient),
    joinedload(Consent.version).joinedload(DocumentVersion.document),
    joinedload(Consent.text).load_only(DocumentText.language),  # not the whole text
)


@functools.cache
def _consents_query() -> Select:
    return (
        select(Consent)
        .where(Consent.therapist_id == bindparam("therapist_id"))
        .order_by(Consent.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .options(*_WITH_PATIENT_AND_DOCUMENT)
    )


@functools.cache
def _to_countersign_query() -> Select:
    return (
        select(Consent)
        .where(
            Consent.therapist_id == bindparam("therapist_id"),
            Consent.status == ConsentStatus.SIGNED,
        )
        .order_by(Consent.id)
        .options(
            joinedload(Consent.patient),
            joinedload(Consent.version).joinedload(DocumentVersion.document),
        )
    )


@functools.cache
def _withdrawals_query() -> Select:
    """The withdrawals of the consents already loaded (by their ids, not the therapist's: on
    PostgreSQL each statement sees the latest commits, and a consent created since would have
    no place), in the order Consent.withdrawals keeps them."""
    return (
        select(Withdrawal)
        .where(Withdrawal.consent_id.in_(bindparam("consent_ids", expanding=True)))
        .order_by(Withdrawal.id)
    )


@functools.cache
def _to_act_on_query() -> Select:
    return (
        select(Withdrawal)
        .join(Consent, Withdrawal.consent_id == Consent.id)
        .where(
            Consent.therapist_id == bindparam("therapist_id"),
            Withdrawal.acknowledged_at.is_(None),
        )
        .order_by(Withdrawal.id)
        .options(joinedload(Withdrawal.consent).joinedload(Consent.patient))
    )


@functools.cache
def _flags_query() -> Select:
    """Teach-back flags still open on consents that have not been withdrawn."""
    return (
        select(TeachBack, User.full_name)
        .join(Consent, TeachBack.consent_id == Consent.id)
        .join(User, Consent.patient_id == User.id)
        .where(
            Consent.therapist_id == bindparam("therapist_id"),
            Consent.status != ConsentStatus.WITHDRAWN,
            TeachBack.resolved_at.is_(None),
        )
        .order_by(TeachBack.id)
    )


@functools.cache
def _questions_query() -> Select:
    return (
        select(PatientQuestion, User.full_name, DocumentText.language)
        .join(Consent, PatientQuestion.consent_id == Consent.id)
        .join(User, Consent.patient_id == User.id)
        .join(DocumentText, Consent.text_id == DocumentText.id)
        .where(Consent.therapist_id == bindparam("therapist_id"))
        .order_by(PatientQuestion.asked_at.desc(), PatientQuestion.id.desc())
    )


@functools.cache
def _invitations_query() -> Select:
    """Invitations to new patients still waiting: not accepted, withdrawn or expired (those
    not taken up are on the patient list)."""
    return (
        select(Invitation)
        .where(
            Invitation.invited_by_id == bindparam("therapist_id"),
            Invitation.role == Role.PATIENT,
            Invitation.purpose == PURPOSE_NEW_ACCOUNT,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > bindparam("now"),
        )
        .order_by(Invitation.expires_at, Invitation.id)
    )  # the next to expire first
