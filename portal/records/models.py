"""Sealed PDF records, stored in the database so that nothing is lost when servers are added."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.consent.journey_models import Consent, Withdrawal
from portal.core.db import Base, UTCDateTime, utcnow


class RecordKind(StrEnum):
    CONSENT = "consent"
    WITHDRAWAL = "withdrawal"  # the receipt for a withdrawal


class Record(Base):
    """One sealed PDF. Written once; database triggers refuse changes and deletions."""

    __tablename__ = "record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)  # the id printed on the record
    consent_id: Mapped[int] = mapped_column(ForeignKey("consent.id"), index=True)
    withdrawal_id: Mapped[int | None] = mapped_column(
        ForeignKey("withdrawal.id"), index=True, unique=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)

    consent: Mapped[Consent] = relationship()
    withdrawal: Mapped[Withdrawal | None] = relationship()

    __table_args__ = (
        CheckConstraint("kind IN ('consent', 'withdrawal')", name="kind_known"),
        CheckConstraint(
            "(kind = 'withdrawal') = (withdrawal_id IS NOT NULL)", name="receipt_has_withdrawal"
        ),
    )
