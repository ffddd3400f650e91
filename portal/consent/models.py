"""Consent documents, their versions (with a lifecycle) and each version's text per language.

A version's text, sections, questions, optional consents and withdrawal options are written
once at import and never change (database triggers, created by the consent documents
migration, refuse it); only the version's lifecycle state moves, and every move is audited.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from portal.core.db import Base, UTCDateTime, utcnow


class DocumentError(Exception):
    """A refused document operation; the message is safe to show."""


class VersionStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"


# The only moves a version may make; superseded and withdrawn are final.
TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.DRAFT: frozenset({VersionStatus.SUBMITTED, VersionStatus.WITHDRAWN}),
    VersionStatus.SUBMITTED: frozenset({VersionStatus.APPROVED, VersionStatus.WITHDRAWN}),
    VersionStatus.APPROVED: frozenset({VersionStatus.ACTIVE, VersionStatus.WITHDRAWN}),
    VersionStatus.ACTIVE: frozenset({VersionStatus.SUPERSEDED, VersionStatus.WITHDRAWN}),
    VersionStatus.SUPERSEDED: frozenset(),
    VersionStatus.WITHDRAWN: frozenset(),
}
_STATUS_LIST = ", ".join(f"'{status.value}'" for status in VersionStatus)


class ConsentDocument(Base):
    """A consent document (one folder of consent_docs/), e.g. the trial's information sheet."""

    __tablename__ = "consent_document"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document",
        order_by="(DocumentVersion.version_major, DocumentVersion.version_minor)",
    )

    @classmethod
    def by_slug(cls, session: Session, slug: str) -> ConsentDocument | None:
        return session.scalar(select(cls).where(cls.slug == slug))

    @property
    def active_version(self) -> DocumentVersion | None:
        return next((v for v in self.versions if v.status == VersionStatus.ACTIVE), None)


class DocumentVersion(Base):
    """One version of a document, in every language, moving through review to use."""

    __tablename__ = "document_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("consent_document.id"), index=True)
    version: Mapped[str] = mapped_column(String(20))
    version_major: Mapped[int] = mapped_column(Integer)
    version_minor: Mapped[int] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(String(100))
    cooling_off_hours: Mapped[int] = mapped_column(Integer)
    signatures_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.DRAFT.value)
    material_change: Mapped[bool | None] = mapped_column(Boolean)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    approval_reference: Mapped[str | None] = mapped_column(String(200))

    document: Mapped[ConsentDocument] = relationship(back_populates="versions")
    texts: Mapped[list[DocumentText]] = relationship(
        back_populates="version", order_by="DocumentText.language"
    )

    __table_args__ = (
        UniqueConstraint("document_id", "version", name="uq_document_version_number"),
        CheckConstraint(f"status IN ({_STATUS_LIST})", name="status_known"),
        CheckConstraint("cooling_off_hours >= 0", name="cooling_off_not_negative"),
        # At most one active version per document.
        Index(
            "uq_document_version_one_active",
            "document_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    @property
    def label(self) -> str:
        return f"{self.document.slug} v{self.version}"

    @property
    def signatures(self) -> dict[str, str]:
        return json.loads(self.signatures_json)

    @property
    def languages(self) -> list[str]:
        return [t.language for t in self.texts]

    def text_in(self, language: str) -> DocumentText | None:
        return next((t for t in self.texts if t.language == language), None)

    def move_to(self, target: VersionStatus) -> VersionStatus:
        """Change status if the lifecycle allows it; return the old status."""
        current = VersionStatus(self.status)
        if target not in TRANSITIONS[current]:
            raise DocumentError(f"{self.label} is {current.value} and cannot become {target.value}")
        self.status = target.value
        self.status_changed_at = utcnow()
        return current

    def audit_view(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "material_change": self.material_change,
            "approval_reference": self.approval_reference,
        }


class DocumentText(Base):
    """A version's complete text in one language, exactly as imported (never changed)."""

    __tablename__ = "document_text"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("document_version.id"), index=True)
    language: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    introduction: Mapped[str] = mapped_column(Text)
    # The imported file as it was, 50 KB or so: kept for the record, never shown, so not loaded
    # with the text (every section page loads its text).
    source: Mapped[str] = mapped_column(Text, deferred=True)
    source_path: Mapped[str] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    version: Mapped[DocumentVersion] = relationship(back_populates="texts")
    sections: Mapped[list[DocumentSection]] = relationship(order_by="DocumentSection.position")
    questions: Mapped[list[ComprehensionQuestion]] = relationship(
        order_by="ComprehensionQuestion.position"
    )
    optional_consents: Mapped[list[OptionalConsentItem]] = relationship(
        order_by="OptionalConsentItem.position"
    )
    withdrawal_options: Mapped[list[WithdrawalDataOption]] = relationship(
        order_by="WithdrawalDataOption.position"
    )

    __table_args__ = (
        UniqueConstraint("version_id", "language", name="uq_document_text_language"),
        CheckConstraint("language IN ('en-GB', 'cy')", name="language_known"),
    )

    def section(self, key: str) -> DocumentSection | None:
        return next((s for s in self.sections if s.key == key), None)


class DocumentSection(Base):
    __tablename__ = "document_section"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text_id: Mapped[int] = mapped_column(ForeignKey("document_text.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    elements_json: Mapped[str] = mapped_column(Text)
    content_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("text_id", "key", name="uq_document_section_key"),)

    @property
    def elements(self) -> list[str]:
        return json.loads(self.elements_json)


class ComprehensionQuestion(Base):
    __tablename__ = "comprehension_question"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text_id: Mapped[int] = mapped_column(ForeignKey("document_text.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    section_key: Mapped[str] = mapped_column(String(64))
    element: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    choices_json: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(String(64))
    explanation: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("text_id", "key", name="uq_comprehension_question_key"),)

    @property
    def choices(self) -> list[dict[str, str]]:
        return json.loads(self.choices_json)


class OptionalConsentItem(Base):
    __tablename__ = "optional_consent_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text_id: Mapped[int] = mapped_column(ForeignKey("document_text.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    statement: Mapped[str] = mapped_column(Text)
    meaning: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("text_id", "key", name="uq_optional_consent_item_key"),)


class WithdrawalDataOption(Base):
    __tablename__ = "withdrawal_data_option"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text_id: Mapped[int] = mapped_column(ForeignKey("document_text.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (UniqueConstraint("text_id", "key", name="uq_withdrawal_data_option_key"),)
