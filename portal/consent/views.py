"""The patient's consent pages."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from portal.core.permissions import Role, roles_required

bp = Blueprint("consent", __name__, url_prefix="/consent")


@bp.route("/")
@roles_required(Role.PATIENT)
def home():
    return render_template("consent/home.html", study_contact=current_user.invited_by)
