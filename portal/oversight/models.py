"""Runs of the audit chain's verification, kept so that the panel sees when it was last checked
without recomputing a million hashes on every page."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.db import Base, UTCDateTime, utcnow


class ChainVerification(Base):
    """One verification of the whole chain and its signed checkpoints. Written once."""

    __tablename__ = "chain_verification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    verified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Null when run by the system (`flask audit verify`, for example from cron).
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    events_verified: Mapped[int] = mapped_column(BigInteger)
    intact: Mapped[bool] = mapped_column(Boolean)
    first_bad_seq: Mapped[int | None] = mapped_column(BigInteger)
    problem: Mapped[str | None] = mapped_column(Text)
    checkpoints_checked: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class QuestionTally(Base):
    """Running totals for one comprehension question of one version, kept in the same
    transaction as each answer, so that item analysis at 100,000 patients reads a few rows
    instead of aggregating millions of attempts. Derived data: `tallies.rebuild` recomputes it
    from the attempts, and the tests check the two agree."""

    __tablename__ = "question_tally"

    version_id: Mapped[int] = mapped_column(ForeignKey("document_version.id"), primary_key=True)
    question_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    patients: Mapped[int] = mapped_column(Integer, default=0)  # who answered at least once
    first_correct: Mapped[int] = mapped_column(Integer, default=0)  # right at the first attempt
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    teach_backs: Mapped[int] = mapped_column(Integer, default=0)  # patients who needed one


class SectionTally(Base):
    """Running totals of the time spent reading one section of one version (see above)."""

    __tablename__ = "section_tally"

    version_id: Mapped[int] = mapped_column(ForeignKey("document_version.id"), primary_key=True)
    section_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    visits: Mapped[int] = mapped_column(Integer, default=0)  # visits with a time recorded
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
