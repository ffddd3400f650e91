"""What a therapist's consent dashboard shows, read in one place.

Therapists keep this page open and reload it all day, so its statements are built once and kept
(functools.cache): a statement object kept between requests also keeps its SQLAlchemy cache key,
which is otherwise worked out afresh for every new statement, and building and keying the page's
statements cost more than running them. What the page decides from the rows (which documents
can still be offered to whom, whose question a teach-back flag is) is decided here, not in the
template."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from portal.accounts.models import PURPOSE_NEW_ACCOUNT, Invitation, User
from portal.comprehension.models import TeachBack
from portal.consent.journey_models import Consent, ConsentStatus, PatientQuestion, Withdrawal
from portal.consent.models import DocumentText, DocumentVersion, VersionStatus
from portal.core.permissions import Role
from portal.records.models import Record
from portal.records.services import records_by_consent


@dataclass(frozen=True)
class TeamOverview:
    patients: list[User]
    consents: list[Consent]
    # Withdrawals not yet marked as dealt with, oldest first.
    withdrawals: list[Withdrawal]
    # Open teach-back flags, each with the consent it belongs to.
    flags: list[tuple[TeachBack, Consent]]
    invited: list[Invitation]
    # Patients' questions about the text, consent by consent.
    questions: list[tuple[Consent, PatientQuestion]]
    records: dict[int, list[Record]]
    # Each patient with each document's version in use that they have not been offered (or
    # have withdrawn from).
    offers: list[tuple[User, DocumentVersion]]


def team_overview(session: Session, therapist_id: int) -> TeamOverview:
    """Everything on the dashboard of the therapist who invited these patients."""
    ids = {"therapist_id": therapist_id}
    patients = session.scalars(_patients_query(), ids).all()
    consents = session.scalars(_consents_query(), ids).all()
    by_id = {consent.id: consent for consent in consents}
    _fill_collections(session, by_id)
    invitations = session.scalars(_invitations_query(), ids).all()
    return TeamOverview(
        patients=patients,
        consents=consents,
        withdrawals=sorted(
            (
                withdrawal
                for consent in consents
                for withdrawal in consent.withdrawals
                if withdrawal.acknowledged_at is None
            ),
            key=lambda withdrawal: withdrawal.id,
        ),
        flags=[
            (flag, by_id[flag.consent_id])
            for flag in session.scalars(_flags_query(), ids)
            if flag.consent_id in by_id  # not a consent created since the consents were read
        ],
        invited=[invitation for invitation in invitations if invitation.status == "pending"],
        questions=[(consent, asked) for consent in consents for asked in consent.questions_asked],
        records=records_by_consent(session, list(by_id)),
        offers=_offers(patients, session.scalars(_versions_in_use_query()).all(), consents),
    )


def _fill_collections(session: Session, by_id: dict[int, Consent]) -> None:
    """Each consent's withdrawals and questions, loaded by two plain queries for all of them
    (as selectinload would, at about a third of its cost) and set as loaded collections."""
    for attribute in ("withdrawals", "questions_asked"):
        grouped: dict[int, list] = {consent_id: [] for consent_id in by_id}
        for row in session.scalars(_collection_query(attribute), {"consent_ids": list(by_id)}):
            grouped[row.consent_id].append(row)
        for consent_id, rows in grouped.items():
            set_committed_value(by_id[consent_id], attribute, rows)


def _offers(
    patients: list[User], versions: list[DocumentVersion], consents: list[Consent]
) -> list[tuple[User, DocumentVersion]]:
    """A document's version in use can be offered to a patient who has no consent to it, or
    only withdrawn ones."""
    taken = {
        (consent.patient_id, consent.version_id)
        for consent in consents
        if consent.status != ConsentStatus.WITHDRAWN
    }
    return [
        (patient, version)
        for patient in patients
        for version in versions
        if (patient.id, version.id) not in taken
    ]


@functools.cache
def _patients_query() -> Select:
    return (
        select(User)
        .where(User.invited_by_id == bindparam("therapist_id"), User.role == Role.PATIENT)
        .order_by(User.full_name)
    )


@functools.cache
def _consents_query() -> Select:
    return (
        select(Consent)
        .where(Consent.therapist_id == bindparam("therapist_id"))
        .order_by(Consent.id)
        .options(
            joinedload(Consent.patient),
            joinedload(Consent.version).joinedload(DocumentVersion.document),
            joinedload(Consent.text).load_only(DocumentText.language),  # not the whole text
        )
    )


@functools.cache
def _collection_query(attribute: str) -> Select:
    """The rows of one of Consent's collections for the consents already loaded (by their ids,
    not the therapist's: on PostgreSQL each statement sees the latest commits, and a consent
    created since would have no place), in the order the collection keeps them."""
    model, order = {
        "withdrawals": (Withdrawal, Withdrawal.id),
        "questions_asked": (PatientQuestion, PatientQuestion.asked_at),
    }[attribute]
    return (
        select(model)
        .where(model.consent_id.in_(bindparam("consent_ids", expanding=True)))
        .order_by(order)
    )


@functools.cache
def _versions_in_use_query() -> Select:
    """Each document's active version (activating one supersedes the last), document by
    document."""
    return (
        select(DocumentVersion)
        .where(DocumentVersion.status == VersionStatus.ACTIVE)
        .order_by(DocumentVersion.document_id)
        .options(joinedload(DocumentVersion.document))
    )


@functools.cache
def _flags_query() -> Select:
    """Teach-back flags still open on consents that have not been withdrawn."""
    return (
        select(TeachBack)
        .join(Consent, TeachBack.consent_id == Consent.id)
        .where(
            Consent.therapist_id == bindparam("therapist_id"),
            Consent.status != ConsentStatus.WITHDRAWN,
            TeachBack.resolved_at.is_(None),
        )
    )


@functools.cache
def _invitations_query() -> Select:
    """Invitations to new patients not yet accepted or withdrawn (expiry is checked on the
    rows, against the time now)."""
    return select(Invitation).where(
        Invitation.invited_by_id == bindparam("therapist_id"),
        Invitation.role == Role.PATIENT,
        Invitation.purpose == PURPOSE_NEW_ACCOUNT,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
    )
