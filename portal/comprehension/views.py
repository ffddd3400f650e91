"""Comprehension pages: the patient answers; the therapist records teach-back."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.comprehension.models import TeachBack
from portal.comprehension.services import (
    ComprehensionError,
    answer,
    next_question,
    question_states,
    resolve_teach_back,
)
from portal.consent.access import audit_consent_read, own_consent_or_404
from portal.consent.forms import TeachBackForm, answer_form
from portal.consent.journey_models import Consent, ConsentStatus
from portal.core.permissions import Role, roles_required
from portal.extensions import db

bp = Blueprint("comprehension", __name__, url_prefix="/comprehension")


@bp.route("/<int:consent_id>", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def question(consent_id: int):
    consent = own_consent_or_404(consent_id)
    if consent.status != ConsentStatus.IN_PROGRESS or consent.reading_completed_at is None:
        return redirect(url_for("consent.resume", consent_id=consent.id))
    states = question_states(db.session, consent)
    current = next_question(states)
    if current is None:
        if all(state.passed for state in states):
            return redirect(url_for("consent.resume", consent_id=consent.id))
        return render_template("comprehension/waiting.html", consent=consent, states=states)
    form = answer_form(current.question)
    if form.validate_on_submit():
        try:
            correct = answer(db.session, consent, current.question.key, form.choice.data)
        except ComprehensionError as exc:
            flash(str(exc), "error")
            return redirect(url_for("comprehension.question", consent_id=consent.id))
        db.session.commit()
        if correct:
            flash(_("That's right."), "success")
            return redirect(url_for("comprehension.question", consent_id=consent.id))
        section = consent.text.section(current.question.section_key)
        position = consent.sections.index(section)
        flagged = next(
            s
            for s in question_states(db.session, consent)
            if s.question.key == current.question.key
        ).open_teach_back
        return render_template(
            "comprehension/explanation.html",
            consent=consent,
            question=current.question,
            section=section,
            position=position,
            teach_back=flagged,
        )
    answered = sum(1 for state in states if state.passed)
    status = 400 if form.errors else 200
    return render_template(
        "comprehension/question.html",
        consent=consent,
        form=form,
        question=current.question,
        answered=answered,
        total=len(states),
    ), status


@bp.route("/teach-back/<int:flag_id>", methods=["GET", "POST"])
@roles_required(Role.THERAPIST)
def teach_back(flag_id: int):
    flag = db.get_or_404(TeachBack, flag_id)
    consent = db.get_or_404(Consent, flag.consent_id)
    if consent.therapist_id != current_user.id:
        abort(403)
    question = next(q for q in consent.questions if q.key == flag.question_key)
    audit_consent_read(consent, "teach_back")
    form = TeachBackForm()
    if form.validate_on_submit():
        try:
            resolve_teach_back(db.session, flag, current_user, form.note.data)
        except ComprehensionError as exc:
            form.note.errors.append(str(exc))
        else:
            db.session.commit()
            flash(
                _(
                    "Recorded. %(name)s can now answer the question again.",
                    name=consent.patient.full_name,
                ),
                "success",
            )
            return redirect(url_for("consent.team"))
    status = 400 if form.errors else 200
    return render_template(
        "comprehension/teach_back.html", consent=consent, flag=flag, question=question, form=form
    ), status
