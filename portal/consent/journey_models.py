"""A patient's consent to one document version: reading, choices and signatures.

The consent keeps the exact version, language and content hash it was given. Signatures are
written once (database triggers refuse changes) and bind the version, the answers and the
choices by a SHA-256 over their canonical JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text  # `text` is also a column of Consent
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import User
from portal.consent.models import (
    ComprehensionQuestion,
    DocumentSection,
    DocumentText,
    DocumentVersion,
    OptionalConsentItem,
    WithdrawalDataOption,
)
from portal.core.crypto import EncryptedText
from portal.core.db import Base, UTCDateTime, utcnow


class ConsentStatus(StrEnum):
    OFFERED = "offered"  # the therapist offered the document; not opened yet
    IN_PROGRESS = "in_progress"  # reading, answering, choosing
    SIGNED = "signed"  # the patient signed; awaiting the therapist's countersignature
    COMPLETE = "complete"  # countersigned: consent given
    REPLACED = "replaced"  # a later consent (re-consent) took its place
    WITHDRAWN = "withdrawn"


_STATUSES = ", ".join(f"'{s.value}'" for s in ConsentStatus)


class WithdrawalScope(StrEnum):
    STUDY = "study"  # leave the study altogether
    TREATMENT = "treatment"  # stop treatment sessions, stay in follow-up
    OPTIONAL_ITEM = "optional_item"  # take back one optional consent, stay in the study


class WithdrawalChannel(StrEnum):
    """How the patient told us: in the portal, or to staff who recorded it for them."""

    PORTAL = "portal"
    PHONE = "phone"
    IN_PERSON = "in_person"
    LETTER = "letter"
    EMAIL = "email"


class SignerRole(StrEnum):
    PARTICIPANT = "participant"
    PERSON_TAKING_CONSENT = "person_taking_consent"


class SignatureMethod(StrEnum):
    DRAWN = "drawn"
    TYPED = "typed"  # the accessible alternative, witnessed by the therapist
    PASSWORD = "password"  # staff: printed name and password re-entered  # noqa: S105


class Consent(Base):
    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("document_version.id"), index=True)
    text_id: Mapped[int] = mapped_column(ForeignKey("document_text.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ConsentStatus.OFFERED.value)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("consent.id"))
    # For a re-consent: only the sections that changed are read (None: every section).
    reading_keys_json: Mapped[str | None] = mapped_column(Text)
    offered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reading_position: Mapped[int] = mapped_column(Integer, default=0)
    reading_completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    comprehension_completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    choices_saved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[User] = relationship(foreign_keys=[patient_id])
    therapist: Mapped[User] = relationship(foreign_keys=[therapist_id])
    version: Mapped[DocumentVersion] = relationship()
    text: Mapped[DocumentText] = relationship()
    replaces: Mapped[Consent | None] = relationship(remote_side=[id])
    choices: Mapped[list[OptionalChoice]] = relationship(order_by="OptionalChoice.id")
    signatures: Mapped[list[Signature]] = relationship(order_by="Signature.id")
    questions_asked: Mapped[list[PatientQuestion]] = relationship(
        order_by="PatientQuestion.asked_at"
    )

    withdrawals: Mapped[list[Withdrawal]] = relationship(
        order_by="Withdrawal.id", back_populates="consent"
    )

    __table_args__ = (
        # One open consent per patient and version; after a withdrawal, rejoining is a new one.
        Index(
            "uq_consent_patient_version_open",
            "patient_id",
            "version_id",
            unique=True,
            sqlite_where=sql_text("status != 'withdrawn'"),
            postgresql_where=sql_text("status != 'withdrawn'"),
        ),
        CheckConstraint(f"status IN ({_STATUSES})", name="status_known"),
    )

    @property
    def sections(self) -> list[DocumentSection]:
        """The sections this patient reads, in order."""
        keys = set(self.reading_order([section.key for section in self.text.sections]))
        return [section for section in self.text.sections if section.key in keys]

    def reading_order(self, text_keys: Sequence[str]) -> list[str]:
        """Of the text's section keys (in order), those this patient reads: all of them, or the
        ones chosen for them when the reading was shortened."""
        if self.reading_keys_json is None:
            return list(text_keys)
        chosen = set(json.loads(self.reading_keys_json))
        return [key for key in text_keys if key in chosen]

    @property
    def questions(self) -> list[ComprehensionQuestion]:
        """The questions this patient answers: those about the sections they read."""
        keys = {section.key for section in self.sections}
        return [q for q in self.text.questions if q.section_key in keys]

    def signature_of(self, role: SignerRole) -> Signature | None:
        return next((s for s in self.signatures if s.role == role), None)

    @property
    def choice_map(self) -> dict[str, bool]:
        """The choices as signed (the signature binds these; they never change)."""
        return {choice.item_key: choice.agreed for choice in self.choices}

    @property
    def withdrawn_items(self) -> set[str]:
        return {w.item_key for w in self.withdrawals if w.scope == WithdrawalScope.OPTIONAL_ITEM}

    @property
    def effective_choices(self) -> dict[str, bool]:
        """The choices in force today: as signed, less any optional item since withdrawn."""
        withdrawn = self.withdrawn_items
        return {key: agreed and key not in withdrawn for key, agreed in self.choice_map.items()}

    @property
    def treatment_stopped(self) -> bool:
        """Stopping treatment outlasts a re-consent (the optional choices are made afresh)."""
        consent: Consent | None = self
        while consent is not None:
            if any(w.scope == WithdrawalScope.TREATMENT for w in consent.withdrawals):
                return True
            consent = consent.replaces
        return False

    @property
    def study_withdrawal(self) -> Withdrawal | None:
        return next((w for w in self.withdrawals if w.scope == WithdrawalScope.STUDY), None)


class SectionVisit(Base):
    """Time spent on one section page, for the panel's analytics (never shown to patients)."""

    __tablename__ = "section_visit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("consent.id"), index=True)
    section_key: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    seconds: Mapped[int | None] = mapped_column(Integer)


class PatientQuestion(Base):
    """A question the patient asked the study team while reading; their therapist sees it."""

    __tablename__ = "patient_question"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("consent.id"), index=True)
    section_key: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(EncryptedText)  # may say things about their health
    asked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptionalChoice(Base):
    __tablename__ = "optional_choice"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("consent.id"), index=True)
    item_key: Mapped[str] = mapped_column(String(64))
    agreed: Mapped[bool] = mapped_column(Boolean)
    chosen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("consent_id", "item_key", name="uq_optional_choice_item"),)


class Signature(Base):
    """One signature's manifestation (21 CFR 11.50) and its binding to the record (11.70)."""

    __tablename__ = "signature"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("consent.id"), index=True)
    signer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    role: Mapped[str] = mapped_column(String(32))
    printed_name: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(16))
    image_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    bound_json: Mapped[str] = mapped_column(Text)
    binding_hash: Mapped[str] = mapped_column(String(64))

    signer: Mapped[User] = relationship()

    __table_args__ = (
        # One signature per role per consent: a double submit cannot make a second record.
        UniqueConstraint("consent_id", "role", name="uq_signature_consent_role"),
        CheckConstraint("role IN ('participant', 'person_taking_consent')", name="role_known"),
        CheckConstraint("method IN ('drawn', 'typed', 'password')", name="method_known"),
    )


class Withdrawal(Base):
    """A patient's decision to stop, in whole or in part. Written once and never changed,
    except that the therapist acknowledges it once future sessions are cancelled."""

    __tablename__ = "withdrawal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("consent.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    item_key: Mapped[str] = mapped_column(String(64), default="")  # "" unless an optional item
    data_option_key: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(EncryptedText)  # optional, may be personal
    channel: Mapped[str] = mapped_column(String(16))
    communicated_on: Mapped[dt.date] = mapped_column(Date)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attestation: Mapped[str | None] = mapped_column(Text)  # staff-recorded withdrawals only
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    consent: Mapped[Consent] = relationship(back_populates="withdrawals")
    recorded_by: Mapped[User] = relationship(foreign_keys=[recorded_by_id])
    acknowledged_by: Mapped[User | None] = relationship(foreign_keys=[acknowledged_by_id])

    __table_args__ = (
        # A double submit or a second tab cannot withdraw the same thing twice.
        UniqueConstraint("consent_id", "scope", "item_key", name="uq_withdrawal_once"),
        CheckConstraint("scope IN ('study', 'treatment', 'optional_item')", name="scope_known"),
        CheckConstraint(
            "channel IN ('portal', 'phone', 'in_person', 'letter', 'email')", name="channel_known"
        ),
        CheckConstraint(
            "(scope = 'optional_item') = (item_key != '')", name="item_only_for_item_scope"
        ),
    )

    @property
    def data_option(self) -> WithdrawalDataOption | None:
        return next(
            (o for o in self.consent.text.withdrawal_options if o.key == self.data_option_key),
            None,
        )

    @property
    def item(self) -> OptionalConsentItem | None:
        return next(
            (i for i in self.consent.text.optional_consents if i.key == self.item_key), None
        )

    @property
    def recorded_by_staff(self) -> bool:
        return self.channel != WithdrawalChannel.PORTAL
