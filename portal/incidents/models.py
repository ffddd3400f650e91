"""Incidents: a concern about a therapist, reported straight to the ethics panel.

Narratives, notes, the therapist's response and evidence are encrypted at rest. Timeline
entries are written once. Holds record when a therapist may not take or countersign consent.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import User
from portal.core.crypto import EncryptedBytes, EncryptedText
from portal.core.db import Base, UTCDateTime, utcnow


class Category(StrEnum):
    TOUCH = "touch"  # physical touch beyond what the protocol allows
    SEXUAL = "sexual"  # sexual contact or advances
    DUAL_RELATIONSHIP = "dual_relationship"
    OUTSIDE_CONTACT = "outside_contact"  # contact outside sessions
    ALONE = "alone"  # a therapist alone with a patient against the two-therapist rule
    COERCION = "coercion"  # coercion or undue influence, including in the altered state
    CONFIDENTIALITY = "confidentiality"
    OTHER = "other"


class SessionKind(StrEnum):
    DOSING = "dosing"
    OTHER_SESSION = "other_session"
    OUTSIDE = "outside"
    NOT_SURE = "not_sure"


class FeelsSafe(StrEnum):
    YES = "yes"
    NO = "no"
    UNSURE = "unsure"


class Severity(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    SERIOUS = "serious"


class Status(StrEnum):
    REPORTED = "reported"  # waiting for the chair's triage
    INVESTIGATING = "investigating"
    RESPONSE_INVITED = "response_invited"  # the therapist has been told and may respond
    CLOSED = "closed"  # an outcome is recorded


class Outcome(StrEnum):
    NO_CASE = "no_case"
    RETRAINING = "retraining"  # retraining or supervision required
    SUSPENSION = "suspension"
    REFERRAL = "referral"  # referral to the professional regulator


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Incident(Base):
    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    # Staff may ask for their name not to be shown to the panel; it is then never displayed.
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    category: Mapped[str] = mapped_column(String(24))
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    session_kind: Mapped[str] = mapped_column(String(16))
    what_happened: Mapped[str] = mapped_column(EncryptedText)
    others_involved: Mapped[str | None] = mapped_column(EncryptedText)
    feels_safe: Mapped[str] = mapped_column(String(8))
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default=Status.REPORTED.value)

    severity: Mapped[str | None] = mapped_column(String(12))
    triaged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    serious_breach_due: Mapped[bool] = mapped_column(Boolean, default=False)
    serious_breach_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    shared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    response: Mapped[str | None] = mapped_column(EncryptedText)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_reasons: Mapped[str | None] = mapped_column(EncryptedText)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    reporter: Mapped[User] = relationship(foreign_keys=[reporter_id])
    therapist: Mapped[User] = relationship(foreign_keys=[therapist_id])
    entries: Mapped[list[IncidentEntry]] = relationship(order_by="IncidentEntry.id")
    assignments: Mapped[list[IncidentAssignment]] = relationship()
    conflicts: Mapped[list[IncidentConflict]] = relationship()

    __table_args__ = (
        CheckConstraint(f"category IN ({_values(Category)})", name="category_known"),
        CheckConstraint(f"session_kind IN ({_values(SessionKind)})", name="session_kind_known"),
        CheckConstraint(f"feels_safe IN ({_values(FeelsSafe)})", name="feels_safe_known"),
        CheckConstraint(f"status IN ({_values(Status)})", name="status_known"),
        CheckConstraint(
            f"severity IS NULL OR severity IN ({_values(Severity)})", name="severity_known"
        ),
        CheckConstraint(
            f"outcome IS NULL OR outcome IN ({_values(Outcome)})", name="outcome_known"
        ),
    )

    @property
    def reference(self) -> str:
        return f"C-{self.id:05d}"

    @property
    def is_open(self) -> bool:
        return self.status != Status.CLOSED

    @property
    def assigned_ids(self) -> set[int]:
        return {a.member_id for a in self.assignments}

    @property
    def recused_ids(self) -> set[int]:
        return {c.member_id for c in self.conflicts}


class IncidentEntry(Base):
    """One step on an incident's timeline: a note, evidence, a decision. Written once."""

    __tablename__ = "incident_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(EncryptedText)
    recording_reference: Mapped[str | None] = mapped_column(String(200))
    file_name: Mapped[str | None] = mapped_column(String(200))
    file_type: Mapped[str | None] = mapped_column(String(64))
    file_size: Mapped[int | None] = mapped_column(Integer)
    file_content: Mapped[bytes | None] = mapped_column(EncryptedBytes)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()

    __table_args__ = (
        CheckConstraint(
            "kind IN ('note', 'evidence', 'triage', 'assignment', 'shared', 'response', "
            "'outcome', 'breach_reported')",
            name="kind_known",
        ),
    )


class IncidentAssignment(Base):
    __tablename__ = "incident_assignment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[User] = relationship()

    __table_args__ = (UniqueConstraint("incident_id", "member_id", name="uq_incident_member"),)


class IncidentConflict(Base):
    """A panel member's declared interest: they are recused from the incident."""

    __tablename__ = "incident_conflict"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    declared_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("incident_id", "member_id", name="uq_incident_conflict"),)


class TherapistHold(Base):
    """While a hold is not lifted the therapist cannot take or countersign consent, and the
    site sees only "unavailable"."""

    __tablename__ = "therapist_hold"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # a safeguard during triage, or a suspension
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("kind IN ('safeguard', 'suspension')", name="kind_known"),)
