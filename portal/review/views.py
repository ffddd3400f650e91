"""The investigators' and panel's review pages."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.core.permissions import Role, roles_required

bp = Blueprint("review", __name__, url_prefix="/review")


@bp.route("/")
@roles_required(Role.INVESTIGATOR)
def home():
    return render_template("review/home.html")
