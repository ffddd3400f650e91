"""Queue notifications with the change that causes them; list and mark them read."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, select
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
    "invitation": MessageKind(
        _l("You are invited to the Consent & Ethics Portal"),
        _l(
            "You have been invited to set up an account on the Consent & Ethics Portal. "
            "Open the link below to choose your password. It works once, for a limited time."
        ),
    ),
    "password_reset": MessageKind(
        _l("Consent & Ethics Portal: set a new password"),
        _l(
            "Your study team has made you a link to set a new password. "
            "It works once, for a limited time. If you did not ask for it, tell your study team."
        ),
    ),
    "reconsent": MessageKind(
        _l("Consent & Ethics Portal: there is something new for you to read"),
        _l(
            "Some information you agreed to has changed. Please sign in to the portal to read "
            "what is new and decide again. Nothing changes until you do."
        ),
    ),
    "triage_reminder": MessageKind(
        _l("Consent & Ethics Portal: a concern is waiting for triage"),
        _l("A concern has waited longer than the triage target. Sign in to the portal to see it."),
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
    "review_submitted": MessageKind(
        _l("Consent & Ethics Portal: a new submission for ethics review"),
        _l("A protocol or modification has been submitted. Sign in to the portal to see it."),
    ),
    "review_assigned": MessageKind(
        _l("Consent & Ethics Portal: you have been asked to review a submission"),
        _l(
            "The chair has asked you to review a submission. Sign in to the portal to declare "
            "your interests and read it."
        ),
    ),
    "review_opinion": MessageKind(
        _l("Consent & Ethics Portal: the ethics panel has given its opinion"),
        _l(
            "The ethics panel has recorded its opinion on your submission. Sign in to the "
            "portal to read the decision letter."
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


def path_for(endpoint: str, **values) -> str:
    """A path inside the portal, in a request or not (a CLI command can notify people too)."""
    return current_app.url_map.bind("localhost").build(endpoint, values)


def queue(
    session: Session, recipient: User, kind: str, link: str, about: str | None = None
) -> OutboxMessage:
    """Add a message to the outbox in the caller's transaction, in the recipient's language."""
    return _queue(session, kind, recipient.locale, link, recipient_id=recipient.id, about=about)


def queue_link(
    session: Session, email: str, locale: str, kind: str, secret_link: str
) -> OutboxMessage:
    """An invitation or password-reset link, to an address (the account may not exist yet)."""
    return _queue(session, kind, locale, "/", recipient_email=email, secret_link=secret_link)


def _queue(session: Session, kind: str, locale: str, link: str, **fields) -> OutboxMessage:
    template = KINDS[kind]
    with force_locale(locale):
        subject, body = str(template.subject), str(template.body)
    message = OutboxMessage(
        kind=kind, subject=subject, body=body, link=link, next_attempt_at=utcnow(), **fields
    )
    session.add(message)
    session.flush()
    audit.record(
        session,
        "notification.queued",
        actor=audit.SYSTEM,
        object_type="outbox_message",
        object_id=message.id,
        after={"recipient_id": message.recipient_id, "kind": kind, "about": message.about},
    )
    return message


def outbox(session: Session, limit: int = 200) -> list[OutboxMessage]:
    return list(
        session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit))
    )


def inbox(session: Session, user: User, limit: int = 50) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.recipient_id == user.id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
    )


def unread_count_query(user_id) -> Select:
    """How many of a user's messages are unread, as a query to ask inside another; `user_id`
    may be a bound parameter, so that the query is built once."""
    return select(func.count(OutboxMessage.id)).where(
        OutboxMessage.recipient_id == user_id, OutboxMessage.read_at.is_(None)
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
