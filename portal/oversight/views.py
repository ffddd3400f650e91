"""The ethics panel's oversight pages."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from portal.consent.journey_models import Withdrawal
from portal.core import audit
from portal.core.permissions import PANEL_ROLES, roles_required
from portal.extensions import db

bp = Blueprint("oversight", __name__, url_prefix="/oversight")

RECENT_EVENTS = 20
RECENT_WITHDRAWALS = 20


@bp.route("/")
@roles_required(*PANEL_ROLES)
def home():
    report = audit.verify_chain(db.session)
    recent = db.session.scalars(
        select(audit.AuditEvent).order_by(audit.AuditEvent.seq.desc()).limit(RECENT_EVENTS)
    ).all()
    withdrawals = db.session.scalars(
        select(Withdrawal).order_by(Withdrawal.id.desc()).limit(RECENT_WITHDRAWALS)
    ).all()
    return render_template(
        "oversight/home.html", report=report, recent=recent, withdrawals=withdrawals
    )
