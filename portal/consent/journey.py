"""The patient's consent journey: offer, read, choose, sign; the therapist countersigns.

Each function applies the rules, writes its audit event and flushes; views commit once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask_babel import gettext as _
from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import User
from portal.accounts.passwords import verify_password
from portal.accounts.services import reauthenticated
from portal.comprehension.services import question_states
from portal.consent.document_format import LOCALE_TO_DOCUMENT_LANGUAGE
from portal.consent.documents import section_keys
from portal.consent.journey_models import (
    Consent,
    ConsentStatus,
    OptionalChoice,
    PatientQuestion,
    Signature,
    SignatureMethod,
    SignerRole,
)
from portal.consent.models import (
    ConsentDocument,
    DocumentSection,
    DocumentText,
    DocumentVersion,
    VersionStatus,
)
from portal.consent.reading_time import record_time_on_page, visit_token
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import Role

if TYPE_CHECKING:
    from portal.records.services import PreparedRecord

MAX_SIGNATURE_BYTES = 300_000
_PNG_DATA_URL = re.compile(r"^data:image/png;base64,([A-Za-z0-9+/=]+)$")

PARTICIPANT_MEANING = "Consent given: I agree to take part in this study as described."
PERSON_TAKING_CONSENT_MEANING = (
    "Person taking consent: I discussed this study with the participant, checked their "
    "identity and understanding, and witnessed their consent."
)


class JourneyError(Exception):
    """A refused step; the message is safe to show to the person."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- offering -----------------------------------------------------------------------------------


def offer(session: Session, therapist: User, patient: User, document: ConsentDocument) -> Consent:
    """Offer the active version of a document to one of the therapist's patients."""
    if patient.role != Role.PATIENT or patient.invited_by_id != therapist.id:
        raise JourneyError(_("You can only offer documents to patients you invited"))
    _require_available(session, therapist)
    version = document.active_version
    if version is None:
        raise JourneyError(_("This document has no version in use"))
    if _study_paused(session, version):
        raise JourneyError(_paused_message())
    text = _text_for(version, LOCALE_TO_DOCUMENT_LANGUAGE.get(patient.locale, "en-GB"))
    existing = session.scalar(
        select(Consent).where(
            Consent.patient_id == patient.id,
            Consent.version_id == version.id,
            Consent.status != ConsentStatus.WITHDRAWN,  # after withdrawing, rejoining is new
        )
    )
    if existing is not None:
        raise JourneyError(_("This patient has already been offered this version"))
    consent = Consent(
        patient_id=patient.id,
        therapist_id=therapist.id,
        version_id=version.id,
        text_id=text.id,
        content_hash=text.content_hash,
    )
    session.add(consent)
    session.flush()
    audit.record(
        session,
        "consent.offered",
        actor=audit.Actor.of(therapist),
        object_type="consent",
        object_id=consent.id,
        after={
            "patient_id": patient.id,
            "version": version.label,
            "language": text.language,
            "content_hash": text.content_hash,
        },
    )
    return consent


def _text_for(version: DocumentVersion, language: str) -> DocumentText:
    """The version's text in this language, or in English when there is none."""
    return version.text_in(language) or version.text_in("en-GB")


# --- reading ------------------------------------------------------------------------------------


def reading_plan(session: Session, consent: Consent) -> list[str]:
    """The keys of the sections this patient reads, in order, without loading the sections."""
    return consent.reading_order(section_keys(session, consent.text))


def section_to_read(session: Session, consent: Consent, key: str) -> DocumentSection:
    return session.scalar(_section_query(), {"text_id": consent.text_id, "key": key})


@functools.cache
def _section_query() -> Select:
    """Built once, as every section page asks it (see portal.consent.team_overview on why)."""
    return select(DocumentSection).where(
        DocumentSection.text_id == bindparam("text_id"), DocumentSection.key == bindparam("key")
    )


def open_section(session: Session, consent: Consent, position: int) -> str:
    """Show a section: the first opening starts the cooling-off clock. Returns the visit token
    for the page's form (see portal.consent.reading_time): after the first opening, showing a
    section writes nothing."""
    keys = _reachable_sections(session, consent, position)
    now = utcnow()
    if consent.opened_at is None:
        consent.opened_at = now
        consent.status = ConsentStatus.IN_PROGRESS.value
        audit.record(
            session,
            "consent.opened",
            actor=audit.Actor.of(consent.patient),
            object_type="consent",
            object_id=consent.id,
            after={"status": consent.status},
        )
        session.flush()
    return visit_token(consent, keys[position], now)


def _reachable_sections(session: Session, consent: Consent, position: int) -> list[str]:
    """The reading plan, when the section at `position` may be read now: sections come in
    order until every one has been read once."""
    _require_open(consent)
    keys = reading_plan(session, consent)
    if not 0 <= position < len(keys):
        raise JourneyError(_("That section does not exist"))
    if position > consent.reading_position and consent.reading_completed_at is None:
        raise JourneyError(_("Please read the sections in order"))
    return keys


def leave_section(
    session: Session, consent: Consent, token: str | None, position: int, direction: str
) -> int:
    """Record the time on the page and move on; returns the next position (or -1 when done).
    Only a section already opened can be left: otherwise a form sent to the last section's
    address would mark every section read."""
    _reachable_sections(session, consent, position)
    if consent.opened_at is None:
        raise JourneyError(_("Please read the sections in order"))
    record_time_on_page(session, consent, token)
    last = len(consent.sections) - 1
    if direction == "back":
        return max(position - 1, 0)
    if position >= consent.reading_position:
        consent.reading_position = min(position + 1, last)
    if position == last:
        if consent.reading_completed_at is None:
            consent.reading_completed_at = utcnow()
            audit.record(
                session,
                "consent.reading_completed",
                actor=audit.Actor.of(consent.patient),
                object_type="consent",
                object_id=consent.id,
            )
        return -1
    return position + 1


def ask_question(session: Session, consent: Consent, text: str, section_key: str | None) -> None:
    text = text.strip()
    if not text:
        raise JourneyError(_("Write your question"), field="question")
    if len(text) > 2000:
        raise JourneyError(_("Your question must be 2000 characters or fewer"), field="question")
    asked = PatientQuestion(consent_id=consent.id, section_key=section_key, text=text)
    session.add(asked)
    session.flush()
    audit.record(
        session,
        "consent.question_asked",
        actor=audit.Actor.of(consent.patient),
        object_type="consent",
        object_id=consent.id,
        after={"question_id": asked.id, "section": section_key},
    )


# --- optional choices ---------------------------------------------------------------------------


def save_choices(session: Session, consent: Consent, answers: dict[str, bool]) -> None:
    """Record yes or no for every optional item (no is always fine)."""
    _require_open(consent)
    items = [item.key for item in consent.text.optional_consents]
    if set(answers) != set(items):
        raise JourneyError(_("Choose yes or no for each item"))
    before = consent.choice_map
    existing = {choice.item_key: choice for choice in consent.choices}
    for key in items:
        if key in existing:
            existing[key].agreed, existing[key].chosen_at = answers[key], utcnow()
        else:
            session.add(OptionalChoice(consent_id=consent.id, item_key=key, agreed=answers[key]))
    consent.choices_saved_at = utcnow()
    session.flush()
    session.refresh(consent, ["choices"])
    audit.record(
        session,
        "consent.choices_saved",
        actor=audit.Actor.of(consent.patient),
        object_type="consent",
        object_id=consent.id,
        before=before or None,
        after=consent.choice_map,
    )


# --- signing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    """Why signing is (not yet) possible: the first unmet condition, or none."""

    blocker: str | None
    unlocks_at: dt.datetime | None = None

    @property
    def ready(self) -> bool:
        return self.blocker is None


def readiness(session: Session, consent: Consent, now: dt.datetime | None = None) -> Readiness:
    now = now or utcnow()
    if consent.status == ConsentStatus.WITHDRAWN:
        return Readiness(_("You have withdrawn from this consent"))
    if consent.status not in (ConsentStatus.OFFERED, ConsentStatus.IN_PROGRESS):
        return Readiness(_("This consent has already been signed"))
    if consent.version.status != VersionStatus.ACTIVE:
        return Readiness(
            _(
                "This version of the document is no longer in use. Your study "
                "team will offer you the current one."
            )
        )
    if _study_paused(session, consent.version):
        return Readiness(_paused_message())
    if consent.reading_completed_at is None:
        return Readiness(_("Read every section first"))
    states = question_states(session, consent)
    if any(s.open_teach_back for s in states):
        return Readiness(_("Your therapist will talk some questions through with you first"))
    if not all(s.passed for s in states):
        return Readiness(_("Answer the questions about the document first"))
    if consent.choices_saved_at is None:
        return Readiness(_("Make your choices about the optional items first"))
    unlocks = consent.opened_at + dt.timedelta(hours=consent.version.cooling_off_hours)
    if now < unlocks:
        return Readiness(_("You can sign once you have had time to think it over"), unlocks)
    return Readiness(None)


def _bound(
    consent: Consent,
    signer: User,
    role: SignerRole,
    printed_name: str,
    meaning: str,
    signed_at: dt.datetime,
    method: SignatureMethod,
    image: bytes | None,
    session: Session,
) -> dict[str, object]:
    """What a signature is bound to: the exact version, answers and choices."""
    states = question_states(session, consent)
    return {
        "consent_id": consent.id,
        "document": consent.version.document.slug,
        "version": consent.version.version,
        "language": consent.text.language,
        "content_hash": consent.content_hash,
        "answers": {s.question.key: s.question.answer for s in states if s.passed},
        "choices": consent.choice_map,
        "signer_id": signer.id,
        "role": role.value,
        "printed_name": printed_name,
        "meaning": meaning,
        "signed_at": audit.format_timestamp(signed_at),
        "method": method.value,
        "image_sha256": hashlib.sha256(image).hexdigest() if image else None,
    }


def _add_signature(session: Session, consent: Consent, signature: Signature) -> Signature:
    try:
        with session.begin_nested():
            session.add(signature)
    except IntegrityError as exc:
        raise AlreadySigned(_("This has already been signed")) from exc
    session.expire(consent, ["signatures"])
    return signature


def _new_signature(
    session: Session,
    consent: Consent,
    signer: User,
    role: SignerRole,
    printed_name: str,
    meaning: str,
    method: SignatureMethod,
    image: bytes | None,
    signed_at: dt.datetime,
) -> Signature:
    """The signature, bound to what was signed, not yet added to the session."""
    bound = _bound(consent, signer, role, printed_name, meaning, signed_at, method, image, session)
    bound_json = audit.canonical_json(bound)
    return Signature(
        consent_id=consent.id,
        signer_id=signer.id,
        role=role.value,
        printed_name=printed_name,
        meaning=meaning,
        signed_at=signed_at,
        method=method.value,
        image_png=image,
        bound_json=bound_json,
        binding_hash=hashlib.sha256(bound_json.encode()).hexdigest(),
    )


class AlreadySigned(JourneyError):
    """A second submission of a signature that exists already (double click, two tabs)."""


def decode_signature_image(data_url: str) -> bytes:
    match = _PNG_DATA_URL.match(data_url or "")
    if match is None:
        raise JourneyError(
            _("Draw your signature in the box, or choose to type your name instead"),
            field="signature",
        )
    try:
        image = base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise JourneyError(
            _("The drawn signature could not be read. Clear it and try again."), field="signature"
        ) from exc
    if not image.startswith(b"\x89PNG\r\n\x1a\n") or len(image) > MAX_SIGNATURE_BYTES:
        raise JourneyError(
            _("The drawn signature could not be read. Clear it and try again."), field="signature"
        )
    return image


def _names_match(typed: str, full_name: str) -> bool:
    def norm(value: str) -> str:
        return " ".join(value.split()).casefold()

    return norm(typed) == norm(full_name)


def sign(
    session: Session,
    consent: Consent,
    patient: User,
    *,
    typed_name: str,
    password: str,
    attested: bool,
    method: SignatureMethod,
    image: bytes | None,
) -> Signature:
    """The participant signs (21 CFR 11: two components — account and password re-entered)."""
    if consent.patient_id != patient.id:
        raise JourneyError(_("This is not your consent"))
    if consent.signature_of(SignerRole.PARTICIPANT) is not None:
        raise AlreadySigned(_("You have already signed this consent"))
    state = readiness(session, consent)
    if not state.ready:
        raise JourneyError(state.blocker)
    if not attested:
        raise JourneyError(_("Tick the box to confirm your consent"), field="attest")
    if not _names_match(typed_name, patient.full_name):
        raise JourneyError(_("Type your full name exactly as it appears above"), field="typed_name")
    if not _reauthenticated(session, consent, patient, password):
        raise JourneyError(_("Your password is not correct"), field="password")
    if method == SignatureMethod.DRAWN and image is None:
        raise JourneyError(
            _("Draw your signature in the box, or choose to type your name instead"),
            field="signature",
        )
    signature = _add_signature(
        session,
        consent,
        _new_signature(
            session,
            consent,
            patient,
            SignerRole.PARTICIPANT,
            patient.full_name,
            PARTICIPANT_MEANING,
            method,
            image if method == SignatureMethod.DRAWN else None,
            utcnow(),
        ),
    )
    consent.status = ConsentStatus.SIGNED.value
    consent.signed_at = signature.signed_at
    audit.record(
        session,
        "consent.signed",
        actor=audit.Actor.of(patient),
        object_type="consent",
        object_id=consent.id,
        after={
            "status": consent.status,
            "method": signature.method,
            "binding_hash": signature.binding_hash,
        },
    )
    return signature


def countersign(
    session: Session,
    consent: Consent,
    therapist: User,
    *,
    password: str,
    discussed: bool,
    identity_checked: bool,
    witnessed_typed: bool,
    prepared: PreparedCountersignature | None = None,
) -> Signature:
    """The person taking consent confirms and countersigns: only now is consent complete.

    With `prepared` (see prepare_countersignature) the signature carries the time it was
    prepared, and the sealed record made then is stored if it is still exactly right.
    """
    # Decide on everything as it is now, in this transaction: the consent (or the one it
    # replaces) may have changed since it was loaded, by a withdrawal while the record was
    # being prepared, say. Loaded objects are otherwise kept across commits.
    session.expire_all()
    if consent.therapist_id != therapist.id:
        raise JourneyError(_("Only the therapist taking this consent can countersign it"))
    _require_available(session, therapist)
    if _study_paused(session, consent.version):
        raise JourneyError(_paused_message())
    participant = consent.signature_of(SignerRole.PARTICIPANT)
    if consent.status == ConsentStatus.COMPLETE:
        raise AlreadySigned(_("This consent has already been countersigned"))
    if consent.status == ConsentStatus.WITHDRAWN:
        raise JourneyError(_("The patient has withdrawn, so there is nothing to countersign"))
    if consent.status != ConsentStatus.SIGNED or participant is None:
        raise JourneyError(_("The patient has not signed yet"))
    if not (discussed and identity_checked):
        raise JourneyError(
            _("Confirm that you discussed the study and checked their identity"), field="discussed"
        )
    if participant.method == SignatureMethod.TYPED and not witnessed_typed:
        raise JourneyError(
            _("Confirm that you witnessed the patient typing their name"), field="witnessed_typed"
        )
    # A prepared countersignature was only made after this password was checked (Argon2 takes
    # about 0.15 s, better not spent twice, nor while holding the write lock).
    password_checked = prepared is not None and prepared.password_checked_for == therapist.id
    if not password_checked and not _reauthenticated(session, consent, therapist, password):
        raise JourneyError(_("Your password is not correct"), field="password")
    signed_at = prepared.signed_at if prepared else utcnow()
    signature = _add_signature(
        session, consent, _countersignature(session, consent, therapist, signed_at)
    )
    consent.status = ConsentStatus.COMPLETE.value
    consent.completed_at = signature.signed_at
    if consent.replaces is not None and consent.replaces.status == ConsentStatus.COMPLETE:
        consent.replaces.status = ConsentStatus.REPLACED.value
        audit.record(
            session,
            "consent.replaced",
            actor=audit.Actor.of(therapist),
            object_type="consent",
            object_id=consent.replaces_id,
            before={"status": "complete"},
            after={"status": "replaced", "by": consent.id},
        )
    audit.record(
        session,
        "consent.countersigned",
        actor=audit.Actor.of(therapist),
        object_type="consent",
        object_id=consent.id,
        after={"status": consent.status, "binding_hash": signature.binding_hash},
    )
    # The sealed PDF is part of completing the consent: both commit together or not at all.
    from portal.records.services import create_consent_record

    create_consent_record(
        session, consent, audit.Actor.of(therapist), prepared.record if prepared else None
    )
    return signature


def _countersignature(
    session: Session, consent: Consent, therapist: User, signed_at: dt.datetime
) -> Signature:
    return _new_signature(
        session,
        consent,
        therapist,
        SignerRole.PERSON_TAKING_CONSENT,
        therapist.full_name,
        PERSON_TAKING_CONSENT_MEANING,
        SignatureMethod.PASSWORD,
        None,
        signed_at,
    )


@dataclass(frozen=True)
class PreparedCountersignature:
    password_checked_for: int  # the therapist whose password prepare_countersignature checked
    signed_at: dt.datetime
    record: PreparedRecord


def prepare_countersignature(
    session: Session, consent: Consent, therapist: User, password: str
) -> PreparedCountersignature | None:
    """Render and seal the completed record before the transaction that countersigns, which
    then only stores it (reads only: see PreparedRecord for why). None when countersigning
    would be refused; countersign() says why, and audits it."""
    if (
        consent.therapist_id != therapist.id
        or consent.status != ConsentStatus.SIGNED
        or consent.signature_of(SignerRole.PARTICIPANT) is None
        or not verify_password(therapist.password_hash, password)
    ):
        return None
    signed_at = utcnow()
    pending = _countersignature(session, consent, therapist, signed_at)
    from portal.records.services import prepare_consent_record

    record = prepare_consent_record(session, consent, [*consent.signatures, pending], signed_at)
    return PreparedCountersignature(therapist.id, signed_at, record)


def _reauthenticated(session: Session, consent: Consent, signer: User, password: str) -> bool:
    return reauthenticated(
        session,
        signer,
        password,
        refused="consent.signature_refused",
        object_type="consent",
        object_id=consent.id,
    )


def _require_available(session: Session, therapist: User) -> None:
    """A therapist on hold (a safeguard while a concern is looked into) takes no consent."""
    from portal.incidents.services import is_unavailable

    if is_unavailable(session, therapist.id):
        raise JourneyError(
            _(
                "You cannot take or countersign consent at the moment. "
                "The ethics panel will contact you."
            )
        )


def _paused_message() -> str:
    return _(
        "The ethics panel has suspended or stopped this study, so no new consent can be "
        "given. You can still read your records and withdraw. Your study team will contact you."
    )


def _study_paused(session: Session, version: DocumentVersion) -> bool:
    """Suspended or terminated by the ethics panel: no new consent is taken or completed."""
    from portal.review.services import blocking_protocol

    return blocking_protocol(session, version) is not None


def _require_open(consent: Consent) -> None:
    if consent.status == ConsentStatus.WITHDRAWN:
        raise JourneyError(_("You have withdrawn from this consent"))
    if consent.status not in (ConsentStatus.OFFERED, ConsentStatus.IN_PROGRESS):
        raise JourneyError(_("This consent has already been signed"))


# --- re-consent ---------------------------------------------------------------------------------


def request_reconsent(session: Session, version: DocumentVersion, actor: User) -> list[Consent]:
    """After a material change: everyone whose consent rests on an older version is asked again.

    Their earlier consent stands until they sign the new one (or withdraw). They read only the
    sections that changed, answer the questions about those, and choose again.
    """
    from portal.consent.redline import compare
    from portal.notifications.services import path_for, queue

    earlier = session.scalars(
        select(Consent)
        .join(DocumentVersion, Consent.version_id == DocumentVersion.id)
        .where(
            DocumentVersion.document_id == version.document_id,
            DocumentVersion.id != version.id,
            Consent.status == ConsentStatus.COMPLETE,
        )
    ).all()
    created = []
    changed_by_texts: dict[tuple[int, int], list[str] | None] = {}
    for old in earlier:
        text = _text_for(version, old.text.language)
        key = (old.text_id, text.id)
        if key not in changed_by_texts:  # one redline per pair of texts, not per patient
            changed_by_texts[key] = (
                [s.key for s in compare(old.text, text).changed_sections if s.change != "removed"]
                if old.text.language == text.language
                else None
            )
        changed = changed_by_texts[key]
        consent = Consent(
            patient_id=old.patient_id,
            therapist_id=old.therapist_id,
            version_id=version.id,
            text_id=text.id,
            content_hash=text.content_hash,
            replaces_id=old.id,
            reading_keys_json=audit.canonical_json(changed) if changed else None,
        )
        session.add(consent)
        session.flush()
        audit.record(
            session,
            "consent.reconsent_requested",
            actor=audit.Actor.of(actor),
            object_type="consent",
            object_id=consent.id,
            after={
                "patient_id": old.patient_id,
                "replaces": old.id,
                "version": version.label,
                "sections_to_read": changed,
            },
        )
        queue(session, consent.patient, "reconsent", path_for("consent.home"))
        created.append(consent)
    return created
