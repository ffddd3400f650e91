"""The ethics panel's oversight pages: the overview, the audit trail browser and its exports."""

from __future__ import annotations

from collections.abc import Iterator

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts.models import User
from portal.consent.journey_models import Withdrawal
from portal.core import audit
from portal.core.db import begin_reading, reading_session, reads_only
from portal.core.forms import parse_row_id
from portal.core.permissions import PANEL_ROLES, roles_required
from portal.extensions import db
from portal.oversight import (
    links,  # noqa: F401 - registers what audit events concern
    trail,
)
from portal.oversight.forms import TrailFilterForm

bp = Blueprint("oversight", __name__, url_prefix="/oversight")

RECENT_WITHDRAWALS = 20
EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "json": ("application/json", "json"),
    "fhir": ("application/fhir+ndjson", "ndjson"),
}


def _chain_status() -> dict:
    head = db.session.get(audit.AuditChainHead, 1)
    return {
        "verification": trail.latest_verification(db.session),
        "events_in_trail": head.last_seq if head else 0,
    }


@bp.route("/")
@roles_required(*PANEL_ROLES)
@reads_only
def home():
    withdrawals = db.session.scalars(
        select(Withdrawal).order_by(Withdrawal.id.desc()).limit(RECENT_WITHDRAWALS)
    ).all()
    return render_template("oversight/home.html", withdrawals=withdrawals, **_chain_status())


def _filter_form() -> tuple[TrailFilterForm, trail.TrailFilter | None]:
    form = TrailFilterForm(db.session, trail.distinct_actions(db.session), request.args)
    return form, form.to_filter(db.session)


@bp.route("/audit")
@roles_required(*PANEL_ROLES)
def audit_trail():
    begin_reading(db.session)
    form, wanted = _filter_form()
    page = None
    if wanted is not None:
        page = trail.find_events(
            db.session,
            wanted,
            older_than=parse_row_id(request.args.get("older_than")),
            newer_than=parse_row_id(request.args.get("newer_than")),
        )
    filter_args = {
        name: value
        for name, value in request.args.items()
        if name in form._fields and value.strip()
    }
    actor_ids = {event.actor_id for event in page.events if event.actor_id} if page else set()
    actor_names = dict(
        db.session.execute(select(User.id, User.full_name).where(User.id.in_(actor_ids))).all()
    )
    return render_template(
        "oversight/audit.html",
        form=form,
        page=page,
        actor_names=actor_names,
        filter_args=filter_args,
        differences=trail.differences,
        show_value=trail.show_value,
        **_chain_status(),
    ), (200 if wanted is not None else 400)


@bp.route("/audit/export.<fmt>")
@roles_required(*PANEL_ROLES)
def export_trail(fmt: str):
    if fmt not in EXPORT_FORMATS:
        abort(404)
    _form, wanted = _filter_form()
    if wanted is None:
        return audit_trail()  # the form again, with what is wrong (400)
    trail.record_export(db.session, audit.Actor.of(current_user), wanted, fmt)
    db.session.commit()  # the disclosure is on record before the first byte leaves
    media_type, extension = EXPORT_FORMATS[fmt]
    response = Response(
        stream_with_context(_export_chunks(db.engine, wanted, fmt)), mimetype=media_type
    )
    response.headers["Content-Disposition"] = f'attachment; filename="audit-trail.{extension}"'
    return response


def _export_chunks(engine, wanted: trail.TrailFilter, fmt: str) -> Iterator[str]:
    """The export, read from one snapshot by a session of its own (the request's session ends
    before the download does) without holding SQLite's write lock."""
    with reading_session(engine) as session:
        events = trail.iter_events(session, wanted)
        if fmt == "csv":
            yield from trail.csv_lines(events)
        elif fmt == "json":
            yield from trail.json_chunks(events)
        else:
            from portal.oversight.fhir import audit_event_resource

            for event in events:
                yield trail.json_line(audit_event_resource(event))


@bp.post("/audit/verify")
@roles_required(*PANEL_ROLES)
def verify_trail():
    run = trail.verify_now(db.session, audit.Actor.of(current_user))
    db.session.commit()
    if run.intact:
        flash(
            _("The audit trail is intact: %(num)d events verified.", num=run.events_verified),
            "success",
        )
    else:
        flash(_("The audit trail has been tampered with."), "error")
    return redirect(url_for("oversight.audit_trail"))


# The dashboards' routes join this blueprint (imported last: they import `bp`).
from portal.oversight import dashboard_views  # noqa: E402, F401
