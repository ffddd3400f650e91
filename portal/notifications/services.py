"""Queue notifications with the change that causes them; list and mark them read."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.accounts.models import User
from portal.core import audit
from portal.core.db import utcnow
from portal.notifications.models import OutboxMessage


@dataclass(frozen=True)
class MessageKind:
    """What a kind of message says. Deliberately vague: email is not the place for health data."""

    subject: object
    body: object


KINDS: dict[str, MessageKind] = {
    "withdrawal": MessageKind(
        _l("Consent & Ethics Portal: a patient's consent has changed"),
        _l(
            "One of the consents you look after has changed and may need you to act. "
            "Sign in to the portal to see the details."
        ),
    ),
    "incident": MessageKind(
        _l("Consent & Ethics Portal: a concern has been reported to the panel"),
        _l("A new concern is waiting for triage. Sign in to the portal to see it."),
    ),
    "incident_response": MessageKind(
        _l("Consent & Ethics Portal: the ethics panel asks for your response"),
        _l(
            "The ethics panel would like your response on a matter. "
            "Sign in to the portal to see it."
        ),
    ),
    "incident_outcome": MessageKind(
        _l("Consent & Ethics Portal: an update on the concern you reported"),
        _l(
            "The ethics panel has finished looking into your concern. "
            "Sign in to the portal to see the outcome."
        ),
    ),
}


def queue(session: Session, recipient: User, kind: str, link: str) -> OutboxMessage:
    """Add a message to the outbox in the caller's transaction, in the recipient's language."""
    template = KINDS[kind]
    with force_locale(recipient.locale):
        subject, body = str(template.subject), str(template.body)
    message = OutboxMessage(
        recipient_id=recipient.id,
        kind=kind,
        subject=subject,
        body=body,
        link=link,
        next_attempt_at=utcnow(),
    )
    session.add(message)
    session.flush()
    audit.record(
        session,
        "notification.queued",
        actor=audit.SYSTEM,
        object_type="outbox_message",
        object_id=message.id,
        after={"recipient_id": recipient.id, "kind": kind},
    )
    return message


def inbox(session: Session, user: User, limit: int = 50) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.recipient_id == user.id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
    )


def unread_count(session: Session, user: User) -> int:
    return session.scalar(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.recipient_id == user.id, OutboxMessage.read_at.is_(None)
        )
    )


def mark_read(session: Session, user: User, message: OutboxMessage) -> None:
    if message.read_at is None:
        message.read_at = utcnow()
        audit.record(
            session,
            "notification.read",
            actor=audit.Actor.of(user),
            object_type="outbox_message",
            object_id=message.id,
        )
