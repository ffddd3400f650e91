"""The front door: role landing pages and the language switch."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, request, session, url_for
from flask_login import current_user

from portal.accounts.forms import EmptyForm
from portal.accounts.services import set_locale
from portal.core.forms import safe_next_url
from portal.core.i18n import SESSION_LOCALE_KEY
from portal.core.permissions import Role, public
from portal.extensions import db

bp = Blueprint("core", __name__)

LANDING_ENDPOINTS = {
    Role.PATIENT: "consent.home",
    Role.THERAPIST: "consent.team",
    Role.INVESTIGATOR: "review.home",
    Role.PANEL_MEMBER: "oversight.home",
    Role.PANEL_CHAIR: "oversight.home",
    Role.ADMINISTRATOR: "accounts.staff",
}


@bp.route("/")
@public
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login"))
    return redirect(url_for(LANDING_ENDPOINTS[Role(current_user.role)]))


@bp.route("/language", methods=["POST"])
@public
def set_language():
    locale = request.form.get("locale", "")
    if locale not in current_app.config["LANGUAGES"] or not EmptyForm().validate_on_submit():
        abort(400)
    session[SESSION_LOCALE_KEY] = locale
    if current_user.is_authenticated:
        set_locale(db.session, current_user, locale)
        db.session.commit()
    return redirect(safe_next_url(request.form.get("next")) or url_for("core.home"))
