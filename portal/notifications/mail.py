"""Sending the outbox by SMTP, when a mail server is configured.

Messages are sent after the change that queued them has committed, by `flask mail
send-pending` (run it every minute from cron or a timer). A failure leaves the message
queued and tries again later, waiting longer each time.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from portal.core import audit
from portal.core.db import utcnow
from portal.notifications.models import OutboxMessage

FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_WAIT = dt.timedelta(hours=6)
BATCH = 100
CLAIM_FOR = dt.timedelta(minutes=5)  # longer than one SMTP attempt can take


@dataclass(frozen=True)
class Outcome:
    sent: int
    failed: int


def mail_configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


def send_pending(session: Session, now: dt.datetime | None = None) -> Outcome:
    """Send every message that is due. Each is claimed first (in its own short transaction),
    so two runs at once never send one twice; each result is committed on its own."""
    now = now or utcnow()
    due = session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now, _free(now))
        .order_by(OutboxMessage.id)
        .limit(BATCH)
    ).all()
    session.commit()
    sent = failed = 0
    for message_id in due:
        if not _claim(session, message_id, now):
            continue  # another sender has it
        message = session.get(OutboxMessage, message_id)
        message.attempts += 1
        message.claimed_until = None
        try:
            _deliver(message)
        except (OSError, smtplib.SMTPException) as exc:
            failed += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:300]
            message.next_attempt_at = now + retry_wait(message.attempts)
            audit.record(
                session,
                "notification.send_failed",
                actor=audit.SYSTEM,
                object_type="outbox_message",
                object_id=message.id,
                after={"attempts": message.attempts, "error": type(exc).__name__},
            )
        else:
            sent += 1
            message.sent_at, message.last_error = utcnow(), None
            audit.record(
                session,
                "notification.sent",
                actor=audit.SYSTEM,
                object_type="outbox_message",
                object_id=message.id,
                after={"attempts": message.attempts},
            )
        session.commit()
    return Outcome(sent, failed)


def _free(now: dt.datetime):
    return or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now)


def _claim(session: Session, message_id: int, now: dt.datetime) -> bool:
    claimed = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None), _free(now))
        .values(claimed_until=now + CLAIM_FOR)
    ).rowcount
    session.commit()
    return claimed == 1


def retry_wait(attempts: int) -> dt.timedelta:
    """1, 2, 4, 8 ... minutes, never more than six hours."""
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_WAIT)


def _deliver(message: OutboxMessage) -> None:
    config = current_app.config
    email = EmailMessage()
    email["From"] = config["MAIL_FROM"]
    email["To"] = message.address
    email["Subject"] = message.subject
    link = config["PORTAL_BASE_URL"].rstrip("/") + (message.secret_link or message.link)
    email.set_content(f"{message.body}\n\n{link}\n")
    with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=30) as smtp:
        if config["MAIL_USE_STARTTLS"]:
            smtp.starttls(context=ssl.create_default_context())
        if config["MAIL_USERNAME"]:
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
        smtp.send_message(email)
