"""The panel's dashboards (their routes join the oversight blueprint). Each page reads in one
read-only transaction: its aggregates never hold SQLite's write lock."""

from __future__ import annotations

from flask import abort, current_app, render_template, request

from portal.core.db import begin_reading, reads_only, utcnow
from portal.core.forms import parse_row_id
from portal.core.permissions import PANEL_ROLES, roles_required
from portal.extensions import db
from portal.oversight import dashboards
from portal.oversight.views import bp


@bp.route("/dashboards")
@roles_required(*PANEL_ROLES)
@reads_only
def dashboard_index():
    return render_template("oversight/dashboards/index.html")


@bp.route("/dashboards/consent")
@roles_required(*PANEL_ROLES)
def consent_dashboard():
    begin_reading(db.session)
    return render_template(
        "oversight/dashboards/consent.html", funnel=dashboards.consent_funnel(db.session)
    )


@bp.route("/dashboards/comprehension")
@roles_required(*PANEL_ROLES)
def comprehension_dashboard():
    begin_reading(db.session)
    versions = dashboards.analysed_versions(db.session)
    analysis = None
    if versions:
        wanted = request.args.get("version")
        chosen = versions[0]
        if wanted is not None:
            chosen = next((v for v in versions if v.id == parse_row_id(wanted)), None)
            if chosen is None:
                abort(404)  # no patient has been offered such a version
        analysis = dashboards.comprehension_analysis(db.session, chosen)
    return render_template(
        "oversight/dashboards/comprehension.html", versions=versions, analysis=analysis
    )


@bp.route("/dashboards/withdrawals")
@roles_required(*PANEL_ROLES)
def withdrawal_dashboard():
    begin_reading(db.session)
    return render_template(
        "oversight/dashboards/withdrawals.html",
        by_month=dashboards.withdrawals_over_time(db.session, utcnow().date()),
        by_option=dashboards.withdrawals_by_data_option(db.session),
    )


@bp.route("/dashboards/concerns")
@roles_required(*PANEL_ROLES)
def incident_dashboard():
    begin_reading(db.session)
    return render_template(
        "oversight/dashboards/incidents.html", charts=dashboards.incident_charts(db.session)
    )


@bp.route("/dashboards/reviews")
@roles_required(*PANEL_ROLES)
def review_dashboard():
    begin_reading(db.session)
    timelines = dashboards.review_timelines(db.session, current_app.config["REVIEW_TARGET_DAYS"])
    return render_template("oversight/dashboards/reviews.html", timelines=timelines)
