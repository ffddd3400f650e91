"""The investigator's side of ethics review: protocols, submissions, replies, letters."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.consent.documents import previous_approved_version
from portal.core.db import reads_only
from portal.core.forms import parse_row_id, show_error
from portal.core.permissions import PANEL_ROLES, Role, roles_required
from portal.extensions import db
from portal.review import papers, services
from portal.review.forms import ModificationForm, ProtocolForm, ResponseForm
from portal.review.models import PanelPaper, Protocol, Submission

bp = Blueprint("review", __name__, url_prefix="/review")


@bp.app_context_processor
def _review_helpers() -> dict[str, object]:
    return {
        "review_clock": services.clock,
        "previous_approved_version": previous_approved_version,
    }


@bp.route("/")
@roles_required(Role.INVESTIGATOR)
@reads_only
def home():
    protocols = db.session.scalars(
        select(Protocol)
        .where(Protocol.submitted_by_id == current_user.id)
        .order_by(Protocol.id.desc())
    ).all()
    return render_template("review/home.html", protocols=protocols)


def _upload(form) -> services.Upload | None:
    data = form.protocol_file.data
    if not data or not data.filename:
        return None
    limit = request.max_content_length or 0
    return services.Upload(data.filename, data.read(limit + 1 if limit else -1))


def _version_choices(form, protocol: Protocol | None) -> None:
    form.version_ids.choices = [
        (str(v.id), f"{v.label} ({v.status})")
        for v in services.versions_to_submit(db.session, protocol)
    ]


def _chosen_versions(form) -> list[int]:
    """The versions ticked; an id that cannot be a row is passed on as 0 (refused clearly)."""
    return [parse_row_id(v) or 0 for v in form.version_ids.data or []]


def _submit_page(template: str, form, submit, protocol: Protocol | None = None):
    """Validate and run a submission; back to its page, or the form with errors."""
    _version_choices(form, protocol)
    if form.validate_on_submit():
        try:
            submission = submit()
        except services.ReviewError as exc:
            db.session.rollback()
            show_error(form, exc, form.summary)
        else:
            db.session.commit()
            flash(_("Submitted. The ethics panel has been told."), "success")
            return redirect(url_for("review.submission", submission_id=submission.id))
    status = 400 if form.errors else 200
    return render_template(template, form=form, protocol=protocol), status


@bp.route("/protocols/new", methods=["GET", "POST"])
@roles_required(Role.INVESTIGATOR)
def new_protocol():
    form = ProtocolForm()
    return _submit_page(
        "review/new_protocol.html",
        form,
        lambda: services.submit_protocol(
            db.session,
            current_user,
            services.Application(
                kind="initial",
                summary=form.summary.data or "",
                upload=_upload(form),
                version_ids=_chosen_versions(form),
                reference=form.reference.data or "",
                title=form.title.data or "",
                sites=form.sites.data or "",
                chief_investigator=form.chief_investigator.data or "",
                team_emails=form.team_emails.data or "",
            ),
        ),
    )


@bp.route("/protocols/<int:protocol_id>/modify", methods=["GET", "POST"])
@roles_required(Role.INVESTIGATOR)
def modify(protocol_id: int):
    protocol = _own_protocol(protocol_id)
    form = ModificationForm()
    return _submit_page(
        "review/modify.html",
        form,
        lambda: services.submit_modification(
            db.session,
            current_user,
            protocol,
            services.Application(
                kind=form.kind.data or "",
                summary=form.summary.data or "",
                upload=_upload(form),
                version_ids=_chosen_versions(form),
            ),
        ),
        protocol=protocol,
    )


@bp.route("/protocols/<int:protocol_id>")
@roles_required(Role.INVESTIGATOR, *PANEL_ROLES)
@reads_only
def protocol(protocol_id: int):
    found = db.get_or_404(Protocol, protocol_id)
    if current_user.role == Role.INVESTIGATOR and found.submitted_by_id != current_user.id:
        abort(404)
    from portal.review.panel_views import protocol_status_form

    return render_template(
        "review/protocol.html", protocol=found, status_form=protocol_status_form(found)
    )


@bp.route("/submissions/<int:submission_id>")
@roles_required(Role.INVESTIGATOR)
@reads_only
def submission(submission_id: int, response_form: ResponseForm | None = None, status: int = 200):
    found = _own_submission(submission_id)
    return render_template(
        "review/submission.html",
        submission=found,
        form=response_form or ResponseForm(),
        letters={o.id: papers.paper_for_opinion(db.session, o) for o in found.opinions},
        extracts=papers.minutes_extracts(db.session, found),
    ), status


@bp.route("/submissions/<int:submission_id>/respond", methods=["POST"])
@roles_required(Role.INVESTIGATOR)
def respond(submission_id: int):
    found = _own_submission(submission_id)
    form = ResponseForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.respond_to_request(db.session, current_user, found, form.response.data or "")
    except services.ReviewError as exc:
        db.session.rollback()
        form.response.errors = [str(exc)]
        return submission(submission_id, response_form=form, status=400)
    db.session.commit()
    flash(_("Your response has been sent. The 60-day clock has restarted."), "success")
    return redirect(url_for("review.submission", submission_id=submission_id))


@bp.route("/submissions/<int:submission_id>/protocol.pdf")
@roles_required(Role.INVESTIGATOR, *PANEL_ROLES)
def protocol_file(submission_id: int):
    found = db.get_or_404(Submission, submission_id)
    own = found.submitted_by_id == current_user.id
    if (current_user.role == Role.INVESTIGATOR and not own) or found.file_content is None:
        abort(404)
    services.audit_protocol_download(db.session, current_user, found)
    db.session.commit()
    return Response(
        found.file_content,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="protocol-{found.reference}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/papers/<uid>.pdf")
@roles_required(Role.INVESTIGATOR, *PANEL_ROLES)
def paper(uid: str):
    found = db.session.scalar(select(PanelPaper).where(PanelPaper.uid == uid))
    if found is None or not papers.can_download(db.session, current_user, found):
        abort(404)
    papers.record_download(db.session, current_user, found)
    db.session.commit()
    name = found.kind.replace("_", "-")
    return Response(
        found.pdf,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{found.uid}.pdf"',
            "Cache-Control": "no-store",
        },
    )


def _own_protocol(protocol_id: int) -> Protocol:
    found = db.get_or_404(Protocol, protocol_id)
    if found.submitted_by_id != current_user.id:
        abort(404)
    return found


def _own_submission(submission_id: int) -> Submission:
    found = db.get_or_404(Submission, submission_id)
    if found.submitted_by_id != current_user.id:
        abort(404)
    return found
