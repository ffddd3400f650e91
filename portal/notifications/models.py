"""The outbox: one row per message, written in the same transaction as the change it reports.

A rolled-back change therefore sends nothing, and a mail server that is down loses nothing:
the row waits until it is sent. Each message is also shown to its recipient in the portal.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import User
from portal.core.crypto import EncryptedText
from portal.core.db import Base, UTCDateTime, utcnow


class OutboxMessage(Base):
    __tablename__ = "outbox_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A user, or (for an invitation) only an address: the account does not exist yet.
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    recipient_email: Mapped[str | None] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(48))
    about: Mapped[str | None] = mapped_column(String(64), index=True)  # e.g. "incident:5"
    # Written in the recipient's language, with no health details: a pointer to sign in.
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(300))  # a path inside the portal
    # An invitation or password-reset path carries a one-time token: kept encrypted.
    secret_link: Mapped[str | None] = mapped_column(EncryptedText)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A sender claims a message before sending, so that two runs never send it twice.
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))

    recipient: Mapped[User | None] = relationship()

    @property
    def address(self) -> str:
        return self.recipient_email or self.recipient.email
