"""Withdrawal at any time: from the whole study, from treatment only, or from one optional item.

Withdrawing is never blocked by where the patient is in the journey. A patient withdraws in
the portal with their password; their therapist can record a withdrawal the patient told
them about another way, with the date and an attestation. Each withdrawal changes the
consent at once, is audited, produces a sealed receipt and notifies the therapist and the
panel chair — all in one transaction, so it happens completely or not at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import Exists, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import User
from portal.accounts.services import reauthenticated
from portal.consent.journey_models import (
    Consent,
    ConsentStatus,
    Withdrawal,
    WithdrawalChannel,
    WithdrawalScope,
)
from portal.consent.models import DocumentVersion, OptionalConsentItem, WithdrawalDataOption
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import Role

LONDON = ZoneInfo("Europe/London")
MAX_REASON_LENGTH = 2000
# Consents a study withdrawal closes: every one not already ended.
OPEN_STATUSES = (
    ConsentStatus.OFFERED,
    ConsentStatus.IN_PROGRESS,
    ConsentStatus.SIGNED,
    ConsentStatus.COMPLETE,
)


class WithdrawalError(Exception):
    """A refused withdrawal; the message is safe to show, `field` names the form field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AlreadyWithdrawn(WithdrawalError):
    """The same withdrawal exists already (a double click, a second tab)."""

    def __init__(self, message: str, existing: Withdrawal | None) -> None:
        super().__init__(message)
        self.existing = existing


@dataclass(frozen=True)
class WithdrawalRequest:
    scope: WithdrawalScope | None
    item_key: str = ""
    data_option_key: str | None = None
    reason: str = ""
    channel: WithdrawalChannel = WithdrawalChannel.PORTAL
    communicated_on: dt.date | None = None  # staff-recorded: the day the patient told them
    attestation: str | None = None


def london_today() -> dt.date:
    return utcnow().astimezone(LONDON).date()


# --- what a patient can withdraw from -----------------------------------------------------------


def consents_in_force(session: Session, patient: User) -> list[Consent]:
    """One consent per document the patient takes part in (or is deciding about).

    A completed consent is the one in force, even while a re-consent to a newer version is
    pending; otherwise the newest consent still open.
    """
    consents = session.scalars(
        select(Consent)
        .join(DocumentVersion, Consent.version_id == DocumentVersion.id)
        .where(Consent.patient_id == patient.id, Consent.status.in_(OPEN_STATUSES))
        .order_by(DocumentVersion.document_id, Consent.id.desc())
    ).all()
    by_document: dict[int, Consent] = {}
    for consent in consents:
        current = by_document.get(consent.version.document_id)
        if current is None or (
            consent.status == ConsentStatus.COMPLETE and current.status != ConsentStatus.COMPLETE
        ):
            by_document[consent.version.document_id] = consent
    return list(by_document.values())


def consent_in_force_clause(patient_id) -> Exists:
    """Whether consents_in_force would name any: asked on every page a patient sees (the
    Withdraw link), so an indexed EXISTS, asked alongside the page's other questions;
    `patient_id` may be a bound parameter."""
    return exists().where(Consent.patient_id == patient_id, Consent.status.in_(OPEN_STATUSES))


def in_force_for(session: Session, consent: Consent) -> Consent:
    """The consent a withdrawal applies to: the one in force for that patient and document
    (a completed consent while its re-consent is pending), else this one."""
    document_id = consent.version.document_id
    for candidate in consents_in_force(session, consent.patient):
        if candidate.version.document_id == document_id:
            return candidate
    return consent


def available_scopes(consent: Consent) -> list[WithdrawalScope]:
    """Leaving the study is always possible; the others only mean something once consented."""
    if consent.status not in OPEN_STATUSES:
        return []
    scopes = [WithdrawalScope.STUDY]
    if consent.status == ConsentStatus.COMPLETE and not consent.treatment_stopped:
        scopes.append(WithdrawalScope.TREATMENT)
    if withdrawable_items(consent):
        scopes.append(WithdrawalScope.OPTIONAL_ITEM)
    return scopes


def withdrawable_items(consent: Consent) -> list[OptionalConsentItem]:
    """The optional items the patient said yes to and has not taken back."""
    if consent.status not in (ConsentStatus.SIGNED, ConsentStatus.COMPLETE):
        return []
    agreed = consent.effective_choices
    return [item for item in consent.text.optional_consents if agreed.get(item.key)]


def asks_about_data(consent: Consent, scope: WithdrawalScope) -> bool:
    """Only leaving the study after consenting raises the question of the data collected."""
    return scope == WithdrawalScope.STUDY and consent.status == ConsentStatus.COMPLETE


def default_data_option(consent: Consent) -> str | None:
    return next((o.key for o in consent.text.withdrawal_options if o.is_default), None)


def check(consent: Consent, wanted: WithdrawalRequest) -> None:
    """Refuse a request that does not fit this consent, with a message for the field at fault."""
    if consent.status == ConsentStatus.WITHDRAWN or consent.study_withdrawal is not None:
        raise AlreadyWithdrawn(
            _("You have already withdrawn from this study."), consent.study_withdrawal
        )
    if wanted.scope not in available_scopes(consent):
        if wanted.scope == WithdrawalScope.TREATMENT and consent.treatment_stopped:
            raise AlreadyWithdrawn(
                _("Treatment sessions have already been stopped."),
                _existing(consent, WithdrawalScope.TREATMENT, ""),
            )
        raise WithdrawalError(_("Choose one of the options shown"), field="scope")
    if wanted.scope == WithdrawalScope.OPTIONAL_ITEM:
        if wanted.item_key in consent.withdrawn_items:
            raise AlreadyWithdrawn(
                _("You have already withdrawn from that item."),
                _existing(consent, WithdrawalScope.OPTIONAL_ITEM, wanted.item_key),
            )
        if wanted.item_key not in {item.key for item in withdrawable_items(consent)}:
            raise WithdrawalError(_("Choose which item you no longer agree to"), field="item")
    options = {o.key for o in consent.text.withdrawal_options}
    if asks_about_data(consent, wanted.scope) and wanted.data_option_key not in options:
        raise WithdrawalError(
            _("Choose what should happen to the information already collected"),
            field="data_option",
        )
    if len(wanted.reason) > MAX_REASON_LENGTH:
        raise WithdrawalError(
            _("The reason must be %(n)d characters or fewer", n=MAX_REASON_LENGTH), field="reason"
        )


@dataclass(frozen=True)
class Preview:
    """A checked request in the terms of the consent, for the page that asks to confirm it."""

    scope: WithdrawalScope
    item: OptionalConsentItem | None
    data_option: WithdrawalDataOption | None
    reason: str


def preview(consent: Consent, wanted: WithdrawalRequest) -> Preview:
    items = {item.key: item for item in consent.text.optional_consents}
    options = {option.key: option for option in consent.text.withdrawal_options}
    return Preview(
        scope=wanted.scope,
        item=items.get(wanted.item_key),
        data_option=(
            options.get(wanted.data_option_key or "")
            if asks_about_data(consent, wanted.scope)
            else None
        ),
        reason=wanted.reason.strip(),
    )


def _existing(consent: Consent, scope: WithdrawalScope, item_key: str) -> Withdrawal | None:
    return next(
        (w for w in consent.withdrawals if w.scope == scope and w.item_key == item_key), None
    )


# --- withdrawing --------------------------------------------------------------------------------


def withdraw_in_portal(
    session: Session, consent: Consent, patient: User, wanted: WithdrawalRequest, password: str
) -> Withdrawal:
    """The patient withdraws, confirming with their password (not their reasons: none needed)."""
    if consent.patient_id != patient.id:
        raise WithdrawalError(_("This is not your consent"))
    check(consent, wanted)
    _require_password(session, consent, patient, password)
    return _record(
        session,
        consent,
        patient,
        WithdrawalRequest(
            scope=wanted.scope,
            item_key=wanted.item_key,
            data_option_key=wanted.data_option_key,
            reason=wanted.reason,
            channel=WithdrawalChannel.PORTAL,
            communicated_on=london_today(),
        ),
    )


def record_for_patient(
    session: Session, consent: Consent, staff: User, wanted: WithdrawalRequest, password: str
) -> Withdrawal:
    """A therapist records a withdrawal the patient told them of by phone, letter or in person."""
    if staff.role != Role.THERAPIST or consent.therapist_id != staff.id:
        raise WithdrawalError(_("Only the patient's own therapist can record this"))
    if wanted.channel == WithdrawalChannel.PORTAL:
        raise WithdrawalError(_("Choose how the patient told you"), field="channel")
    check(consent, wanted)
    told = wanted.communicated_on
    if told is None:
        raise WithdrawalError(_("Enter the date the patient told you"), field="day")
    if told > london_today():
        raise WithdrawalError(_("The date cannot be in the future"), field="day")
    if told < consent.offered_at.astimezone(LONDON).date():
        raise WithdrawalError(_("The date cannot be before the document was offered"), field="day")
    if not wanted.attestation:
        raise WithdrawalError(
            _("Confirm that the patient told you this themselves"), field="attested"
        )
    _require_password(session, consent, staff, password)
    return _record(session, consent, staff, wanted)


def _require_password(session: Session, consent: Consent, user: User, password: str) -> None:
    refused = "withdrawal.refused"
    if not reauthenticated(
        session, user, password, refused=refused, object_type="consent", object_id=consent.id
    ):
        raise WithdrawalError(_("Your password is not correct"), field="password")


def _record(
    session: Session, consent: Consent, actor_user: User, wanted: WithdrawalRequest
) -> Withdrawal:
    actor = audit.Actor.of(actor_user)
    withdrawal = Withdrawal(
        consent_id=consent.id,
        scope=wanted.scope.value,
        item_key=wanted.item_key if wanted.scope == WithdrawalScope.OPTIONAL_ITEM else "",
        data_option_key=(
            wanted.data_option_key if asks_about_data(consent, wanted.scope) else None
        ),
        reason=wanted.reason.strip() or None,
        channel=wanted.channel.value,
        communicated_on=wanted.communicated_on,
        recorded_by_id=actor_user.id,
        recorded_at=utcnow(),
        attestation=wanted.attestation,
    )
    try:
        with session.begin_nested():
            session.add(withdrawal)
    except IntegrityError as exc:  # the same withdrawal, submitted twice at the same moment
        session.expire(consent, ["withdrawals"])
        raise AlreadyWithdrawn(
            _("This withdrawal has already been recorded."),
            _existing(consent, wanted.scope, withdrawal.item_key),
        ) from exc
    session.expire(consent, ["withdrawals"])
    audit.record(
        session,
        "withdrawal.recorded",
        actor=actor,
        object_type="withdrawal",
        object_id=withdrawal.id,
        after={
            "consent_id": consent.id,
            "scope": withdrawal.scope,
            "item": withdrawal.item_key or None,
            "data_option": withdrawal.data_option_key,
            "channel": withdrawal.channel,
            "communicated_on": withdrawal.communicated_on.isoformat(),
            "reason_given": withdrawal.reason is not None,
        },
    )
    closed = _apply(session, consent, withdrawal, actor)
    from portal.records.services import create_withdrawal_receipt

    create_withdrawal_receipt(session, withdrawal, closed, actor)
    _notify(session, consent, withdrawal)
    return withdrawal


def _apply(
    session: Session, consent: Consent, withdrawal: Withdrawal, actor: audit.Actor
) -> list[int]:
    """The effect, at once: leaving the study closes every open consent to that document."""
    if withdrawal.scope != WithdrawalScope.STUDY:
        return []
    to_close = session.scalars(
        select(Consent)
        .join(DocumentVersion, Consent.version_id == DocumentVersion.id)
        .where(
            Consent.patient_id == consent.patient_id,
            DocumentVersion.document_id == consent.version.document_id,
            Consent.status.in_(OPEN_STATUSES),
        )
        .order_by(Consent.id)
    ).all()
    for closing in to_close:
        before = closing.status
        closing.status = ConsentStatus.WITHDRAWN.value
        audit.record(
            session,
            "consent.withdrawn",
            actor=actor,
            object_type="consent",
            object_id=closing.id,
            before={"status": before},
            after={"status": closing.status, "withdrawal_id": withdrawal.id},
        )
    session.flush()
    return [closing.id for closing in to_close]


def _notify(session: Session, consent: Consent, withdrawal: Withdrawal) -> None:
    from portal.notifications.services import path_for, queue

    link = path_for("withdrawal.receipt", withdrawal_id=withdrawal.id)
    queue(session, consent.therapist, "withdrawal", link)
    chairs = session.scalars(
        select(User).where(User.role == Role.PANEL_CHAIR, User.active.is_(True))
    ).all()
    for chair in chairs:
        queue(session, chair, "withdrawal", link)


def receipt_read(session: Session, reader: User, withdrawal: Withdrawal) -> None:
    """Receipts say what a patient decided about their health data: every read is audited."""
    audit.record(
        session,
        "withdrawal.viewed",
        actor=audit.Actor.of(reader),
        object_type="withdrawal",
        object_id=withdrawal.id,
    )


def acknowledge(session: Session, withdrawal: Withdrawal, therapist: User) -> None:
    """The therapist confirms future sessions are cancelled (or the item's use stopped)."""
    if withdrawal.consent.therapist_id != therapist.id:
        raise WithdrawalError(_("Only the patient's own therapist can do this"))
    if withdrawal.acknowledged_at is not None:
        return
    withdrawal.acknowledged_at = utcnow()
    withdrawal.acknowledged_by_id = therapist.id
    audit.record(
        session,
        "withdrawal.acknowledged",
        actor=audit.Actor.of(therapist),
        object_type="withdrawal",
        object_id=withdrawal.id,
        after={"acknowledged_by": therapist.id},
    )
