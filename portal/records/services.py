"""Creating, finding and verifying sealed records; each step audited."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session, defer

from portal.accounts.models import User
from portal.consent.journey_models import Consent, Signature, Withdrawal
from portal.core import audit
from portal.core.db import utcnow
from portal.core.faults import fault_point
from portal.core.permissions import PANEL_ROLES, Role
from portal.records.models import Record, RecordKind
from portal.records.render import (
    PdfSource,
    consent_pdf_source,
    record_data,
    render_withdrawal_pdf,
    withdrawal_data,
)
from portal.records.seal import check_seal, seal


@dataclass(frozen=True)
class PreparedRecord:
    """A consent record rendered and sealed before its transaction, so that the slow part
    (about 1.4 s) does not hold the database's write lock that every other writer waits on."""

    uid: str
    created_at: dt.datetime
    source: PdfSource
    pdf: bytes


def prepare_consent_record(
    session: Session, consent: Consent, signatures: Sequence[Signature], created_at: dt.datetime
) -> PreparedRecord:
    """Render and seal the record the consent will have once `signatures` are stored."""
    uid = _new_uid()
    source = consent_pdf_source(
        consent, record_data(consent, uid, created_at, session, signatures), signatures
    )
    return PreparedRecord(uid, created_at, source, seal(source.render()))


def create_consent_record(
    session: Session, consent: Consent, actor: audit.Actor, prepared: PreparedRecord | None = None
) -> Record:
    """Render, seal and store the record of a completed consent, in the caller's transaction.

    A prepared record is stored only when the source made now, from what the transaction
    sees, is identical to the one it was rendered from; otherwise it is rendered again here.
    """
    fault_point("before_pdf")
    uid, created_at = (prepared.uid, prepared.created_at) if prepared else (_new_uid(), utcnow())
    session.refresh(consent, ["signatures", "choices"])
    source = consent_pdf_source(consent, record_data(consent, uid, created_at, session))
    pdf = prepared.pdf if prepared and prepared.source == source else seal(source.render())
    return _store(
        session,
        actor,
        Record(
            uid=uid,
            consent_id=consent.id,
            kind=RecordKind.CONSENT.value,
            created_at=created_at,
            pdf=pdf,
        ),
    )


def create_withdrawal_receipt(
    session: Session, withdrawal: Withdrawal, closed: list[int], actor: audit.Actor
) -> Record:
    """The sealed receipt of a withdrawal, in the same transaction as the withdrawal itself."""
    fault_point("before_pdf")
    uid, created_at = _new_uid(), utcnow()
    data = withdrawal_data(withdrawal, uid, created_at, closed)
    pdf = seal(render_withdrawal_pdf(withdrawal, data))
    return _store(
        session,
        actor,
        Record(
            uid=uid,
            consent_id=withdrawal.consent_id,
            withdrawal_id=withdrawal.id,
            kind=RecordKind.WITHDRAWAL.value,
            created_at=created_at,
            pdf=pdf,
        ),
    )


def _new_uid() -> str:
    return secrets.token_hex(8).upper()


def _store(session: Session, actor: audit.Actor, record: Record) -> Record:
    record.sha256 = hashlib.sha256(record.pdf).hexdigest()
    session.add(record)
    session.flush()
    fault_point("after_pdf")  # sealed and written, not yet committed
    audit.record(
        session,
        "record.created",
        actor=actor,
        object_type="record",
        object_id=record.uid,
        after={
            "consent_id": record.consent_id,
            "withdrawal_id": record.withdrawal_id,
            "kind": record.kind,
            "sha256": record.sha256,
        },
    )
    return record


def can_download(user: User, record: Record) -> bool:
    """The patient, the consent's therapist and the ethics panel; nobody else."""
    consent = record.consent
    return (
        user.id == consent.patient_id
        or (user.role == Role.THERAPIST and user.id == consent.therapist_id)
        or user.role in PANEL_ROLES
    )


def record_download(session: Session, user: User, record: Record) -> None:
    audit.record(
        session,
        "record.downloaded",
        actor=audit.Actor.of(user),
        object_type="record",
        object_id=record.uid,
        after={"sha256": record.sha256},
    )


@dataclass(frozen=True)
class Verdict:
    """The answer given to anyone who asks whether a file is one of the portal's records."""

    outcome: str  # "genuine", "altered" or "not_pdf"
    record: Record | None = None
    reason: str | None = None
    paper: object | None = None  # a panel's decision letter or minutes (portal.review)


def verify_file(session: Session, data: bytes) -> Verdict:
    check = check_seal(data)
    if not check.is_pdf:
        return Verdict("not_pdf", reason=check.problem)
    if not check.sealed_by_portal:
        return Verdict("altered", reason=check.problem)
    digest = hashlib.sha256(data).hexdigest()
    record = session.scalar(select(Record).where(Record.sha256 == digest))
    if record is not None:
        return Verdict("genuine", record=record)
    from portal.review.models import PanelPaper

    paper = session.scalar(select(PanelPaper).where(PanelPaper.sha256 == digest))
    if paper is not None:
        return Verdict("genuine", paper=paper)
    return Verdict("altered", reason="sealed by this portal's key but not a stored record")


def records_of(session: Session, consent: Consent) -> list[Record]:
    return list(session.scalars(select(Record).where(Record.consent_id == consent.id)))


def records_by_consent(session: Session, consent_ids: list[int]) -> dict[int, list[Record]]:
    """Many consents' records at once, for listing them (the PDFs stay in the database until
    one is downloaded)."""
    found: dict[int, list[Record]] = {}
    for record in session.scalars(_records_of_consents_query(), {"consent_ids": consent_ids}):
        found.setdefault(record.consent_id, []).append(record)
    return found


@functools.cache
def _records_of_consents_query() -> Select:
    """Built once: dashboards ask it on every load (see portal.consent.team_overview)."""
    return (
        select(Record)
        .where(Record.consent_id.in_(bindparam("consent_ids", expanding=True)))
        .order_by(Record.id)
        .options(defer(Record.pdf))
    )
