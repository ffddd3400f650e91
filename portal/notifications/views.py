"""Each person's notifications: the outbox messages addressed to them."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template
from flask_login import current_user

from portal.accounts.forms import EmptyForm
from portal.core.db import reads_only
from portal.core.forms import safe_next_url
from portal.core.permissions import ALL_ROLES, Role, roles_required
from portal.extensions import db
from portal.notifications import services
from portal.notifications.models import OutboxMessage

bp = Blueprint("notifications", __name__, url_prefix="/notifications")


@bp.route("/")
@roles_required(*ALL_ROLES)
@reads_only
def inbox():
    return render_template(
        "notifications/inbox.html", messages=services.inbox(db.session, current_user)
    )


@bp.route("/<int:message_id>/open", methods=["POST"])
@roles_required(*ALL_ROLES)
def open_message(message_id: int):
    """Mark the message read and go to what it is about."""
    message = db.get_or_404(OutboxMessage, message_id)
    if message.recipient_id != current_user.id:
        abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    services.mark_read(db.session, current_user, message)
    db.session.commit()
    return redirect(safe_next_url(message.link) or "/")


@bp.route("/outbox")
@roles_required(Role.ADMINISTRATOR)
@reads_only
def outbox():
    """Every queued message and whether it went: the whole outbox when no mail server is set."""
    from portal.notifications.mail import mail_configured

    return render_template(
        "notifications/outbox.html",
        messages=services.outbox(db.session),
        mail_configured=mail_configured(),
    )
