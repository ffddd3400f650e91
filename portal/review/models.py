"""Ethics review: protocols, their submissions (initial and modifications), the panel's
declarations, comments, meetings, votes and opinions, and the sealed letters and minutes.

Declarations, comments, votes, opinions and sealed papers are written once (database triggers
refuse changes); a protocol's status, a submission's status and a condition's "met" mark move,
and every move is audited.
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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import User
from portal.consent.models import DocumentVersion
from portal.core.crypto import EncryptedText
from portal.core.db import Base, UTCDateTime, utcnow


class ProtocolStatus(StrEnum):
    UNDER_REVIEW = "under_review"  # the initial submission has no final opinion yet
    APPROVED = "approved"
    NOT_APPROVED = "not_approved"
    SUSPENDED = "suspended"  # no new consent; existing participants keep records and withdrawal
    TERMINATED = "terminated"


class SubmissionKind(StrEnum):
    INITIAL = "initial"
    # The UK terms for changes in force since 28 April 2026.
    SUBSTANTIAL = "substantial"
    IMPORTANT_DETAIL = "important_detail"
    MINOR = "minor"


class SubmissionStatus(StrEnum):
    IN_REVIEW = "in_review"
    INFORMATION_REQUESTED = "information_requested"  # provisional opinion: the clock is stopped
    DECIDED = "decided"


class VoteChoice(StrEnum):
    FOR = "for"
    AGAINST = "against"
    ABSTAIN = "abstain"


class OpinionCategory(StrEnum):
    FAVOURABLE = "favourable"
    FAVOURABLE_WITH_CONDITIONS = "favourable_with_conditions"
    PROVISIONAL = "provisional"  # further information requested
    UNFAVOURABLE = "unfavourable"


class MembershipType(StrEnum):
    """Each panel member is lay or expert; quorum needs at least one of each."""

    LAY = "lay"
    EXPERT = "expert"


class PaperKind(StrEnum):
    DECISION_LETTER = "decision_letter"
    MINUTES = "minutes"  # the whole meeting: for the panel
    MINUTES_EXTRACT = "minutes_extract"  # one item: for that submission's investigator


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Protocol(Base):
    __tablename__ = "protocol"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # e.g. the IRAS number
    title: Mapped[str] = mapped_column(String(300))
    sites: Mapped[str] = mapped_column(Text)  # one trial location per line
    chief_investigator: Mapped[str] = mapped_column(String(200))
    # Research-team email addresses, one per line: a panel member named here is recused.
    team_emails: Mapped[str] = mapped_column(Text, default="")
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=ProtocolStatus.UNDER_REVIEW.value)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    submitted_by: Mapped[User] = relationship()
    submissions: Mapped[list[Submission]] = relationship(
        back_populates="protocol", order_by="Submission.id"
    )

    __table_args__ = (CheckConstraint(f"status IN ({_values(ProtocolStatus)})", "status_known"),)

    @property
    def site_list(self) -> list[str]:
        return [line.strip() for line in self.sites.splitlines() if line.strip()]

    @property
    def team_email_list(self) -> list[str]:
        return [line.strip().lower() for line in self.team_emails.splitlines() if line.strip()]

    @property
    def accepts_new_consent(self) -> bool:
        return self.status not in (ProtocolStatus.SUSPENDED, ProtocolStatus.TERMINATED)


class Submission(Base):
    """One application to the panel: the protocol's first, or a later modification."""

    __tablename__ = "submission"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocol.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(Text)  # for a modification, the summary of changes
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(24), default=SubmissionStatus.IN_REVIEW.value)
    # Each provisional opinion and reply starts a new round of votes.
    round: Mapped[int] = mapped_column(Integer, default=1)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    file_name: Mapped[str | None] = mapped_column(String(200))
    file_size: Mapped[int | None] = mapped_column(Integer)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    file_content: Mapped[bytes | None] = mapped_column(LargeBinary)

    protocol: Mapped[Protocol] = relationship(back_populates="submissions")
    submitted_by: Mapped[User] = relationship()
    versions: Mapped[list[SubmittedVersion]] = relationship(order_by="SubmittedVersion.id")
    assignments: Mapped[list[ReviewerAssignment]] = relationship(order_by="ReviewerAssignment.id")
    declarations: Mapped[list[InterestDeclaration]] = relationship(
        order_by="InterestDeclaration.id"
    )
    clock_stops: Mapped[list[ClockStop]] = relationship(order_by="ClockStop.id")
    opinions: Mapped[list[Opinion]] = relationship(order_by="Opinion.id")
    responses: Mapped[list[InformationResponse]] = relationship(order_by="InformationResponse.id")

    __table_args__ = (
        CheckConstraint(f"kind IN ({_values(SubmissionKind)})", "kind_known"),
        CheckConstraint(f"status IN ({_values(SubmissionStatus)})", "status_known"),
        CheckConstraint("round >= 1", "round_positive"),
    )

    @property
    def reference(self) -> str:
        return f"S-{self.id:05d}"

    @property
    def is_open(self) -> bool:
        return self.status != SubmissionStatus.DECIDED

    @property
    def latest_opinion(self) -> Opinion | None:
        return self.opinions[-1] if self.opinions else None


class SubmittedVersion(Base):
    """A consent document version that a submission asks the panel to approve."""

    __tablename__ = "submitted_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("document_version.id"), index=True)

    version: Mapped[DocumentVersion] = relationship()

    __table_args__ = (UniqueConstraint("submission_id", "version_id", name="uq_submitted_version"),)


class ReviewerAssignment(Base):
    __tablename__ = "reviewer_assignment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    assigned_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[User] = relationship(foreign_keys=[member_id])

    __table_args__ = (UniqueConstraint("submission_id", "member_id", name="uq_reviewer"),)


class InterestDeclaration(Base):
    """A member's declaration of interests for one submission. Written once."""

    __tablename__ = "interest_declaration"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    has_conflict: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[str | None] = mapped_column(Text)
    declared_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[User] = relationship()

    __table_args__ = (UniqueConstraint("submission_id", "member_id", name="uq_declaration"),)


class ReviewComment(Base):
    """Confidential discussion: on the submission, its protocol document or a consent section."""

    __tablename__ = "review_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("document_version.id"))
    section_key: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()

    __table_args__ = (
        CheckConstraint("target IN ('submission', 'protocol_document', 'section')", "target_known"),
        CheckConstraint(
            "(target = 'section') = (version_id IS NOT NULL AND section_key IS NOT NULL)",
            "section_named",
        ),
    )


class ClockStop(Base):
    """The 60-day clock stops while the panel waits for further information."""

    __tablename__ = "clock_stop"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    stopped_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    restarted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class InformationResponse(Base):
    """The investigator's reply to a provisional opinion. Written once."""

    __tablename__ = "information_response"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("submission_id", "round", name="uq_response_round"),)


class PanelMeeting(Base):
    __tablename__ = "panel_meeting"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    held_on: Mapped[dt.date] = mapped_column(Date)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list[MeetingItem]] = relationship(order_by="MeetingItem.id")
    attendance: Mapped[list[MeetingAttendance]] = relationship(order_by="MeetingAttendance.id")

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def attendee_ids(self) -> set[int]:
        return {a.member_id for a in self.attendance}


class MeetingItem(Base):
    """A submission on a meeting's agenda."""

    __tablename__ = "meeting_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("panel_meeting.id"), index=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)

    submission: Mapped[Submission] = relationship()

    __table_args__ = (UniqueConstraint("meeting_id", "submission_id", name="uq_agenda_item"),)


class MeetingAttendance(Base):
    __tablename__ = "meeting_attendance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("panel_meeting.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))

    member: Mapped[User] = relationship()

    __table_args__ = (UniqueConstraint("meeting_id", "member_id", name="uq_attendance"),)


class Vote(Base):
    """One member's vote in one round of a submission: once only (unique), never changed."""

    __tablename__ = "review_vote"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("panel_meeting.id"))
    choice: Mapped[str] = mapped_column(String(8))
    cast_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[User] = relationship()

    __table_args__ = (
        UniqueConstraint("submission_id", "round", "member_id", name="uq_vote_once"),
        CheckConstraint(f"choice IN ({_values(VoteChoice)})", "choice_known"),
    )


class Opinion(Base):
    """The panel's opinion on one round of a submission, with the vote counts it rests on."""

    __tablename__ = "opinion"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[str] = mapped_column(Text)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("panel_meeting.id"))
    votes_for: Mapped[int] = mapped_column(Integer)
    votes_against: Mapped[int] = mapped_column(Integer)
    votes_abstain: Mapped[int] = mapped_column(Integer)
    present: Mapped[int] = mapped_column(Integer)  # non-conflicted members counted for quorum
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="opinions")
    recorded_by: Mapped[User] = relationship()
    conditions: Mapped[list[OpinionCondition]] = relationship(order_by="OpinionCondition.id")
    meeting: Mapped[PanelMeeting | None] = relationship()

    __table_args__ = (
        UniqueConstraint("submission_id", "round", name="uq_opinion_round"),
        CheckConstraint(f"category IN ({_values(OpinionCategory)})", "category_known"),
    )

    @property
    def conditions_met(self) -> bool:
        return all(c.met_at is not None for c in self.conditions)


class OpinionCondition(Base):
    """An additional condition of a favourable opinion; the chair marks it met, with evidence."""

    __tablename__ = "opinion_condition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    opinion_id: Mapped[int] = mapped_column(ForeignKey("opinion.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    met_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    met_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    evidence: Mapped[str | None] = mapped_column(Text)


class PanelPaper(Base):
    """A sealed decision letter or set of minutes. Written once; verifiable like a record."""

    __tablename__ = "panel_paper"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    opinion_id: Mapped[int | None] = mapped_column(ForeignKey("opinion.id"), unique=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("panel_meeting.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        CheckConstraint(f"kind IN ({_values(PaperKind)})", "kind_known"),
        UniqueConstraint("meeting_id", "submission_id", name="uq_minutes_extract"),
        CheckConstraint(
            "(kind = 'decision_letter' AND opinion_id IS NOT NULL AND meeting_id IS NULL) OR "
            "(kind = 'minutes' AND meeting_id IS NOT NULL AND opinion_id IS NULL "
            "AND submission_id IS NULL) OR "
            "(kind = 'minutes_extract' AND meeting_id IS NOT NULL AND submission_id IS NOT NULL "
            "AND opinion_id IS NULL)",
            "paper_names_its_subject",
        ),
    )
