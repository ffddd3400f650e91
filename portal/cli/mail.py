"""`flask mail send-pending`: send the notification outbox by SMTP."""

from __future__ import annotations

import click
from flask.cli import AppGroup


@click.group("mail", help="Notification email.", cls=AppGroup)
def mail_group() -> None:
    pass


@mail_group.command("send-pending")
def send_pending_command() -> None:
    """Send every queued message that is due (run it every minute)."""
    from portal.extensions import db
    from portal.notifications.mail import mail_configured, send_pending

    if not mail_configured():
        raise click.ClickException(
            "no mail server is configured (MAIL_SERVER); messages stay in the portal's outbox"
        )
    outcome = send_pending(db.session)
    click.echo(f"Sent {outcome.sent}, failed {outcome.failed} (to be retried).")
    if outcome.failed:
        raise SystemExit(1)


@mail_group.command("remind")
def remind_command() -> None:
    """Queue reminders for concerns waiting past the triage target (at most one a day each)."""
    from portal.extensions import db
    from portal.incidents.services import queue_triage_reminders

    count = queue_triage_reminders(db.session)
    db.session.commit()
    click.echo(f"Queued {count} reminder(s).")
