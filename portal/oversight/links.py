"""How each kind of audited object leads to the patient, protocol, consent version or incident
it concerns (see portal.core.audit_links). Imported by the app factory, which registers these.

Each resolver is one indexed lookup, done while the event is written.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Invitation, User, UserSession
from portal.consent.journey_models import Consent, Withdrawal
from portal.consent.models import DocumentText, DocumentVersion
from portal.core.audit_links import LinkKind, resolves
from portal.core.permissions import Role
from portal.records.models import Record
from portal.review.models import PanelPaper, Submission, SubmittedVersion
from portal.review.services import protocol_of_document

Found = Iterator[tuple[LinkKind, int | None]]


def _number(object_id: str) -> int | None:
    return int(object_id) if object_id.isdigit() else None


def _patient(session: Session, user_id: int | None) -> Found:
    if user_id is not None and session.scalar(select(User.role).where(User.id == user_id)) == (
        Role.PATIENT.value
    ):
        yield LinkKind.PATIENT, user_id


def _version(session: Session, version_id: int | None) -> Found:
    if version_id is None:
        return
    yield LinkKind.VERSION, version_id
    document_id = session.scalar(
        select(DocumentVersion.document_id).where(DocumentVersion.id == version_id)
    )
    if document_id is not None:
        protocol = protocol_of_document(session, document_id)
        yield LinkKind.PROTOCOL, protocol.id if protocol else None


def _consent(session: Session, consent_id: int | None) -> Found:
    row = session.execute(
        select(Consent.patient_id, Consent.version_id).where(Consent.id == consent_id)
    ).first()
    if row is not None:
        yield LinkKind.PATIENT, row.patient_id
        yield from _version(session, row.version_id)


@resolves("user")
def _user(session: Session, object_id: str) -> Found:
    yield from _patient(session, _number(object_id))


@resolves("user_session")
def _user_session(session: Session, object_id: str) -> Found:
    user_id = session.scalar(
        select(UserSession.user_id).where(UserSession.id == _number(object_id))
    )
    yield from _patient(session, user_id)


@resolves("invitation")
def _invitation(session: Session, object_id: str) -> Found:
    user_id = session.scalar(select(Invitation.user_id).where(Invitation.id == _number(object_id)))
    yield from _patient(session, user_id)


@resolves("consent")
def _consent_event(session: Session, object_id: str) -> Found:
    yield from _consent(session, _number(object_id))


@resolves("withdrawal")
def _withdrawal(session: Session, object_id: str) -> Found:
    consent_id = session.scalar(
        select(Withdrawal.consent_id).where(Withdrawal.id == _number(object_id))
    )
    yield from _consent(session, consent_id)


@resolves("record")
def _record(session: Session, object_id: str) -> Found:
    yield from _consent(
        session, session.scalar(select(Record.consent_id).where(Record.uid == object_id))
    )


@resolves("document_version")
def _document_version(session: Session, object_id: str) -> Found:
    yield from _version(session, _number(object_id))


@resolves("document_text")
def _document_text(session: Session, object_id: str) -> Found:
    yield from _version(
        session,
        session.scalar(
            select(DocumentText.version_id).where(DocumentText.id == _number(object_id))
        ),
    )


@resolves("consent_document")
def _consent_document(session: Session, object_id: str) -> Found:
    document_id = _number(object_id)
    protocol = protocol_of_document(session, document_id) if document_id else None
    yield LinkKind.PROTOCOL, protocol.id if protocol else None


@resolves("protocol")
def _protocol(session: Session, object_id: str) -> Found:
    yield LinkKind.PROTOCOL, _number(object_id)


def _submission(session: Session, submission_id: int | None) -> Found:
    yield (
        LinkKind.PROTOCOL,
        session.scalar(select(Submission.protocol_id).where(Submission.id == submission_id)),
    )
    for version_id in session.scalars(
        select(SubmittedVersion.version_id).where(SubmittedVersion.submission_id == submission_id)
    ):
        yield LinkKind.VERSION, version_id


@resolves("submission")
def _submission_event(session: Session, object_id: str) -> Found:
    yield from _submission(session, _number(object_id))


@resolves("panel_paper")
def _panel_paper(session: Session, object_id: str) -> Found:
    yield from _submission(
        session,
        session.scalar(select(PanelPaper.submission_id).where(PanelPaper.uid == object_id)),
    )


@resolves("incident")
def _incident(session: Session, object_id: str) -> Found:
    yield LinkKind.INCIDENT, _number(object_id)
