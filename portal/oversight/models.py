"""Runs of the audit chain's verification, kept so that the panel sees when it was last checked
without recomputing a million hashes on every page."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, Text
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
