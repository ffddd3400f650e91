"""The consent journey's pages, on the consent blueprint: patients read, choose and sign;
therapists offer documents, follow progress and countersign."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts.models import User
from portal.comprehension.services import question_states
from portal.consent import journey
from portal.consent.access import audit_consent_read, own_consent_or_404
from portal.consent.forms import (
    AskQuestionForm,
    CountersignForm,
    OfferForm,
    ReadingForm,
    SignForm,
    choices_form,
)
from portal.consent.journey_models import Consent, ConsentStatus, SignatureMethod
from portal.consent.models import ConsentDocument
from portal.consent.team_overview import team_overview
from portal.consent.views import bp
from portal.core.db import begin_reading, reads_only, start_reading
from portal.core.faults import fault_point
from portal.core.forms import safe_next_url
from portal.core.paging import NoSuchPage, requested_page
from portal.core.permissions import Role, roles_required
from portal.extensions import db


def _next_step(consent: Consent) -> str:
    """Where the patient carries on: exactly where they left off."""
    if consent.status not in (ConsentStatus.OFFERED, ConsentStatus.IN_PROGRESS):
        return url_for("consent.home")
    if consent.reading_completed_at is None:
        return url_for("consent.read", consent_id=consent.id, position=consent.reading_position)
    if not all(state.passed for state in question_states(db.session, consent)):
        return url_for("comprehension.question", consent_id=consent.id)
    if consent.choices_saved_at is None:
        return url_for("consent.choices", consent_id=consent.id)
    return url_for("consent.sign", consent_id=consent.id)


def _status_of(consent: Consent) -> str:
    """A plain description of where a consent stands (used by both dashboards)."""
    if consent.status != ConsentStatus.IN_PROGRESS:
        return consent.status
    if consent.reading_completed_at is None:
        return "reading"
    states = question_states(db.session, consent)
    if any(s.open_teach_back for s in states):
        return "teach_back"
    if not all(s.passed for s in states):
        return "comprehension"
    return "choices" if consent.choices_saved_at is None else "ready_to_sign"


@bp.app_context_processor
def _journey_helpers() -> dict[str, object]:
    from portal.records.services import records_of

    return {
        "consent_stage": _status_of,
        "records_of": lambda consent: records_of(db.session, consent),
    }


@bp.route("/<int:consent_id>")
@roles_required(Role.PATIENT)
def resume(consent_id: int):
    return redirect(_next_step(own_consent_or_404(consent_id)))


@bp.route("/<int:consent_id>/read/<int:position>", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def read(consent_id: int, position: int):
    if request.method == "POST":
        return _leave_section(consent_id, position)
    return _show_section(consent_id, position)


def _show_section(consent_id: int, position: int):
    """A section page only reads (no write lock for other workers to wait on), except the
    consent's first opening, which is written in a transaction of its own."""
    session = db.session
    if not session.in_transaction():
        start_reading(session)
    consent = own_consent_or_404(consent_id)
    plan = journey.reading_plan(session, consent)
    if not 0 <= position < len(plan):
        abort(404)
    section = journey.section_to_read(session, consent, plan[position])
    if section.content_note and request.args.get("note") != "seen":
        return render_template(
            "consent/content_note.html",
            consent=consent,
            section=section,
            position=position,
            total=len(plan),
        )
    first_opening = consent.opened_at is None
    if first_opening:
        session.commit()
        # Decided on the row as it is in the writing transaction, locked on PostgreSQL, so two
        # tabs opening it at once write one opening (SQLite's BEGIN IMMEDIATE already does).
        session.refresh(consent, with_for_update=True)
    try:
        visit = journey.open_section(session, consent, position)
    except journey.JourneyError as exc:
        flash(str(exc), "info")
        return redirect(_next_step(consent))
    if first_opening:
        begin_reading(session)  # the opening is stored; the page itself only reads
    return render_template(
        "consent/read.html",
        consent=consent,
        section=section,
        position=position,
        total=len(plan),
        form=ReadingForm(visit=visit),
        ask_form=AskQuestionForm(section=section.key),
    )


def _leave_section(consent_id: int, position: int):
    # One leaving at a time per consent, so a form sent twice at once is counted once.
    consent = own_consent_or_404(consent_id, lock=True)
    form = ReadingForm()
    if not form.validate_on_submit() or form.direction.data not in {"next", "back"}:
        abort(400)
    try:
        following = journey.leave_section(
            db.session, consent, form.visit.data, position, form.direction.data
        )
    except journey.JourneyError as exc:
        flash(str(exc), "error")
        return redirect(url_for("consent.home"))
    db.session.commit()
    if following < 0:
        flash(
            _(
                "You have read every section. Next, a few questions to check the main "
                "points are clear."
            ),
            "success",
        )
        return redirect(_next_step(consent))
    return redirect(url_for("consent.read", consent_id=consent.id, position=following))


@bp.route("/<int:consent_id>/changes")
@roles_required(Role.PATIENT)
@reads_only
def changes(consent_id: int):
    """What changed between the version the patient agreed to and the newer one."""
    from portal.consent.redline import compare

    consent = own_consent_or_404(consent_id)
    if consent.replaces is not None:
        old_text, new_text = consent.replaces.text, consent.text
    else:
        active = consent.version.document.active_version
        new_text = active.text_in(consent.text.language) if active else None
        old_text = consent.text
        if new_text is None or active.id == consent.version_id:
            abort(404)
    if old_text.language != new_text.language:
        abort(404)
    return render_template("consent/changes.html", redline=compare(old_text, new_text))


@bp.route("/<int:consent_id>/ask", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def ask(consent_id: int):
    consent = own_consent_or_404(consent_id)
    form = AskQuestionForm()
    back = request.form.get("back") or request.args.get("back")
    if form.validate_on_submit():
        try:
            journey.ask_question(db.session, consent, form.question.data, form.section.data or None)
        except journey.JourneyError as exc:
            form.question.errors.append(str(exc))
        else:
            db.session.commit()
            flash(
                _("Your question has been sent to your study team. They will get back to you."),
                "success",
            )
            return redirect(safe_next_url(back) or _next_step(consent))
    status = 400 if form.errors else 200
    return render_template("consent/ask.html", consent=consent, form=form, back=back), status


@bp.route("/<int:consent_id>/choices", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def choices(consent_id: int):
    consent = own_consent_or_404(consent_id)
    items = consent.text.optional_consents
    form = choices_form(items)
    if request.method == "GET" and consent.choices:
        for key, agreed in consent.choice_map.items():
            getattr(form, f"item_{key}").data = "yes" if agreed else "no"
    if form.validate_on_submit():
        answers = {item.key: getattr(form, f"item_{item.key}").data == "yes" for item in items}
        try:
            journey.save_choices(db.session, consent, answers)
        except journey.JourneyError as exc:
            flash(str(exc), "error")
            return redirect(url_for("consent.home"))
        db.session.commit()
        return redirect(_next_step(consent))
    status = 400 if form.errors else 200
    return render_template("consent/choices.html", consent=consent, form=form, items=items), status


@bp.route("/<int:consent_id>/sign", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def sign(consent_id: int):
    consent = own_consent_or_404(consent_id)
    form = SignForm()
    state = journey.readiness(db.session, consent)
    if form.validate_on_submit():
        try:
            method = SignatureMethod(form.method.data)
            image = (
                journey.decode_signature_image(form.signature.data)
                if method == SignatureMethod.DRAWN
                else None
            )
            journey.sign(
                db.session,
                consent,
                current_user,
                typed_name=form.typed_name.data,
                password=form.password.data,
                attested=form.attest.data,
                method=method,
                image=image,
            )
        except journey.AlreadySigned:
            db.session.rollback()
            flash(_("You have already signed this consent. Nothing else needs doing."), "info")
            return redirect(url_for("consent.home"))
        except journey.JourneyError as exc:
            db.session.commit()  # keep the audited refusal (a wrong password)
            target = form[exc.field] if exc.field in form else form.attest  # noqa: SIM401 - forms have no .get
            target.errors = [*target.errors, str(exc)]
        else:
            db.session.commit()
            flash(
                _(
                    "Thank you. You have signed. Your therapist will now countersign, and you "
                    "will get a copy."
                ),
                "success",
            )
            return redirect(url_for("consent.home"))
    status = 400 if form.errors else 200
    return render_template(
        "consent/sign.html",
        consent=consent,
        form=form,
        state=state,
        answers=question_states(db.session, consent),
    ), status


# --- therapists ----------------------------------------------------------------------------------


def _their_consent(consent_id: int) -> Consent:
    consent = db.get_or_404(Consent, consent_id)
    if consent.therapist_id != current_user.id:
        abort(403)
    return consent


@bp.route("/team")
@roles_required(Role.THERAPIST)
def team():
    begin_reading(db.session)  # a page many therapists keep open: it never waits for writers
    try:
        overview = team_overview(
            db.session, current_user.id, requested_page(request.args.get("page"))
        )
    except NoSuchPage:
        abort(404)
    return render_template("consent/team.html", overview=overview, offer_form=OfferForm())


@bp.route("/team/offer/<int:patient_id>", methods=["POST"])
@roles_required(Role.THERAPIST)
def offer(patient_id: int):
    patient = db.get_or_404(User, patient_id)
    if patient.invited_by_id != current_user.id:
        abort(404)  # only their own patients
    form = OfferForm()
    if not form.validate_on_submit():
        abort(400)
    document = db.get_or_404(ConsentDocument, form.document_id.data)
    try:
        journey.offer(db.session, current_user, patient, document)
    except journey.JourneyError as exc:
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(
            _("%(name)s can now read the document when they sign in.", name=patient.full_name),
            "success",
        )
    return redirect(url_for("consent.team"))


@bp.route("/team/<int:consent_id>/countersign", methods=["GET", "POST"])
@roles_required(Role.THERAPIST)
def countersign(consent_id: int):
    consent = _their_consent(consent_id)
    audit_consent_read(consent, "countersign")
    form = CountersignForm()
    if form.validate_on_submit():
        # Seal the record while only reading, so other writers are not kept waiting for it.
        begin_reading(db.session)
        prepared = journey.prepare_countersignature(
            db.session, consent, current_user, form.password.data
        )
        db.session.commit()
        try:
            journey.countersign(
                db.session,
                consent,
                current_user,
                password=form.password.data,
                discussed=form.discussed.data,
                identity_checked=form.identity_checked.data,
                witnessed_typed=form.witnessed_typed.data,
                prepared=prepared,
            )
        except journey.AlreadySigned:
            db.session.rollback()
            flash(_("This consent has already been countersigned."), "info")
            return redirect(url_for("consent.team"))
        except journey.JourneyError as exc:
            db.session.commit()
            target = form[exc.field] if exc.field in form else form.discussed  # noqa: SIM401 - forms have no .get
            target.errors = [*target.errors, str(exc)]
        else:
            db.session.commit()
            fault_point("after_commit")
            flash(
                _("Countersigned. %(name)s's consent is complete.", name=consent.patient.full_name),
                "success",
            )
            return redirect(url_for("consent.team"))
    status = 400 if form.errors else 200
    return render_template(
        "consent/countersign.html",
        consent=consent,
        form=form,
        answers=question_states(db.session, consent),
    ), status
