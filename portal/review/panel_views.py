"""The ethics panel's side of review: the queue, a submission's review, meetings and votes."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from portal.accounts.models import User
from portal.consent.readability import PLAIN_LANGUAGE_TARGET, score
from portal.core.db import reads_only
from portal.core.forms import parse_row_id, show_error
from portal.core.permissions import PANEL_ROLES, Role, roles_required
from portal.extensions import db
from portal.review import papers, services
from portal.review.forms import (
    AgendaForm,
    AssignForm,
    AttendanceForm,
    CommentForm,
    ConditionMetForm,
    DeclarationForm,
    MeetingForm,
    OpinionForm,
    ProtocolStatusForm,
    VoteForm,
)
from portal.review.models import (
    Opinion,
    OpinionCondition,
    PanelMeeting,
    Protocol,
    ProtocolStatus,
    Submission,
)
from portal.review.views import bp

STATUS_ACTIONS = {
    ProtocolStatus.SUSPENDED: lambda: _("Suspend: no new consent is taken"),
    ProtocolStatus.APPROVED: lambda: _("Lift the suspension"),
    ProtocolStatus.TERMINATED: lambda: _("Terminate the protocol"),
}


@bp.route("/panel")
@roles_required(*PANEL_ROLES)
@reads_only
def panel():
    return render_template(
        "review/panel.html",
        queue=services.panel_queue(db.session),
        decided=services.decided(db.session),
        meetings=db.session.query(PanelMeeting).order_by(PanelMeeting.held_on.desc()).all(),
        meeting_form=MeetingForm(),
    )


def _section_scores(submission: Submission) -> dict[tuple[int, str], object]:
    return {
        (s.version_id, section.key): score(section.body, text.language)
        for s in submission.versions
        for text in s.version.texts
        if text.language == "en-GB"
        for section in text.sections
    }


def _comment_targets(submission: Submission) -> list[tuple[str, str]]:
    targets = [("submission", _("The submission as a whole"))]
    if submission.file_content is not None:
        targets.append(("protocol_document", _("The protocol document")))
    for s in submission.versions:
        text = s.version.text_in("en-GB") or s.version.texts[0]
        for section in text.sections:
            targets.append(
                (f"section:{s.version_id}:{section.key}", f"{s.version.label}: {section.title}")
            )
    return targets


def _panel_page(submission: Submission, status: int = 200, **forms):
    """The review page. The discussion and votes are shown only to those who may review."""
    confidential = services.open_confidential(db.session, current_user, submission)
    db.session.commit()  # the read, or the refused attempt, is audited either way
    assign_form = forms.get("assign_form") or AssignForm()
    assign_form.member_id.choices = [
        (str(m.id), m.full_name) for m in services.assignable_members(db.session, submission)
    ]
    comment_form = forms.get("comment_form") or CommentForm()
    comment_form.about.choices = _comment_targets(submission)
    return render_template(
        "review/panel_submission.html",
        submission=submission,
        confidential=confidential,
        recusal=services.recusal(submission, current_user),
        declaration=services.declaration_of(submission, current_user),
        comments=services.comments(db.session, submission) if confidential else [],
        votes=services.votes(db.session, submission) if confidential else [],
        quorum=services.quorum(db.session, submission) if confidential else None,
        meeting=services.open_meeting_for(db.session, submission),
        scores=_section_scores(submission),
        target=PLAIN_LANGUAGE_TARGET,
        letters={o.id: papers.paper_for_opinion(db.session, o) for o in submission.opinions},
        declaration_form=forms.get("declaration_form") or DeclarationForm(),
        assign_form=assign_form,
        comment_form=comment_form,
        vote_form=forms.get("vote_form") or VoteForm(),
        opinion_form=forms.get("opinion_form") or OpinionForm(),
        condition_form=forms.get("condition_form") or ConditionMetForm(),
        status_form=protocol_status_form(submission.protocol),
    ), status


def protocol_status_form(protocol: Protocol) -> ProtocolStatusForm | None:
    """The chair's suspend / lift / terminate choices that apply to the protocol now."""
    if current_user.role != Role.PANEL_CHAIR:
        return None
    form = ProtocolStatusForm()
    form.status.choices = [
        SelectChoice(target.value, label())
        for target, label in STATUS_ACTIONS.items()
        if protocol.status in services.PROTOCOL_MOVES[target]
    ]
    return form if form.status.choices else None


@bp.route("/panel/submissions/<int:submission_id>")
@roles_required(*PANEL_ROLES)
def panel_submission(submission_id: int):
    return _panel_page(db.get_or_404(Submission, submission_id))


def _step(submission_id: int, form, step: Callable[[Submission], object], form_name: str):
    """Run one review step from a form: back to the submission, or the page with the error.
    A refusal (recused, no quorum) is audited, so it is committed before it is shown."""
    submission = db.get_or_404(Submission, submission_id)
    if not form.validate_on_submit():
        abort(400)
    try:
        step(submission)
    except services.ReviewRefused as exc:
        db.session.commit()
        flash(str(exc), "error")
        return _panel_page(db.session.get(Submission, submission_id), exc.status)
    except services.ReviewError as exc:
        db.session.rollback()
        show_error(form, exc)
        return _panel_page(db.session.get(Submission, submission_id), 400, **{form_name: form})
    db.session.commit()
    return redirect(url_for("review.panel_submission", submission_id=submission_id))


@bp.route("/panel/submissions/<int:submission_id>/declare", methods=["POST"])
@roles_required(*PANEL_ROLES)
def declare(submission_id: int):
    form = DeclarationForm()

    return _step(
        submission_id,
        form,
        lambda submission: services.declare_interests(
            db.session,
            current_user,
            submission,
            {"yes": True, "no": False}.get(form.conflict.data or ""),
            form.details.data or "",
        ),
        "declaration_form",
    )


@bp.route("/panel/submissions/<int:submission_id>/assign", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def assign(submission_id: int):
    form = AssignForm()
    member_id = parse_row_id(form.member_id.data)
    member = db.session.get(User, member_id) if member_id else None

    return _step(
        submission_id,
        form,
        lambda submission: services.assign_reviewer(db.session, current_user, submission, member),
        "assign_form",
    )


@bp.route("/panel/submissions/<int:submission_id>/comment", methods=["POST"])
@roles_required(*PANEL_ROLES)
def comment(submission_id: int):
    form = CommentForm()

    def step(submission: Submission) -> None:
        about = form.about.data or "submission"
        version_id, section_key = None, None
        if about.startswith("section:"):
            _prefix, raw_version, section_key = ([*about.split(":", 2), "", ""])[:3]
            version_id = parse_row_id(raw_version)
            if version_id is None:
                raise services.ReviewError(
                    _("That section is not part of this submission"), "about"
                )
        services.add_comment(
            db.session,
            current_user,
            submission,
            form.body.data or "",
            version_id=version_id,
            section_key=section_key,
            on_protocol_document=about == "protocol_document",
        )

    return _step(submission_id, form, step, "comment_form")


@bp.route("/panel/submissions/<int:submission_id>/vote", methods=["POST"])
@roles_required(*PANEL_ROLES)
def vote(submission_id: int):
    form = VoteForm()
    return _step(
        submission_id,
        form,
        lambda submission: services.cast_vote(
            db.session, current_user, submission, form.choice.data or ""
        ),
        "vote_form",
    )


@bp.route("/panel/submissions/<int:submission_id>/opinion", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def opinion(submission_id: int):
    form = OpinionForm()

    def step(submission: Submission) -> None:
        material = {}
        for submitted in submission.versions:
            answer = request.form.get(f"material_{submitted.version_id}", "")
            material[submitted.version_id] = {"yes": True, "no": False}.get(answer)
        services.record_opinion(
            db.session,
            current_user,
            submission,
            services.OpinionDecision(
                category=form.category.data or "",
                reasons=form.reasons.data or "",
                conditions=(form.conditions.data or "").splitlines(),
                material=material,
            ),
        )

    return _step(submission_id, form, step, "opinion_form")


@bp.route("/panel/conditions/<int:condition_id>/met", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def condition_met(condition_id: int):
    condition = db.get_or_404(OpinionCondition, condition_id)
    form = ConditionMetForm()
    return _step(
        db.session.get(Opinion, condition.opinion_id).submission_id,
        form,
        lambda _submission: services.mark_condition_met(
            db.session, current_user, condition, form.evidence.data or ""
        ),
        "condition_form",
    )


@bp.route("/protocols/<int:protocol_id>/status", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def protocol_status(protocol_id: int):
    found = db.get_or_404(Protocol, protocol_id)
    form = protocol_status_form(found)
    if form is None:  # nothing the protocol can become now: the service says so clearly
        form = ProtocolStatusForm()
        form.status.choices = []
    if not form.validate_on_submit():
        abort(400)
    try:
        services.change_protocol_status(
            db.session, current_user, found, form.status.data or "", form.reason.data or ""
        )
    except services.ReviewRefused as exc:
        db.session.commit()
        flash(str(exc), "error")
        return render_template("review/protocol.html", protocol=found, status_form=None), 403
    except services.ReviewError as exc:
        db.session.rollback()
        show_error(form, exc, form.reason)
        shown = form if form.status.choices else None
        if shown is None:
            flash(str(exc), "error")
        return render_template("review/protocol.html", protocol=found, status_form=shown), 400
    db.session.commit()
    flash(_("The protocol's status has changed."), "success")
    return redirect(url_for("review.protocol", protocol_id=protocol_id))


# --- meetings -----------------------------------------------------------------------------------


@bp.route("/meetings", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def create_meeting():
    form = MeetingForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        meeting = services.create_meeting(
            db.session, current_user, form.title.data or "", form.held_on()
        )
    except services.ReviewError as exc:
        db.session.rollback()
        show_error(form, exc, form.title)
        return render_template(
            "review/panel.html",
            queue=services.panel_queue(db.session),
            decided=services.decided(db.session),
            meetings=db.session.query(PanelMeeting).order_by(PanelMeeting.held_on.desc()).all(),
            meeting_form=form,
        ), 400
    db.session.commit()
    return redirect(url_for("review.meeting", meeting_id=meeting.id))


@bp.route("/meetings/<int:meeting_id>")
@roles_required(*PANEL_ROLES)
@reads_only
def meeting(meeting_id: int, status: int = 200, **forms):
    found = db.get_or_404(PanelMeeting, meeting_id)
    agenda_form = forms.get("agenda_form") or AgendaForm()
    on_agenda = {item.submission_id for item in found.items}
    agenda_form.submission_id.choices = [
        (str(s.id), f"{s.reference}: {s.protocol.title}")
        for s in services.panel_queue(db.session)
        if s.id not in on_agenda
    ]
    attendance_form = forms.get("attendance_form") or AttendanceForm()
    attendance_form.member_id.choices = [
        (str(m.id), m.full_name)
        for m in services.panel_members(db.session)
        if m.id not in found.attendee_ids
    ]
    return render_template(
        "review/meeting.html",
        meeting=found,
        agenda_form=agenda_form,
        attendance_form=attendance_form,
        minutes=papers.paper_for_meeting(db.session, found),
    ), status


def _meeting_step(meeting_id: int, form, step, form_name: str):
    found = db.get_or_404(PanelMeeting, meeting_id)
    if not form.validate_on_submit():
        abort(400)
    try:
        step(found)
    except services.ReviewError as exc:
        db.session.rollback()
        show_error(form, exc)
        return meeting(meeting_id, 400, **{form_name: form})
    db.session.commit()
    return redirect(url_for("review.meeting", meeting_id=meeting_id))


@bp.route("/meetings/<int:meeting_id>/agenda", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def add_agenda_item(meeting_id: int):
    form = AgendaForm()
    submission_id = parse_row_id(form.submission_id.data)
    submission = db.session.get(Submission, submission_id) if submission_id else None

    def step(found: PanelMeeting) -> None:
        if submission is None:
            raise services.ReviewError(_("Choose a submission"), "submission_id")
        services.add_to_agenda(db.session, current_user, found, submission)

    return _meeting_step(meeting_id, form, step, "agenda_form")


@bp.route("/meetings/<int:meeting_id>/attendance", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def add_attendance(meeting_id: int):
    form = AttendanceForm()
    member_id = parse_row_id(form.member_id.data)
    member = db.session.get(User, member_id) if member_id else None

    def step(found: PanelMeeting) -> None:
        if member is None:
            raise services.ReviewError(_("Choose a panel member"), "member_id")
        services.record_attendance(db.session, current_user, found, member)

    return _meeting_step(meeting_id, form, step, "attendance_form")


@bp.route("/meetings/<int:meeting_id>/close", methods=["POST"])
@roles_required(Role.PANEL_CHAIR)
def close_meeting(meeting_id: int):
    form = AgendaForm()
    return _meeting_step(
        meeting_id,
        form,
        lambda found: services.close_meeting(db.session, current_user, found),
        "agenda_form",
    )
