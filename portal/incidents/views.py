"""Concern pages: anyone signed in reports; the panel triages, investigates and decides; the
named therapist responds when asked; the reporter follows the status."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts.models import User
from portal.core.db import reads_only, utcnow
from portal.core.forms import parse_row_id, show_error
from portal.core.permissions import ALL_ROLES, PANEL_ROLES, Role, roles_required
from portal.extensions import db
from portal.incidents import services
from portal.incidents.forms import (
    CATEGORY_LABELS,
    OUTCOME_LABELS,
    SESSION_LABELS,
    SEVERITY_LABELS,
    AssignForm,
    NoteForm,
    OutcomeForm,
    ReportForm,
    ResponseForm,
    TriageForm,
)
from portal.incidents.models import Incident, IncidentEntry

bp = Blueprint("incidents", __name__, url_prefix="/concerns")


@bp.app_context_processor
def _labels() -> dict[str, object]:
    return {
        "category_labels": CATEGORY_LABELS,
        "session_labels": SESSION_LABELS,
        "severity_labels": SEVERITY_LABELS,
        "outcome_labels": OUTCOME_LABELS,
        # What the site sees of a hold: only that the therapist is unavailable.
        "therapist_unavailable": lambda user_id: services.is_unavailable(db.session, user_id),
    }


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*ALL_ROLES)
def new():
    form = ReportForm()
    therapists = services.therapists_to_name(db.session, current_user)
    form.therapist.choices = [("", _("Choose a therapist"))] + [
        (str(t.id), t.full_name) for t in therapists
    ]
    if form.validate_on_submit():
        wanted = services.Report(
            therapist_id=int(form.therapist.data)
            if (form.therapist.data or "").isdigit()
            else None,
            category=form.category.data or "",
            occurred_on=form.occurred_on(),
            session_kind=form.session_kind.data or "",
            what_happened=form.what_happened.data or "",
            others_involved=form.others_involved.data or "",
            feels_safe=form.feels_safe.data or "",
            anonymous=bool(form.anonymous.data) and current_user.role != Role.PATIENT,
        )
        try:
            incident = services.report(db.session, current_user, wanted)
        except services.IncidentError as exc:
            show_error(form, exc, form.what_happened)
        else:
            db.session.commit()
            return redirect(url_for("incidents.reported", incident_id=incident.id))
    status = 400 if form.errors else 200
    return render_template("incidents/new.html", form=form), status


@bp.route("/<int:incident_id>/received")
@roles_required(*ALL_ROLES)
def reported(incident_id: int):
    """Straight after reporting: what happens next, and support and crisis contacts at once."""
    incident = _readable(incident_id, services.Access.REPORTER)
    return render_template("incidents/received.html", incident=incident)


@bp.route("/mine")
@roles_required(*ALL_ROLES)
@reads_only
def mine():
    incidents = db.session.scalars(
        select(Incident).where(Incident.reporter_id == current_user.id).order_by(Incident.id.desc())
    ).all()
    return render_template("incidents/mine.html", incidents=incidents)


@bp.route("/")
@roles_required(*PANEL_ROLES)
@reads_only
def panel():
    return render_template(
        "incidents/panel.html",
        open_incidents=services.open_incidents(db.session, current_user),
        closed=services.closed_incidents(db.session, current_user),
        now=utcnow(),
        triage_due_at=services.triage_due_at,
    )


@bp.route("/therapists/<int:therapist_id>")
@roles_required(*PANEL_ROLES)
@reads_only
def therapist_history(therapist_id: int):
    therapist = db.get_or_404(User, therapist_id)
    if therapist.role != Role.THERAPIST:
        abort(404)
    return render_template(
        "incidents/therapist.html",
        therapist=therapist,
        incidents=services.therapist_history(db.session, current_user, therapist),
        unavailable=services.is_unavailable(db.session, therapist.id),
    )


@bp.route("/<int:incident_id>")
@roles_required(*ALL_ROLES)
def show(incident_id: int):
    incident = db.get_or_404(Incident, incident_id)
    access = services.open_incident(db.session, current_user, incident)
    db.session.commit()  # the read (or the refused attempt) is audited either way
    if access is None:
        abort(404)
    if access == services.Access.REPORTER:
        return render_template("incidents/reporter_view.html", incident=incident)
    if access == services.Access.THERAPIST:
        return render_template(
            "incidents/therapist_view.html", incident=incident, form=ResponseForm()
        )
    return _panel_page(incident)


def _panel_page(incident: Incident, status: int = 200, **forms):
    assign_form = forms.get("assign_form") or AssignForm()
    members = db.session.scalars(
        select(User).where(User.role.in_(list(PANEL_ROLES)), User.active.is_(True))
    ).all()
    assign_form.member_id.choices = [
        (str(m.id), m.full_name)
        for m in members
        if services.access_of(m, incident) == services.Access.PANEL
        and m.id not in incident.assigned_ids
    ]
    return render_template(
        "incidents/panel_view.html",
        incident=incident,
        triage_form=forms.get("triage_form") or TriageForm(),
        assign_form=assign_form,
        note_form=forms.get("note_form") or NoteForm(),
        outcome_form=forms.get("outcome_form") or OutcomeForm(),
        now=utcnow(),
        triage_due_at=services.triage_due_at(incident),
        breach_due_at=services.breach_report_due_at(incident),
        unavailable=services.is_unavailable(db.session, incident.therapist_id),
    ), status


def _panel_step(incident_id: int, form, step: Callable[[Incident], None], form_name: str):
    """Run one of the panel's steps on a form; back to the incident, or the errors shown."""
    incident = _readable(incident_id, services.Access.PANEL)
    if not form.validate_on_submit():
        abort(400)
    try:
        step(incident)
    except services.IncidentError as exc:
        db.session.rollback()
        incident = db.session.get(Incident, incident_id)
        show_error(form, exc)
        return _panel_page(incident, 400, **{form_name: form})
    db.session.commit()
    return redirect(url_for("incidents.show", incident_id=incident_id))


@bp.route("/<int:incident_id>/triage", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def triage(incident_id: int):
    form = TriageForm()
    return _panel_step(
        incident_id,
        form,
        lambda incident: services.triage(
            db.session,
            current_user,
            incident,
            severity=form.severity.data or "",
            hold=bool(form.hold.data),
            serious_breach_due=bool(form.serious_breach_due.data),
            note=form.note.data or "",
        ),
        "triage_form",
    )


@bp.route("/<int:incident_id>/assign", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def assign(incident_id: int):
    form = AssignForm()
    member_id = parse_row_id(form.member_id.data)
    member = db.session.get(User, member_id) if member_id else None
    return _panel_step(
        incident_id,
        form,
        lambda incident: services.assign(db.session, current_user, incident, member),
        "assign_form",
    )


@bp.route("/<int:incident_id>/notes", methods=["POST"])
@roles_required(*PANEL_ROLES)
def add_note(incident_id: int):
    form = NoteForm()
    upload = None
    if form.evidence.data and form.evidence.data.filename:
        limit = request.max_content_length or 0
        content = form.evidence.data.read(limit + 1 if limit else -1)
        upload = services.Upload(form.evidence.data.filename, content)
    return _panel_step(
        incident_id,
        form,
        lambda incident: services.add_note(
            db.session,
            current_user,
            incident,
            form.text.data or "",
            form.recording_reference.data or "",
            upload,
        ),
        "note_form",
    )


@bp.route("/<int:incident_id>/evidence/<int:entry_id>")
@roles_required(*PANEL_ROLES)
def evidence(incident_id: int, entry_id: int):
    incident = _readable(incident_id, services.Access.PANEL)
    entry = db.session.get(IncidentEntry, entry_id)
    if entry is None or entry.incident_id != incident.id or entry.file_content is None:
        abort(404)
    services.evidence_read(db.session, current_user, entry)
    db.session.commit()
    return Response(
        entry.file_content,
        mimetype=entry.file_type,
        headers={
            "Content-Disposition": f'attachment; filename="evidence-{entry.id}"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/<int:incident_id>/conflict", methods=["POST"])
@roles_required(*PANEL_ROLES)
def declare_conflict(incident_id: int):
    incident = _readable(incident_id, services.Access.PANEL)
    if not TriageForm().validate_on_submit():
        abort(400)
    services.declare_conflict(db.session, current_user, incident)
    db.session.commit()
    flash(_("You have stepped aside from this concern."), "success")
    return redirect(url_for("incidents.panel"))


@bp.route("/<int:incident_id>/share", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def share(incident_id: int):
    form = TriageForm()
    return _panel_step(
        incident_id,
        form,
        lambda incident: services.share_with_therapist(db.session, current_user, incident),
        "triage_form",
    )


@bp.route("/<int:incident_id>/breach-reported", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def breach_reported(incident_id: int):
    form = TriageForm()
    return _panel_step(
        incident_id,
        form,
        lambda incident: services.mark_breach_reported(db.session, current_user, incident),
        "triage_form",
    )


@bp.route("/<int:incident_id>/outcome", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def outcome(incident_id: int):
    form = OutcomeForm()
    return _panel_step(
        incident_id,
        form,
        lambda incident: services.record_outcome(
            db.session, current_user, incident, form.outcome.data or "", form.reasons.data or ""
        ),
        "outcome_form",
    )


@bp.route("/<int:incident_id>/respond", methods=["POST"])
@roles_required(Role.THERAPIST)
def respond(incident_id: int):
    incident = _readable(incident_id, services.Access.THERAPIST)
    form = ResponseForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.respond(db.session, current_user, incident, form.response.data or "")
    except services.IncidentError as exc:
        db.session.rollback()
        form.response.errors = [str(exc)]
        incident = db.session.get(Incident, incident_id)
        return render_template("incidents/therapist_view.html", incident=incident, form=form), 400
    db.session.commit()
    flash(_("Thank you. Your response has been sent to the ethics panel."), "success")
    return redirect(url_for("incidents.show", incident_id=incident_id))


def _readable(incident_id: int, needed: services.Access) -> Incident:
    """The incident when this user has the access needed; otherwise an audited 404."""
    incident = db.get_or_404(Incident, incident_id)
    if services.access_of(current_user, incident) != needed:
        services.open_incident(db.session, current_user, incident, needed)  # audits the refusal
        db.session.commit()
        abort(404)
    return incident
