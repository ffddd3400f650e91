"""Withdrawal pages: the patient's two steps (choose, confirm), staff-recorded withdrawals,
the receipt page, and help for a patient who cannot sign in."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts.forms import EmptyForm
from portal.consent import withdrawal as service
from portal.consent.access import own_consent_or_404
from portal.consent.forms import ConfirmWithdrawalForm, StaffWithdrawalForm, WithdrawalForm
from portal.consent.journey_models import Consent, Withdrawal, WithdrawalChannel, WithdrawalScope
from portal.core.db import reads_only
from portal.core.faults import fault_point
from portal.core.forms import show_error
from portal.core.permissions import PANEL_ROLES, Role, public, roles_required
from portal.extensions import db
from portal.records.models import Record

bp = Blueprint("withdrawal", __name__, url_prefix="/withdraw")


@bp.route("/")
@roles_required(Role.PATIENT)
@reads_only
def start():
    """The "Withdraw" link: straight to the form when there is one study, else a choice."""
    consents = service.consents_in_force(db.session, current_user)
    if len(consents) == 1:
        return redirect(url_for("withdrawal.choose", consent_id=consents[0].id))
    return render_template("withdrawal/start.html", consents=consents)


@bp.route("/<int:consent_id>", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def choose(consent_id: int):
    """Step one: what to withdraw from, and what happens to the data. Nothing is saved yet."""
    consent = own_consent_or_404(consent_id)
    if consent.status not in service.OPEN_STATUSES:
        return _already_withdrawn(consent)
    consent = service.in_force_for(db.session, consent)
    form = WithdrawalForm()
    if request.method == "GET":
        form.data_option.data = service.default_data_option(consent)
    changing = request.form.get("change") == "yes"  # back from the confirm page, choices kept
    if not changing and form.validate_on_submit():
        wanted = _request_from(form)
        try:
            service.check(consent, wanted)
        except service.AlreadyWithdrawn as exc:
            return _already_withdrawn(consent, exc)
        except service.WithdrawalError as exc:
            show_error(form, exc, form.scope)
        else:
            confirm = ConfirmWithdrawalForm(formdata=None, data=form.data)
            return render_template(
                "withdrawal/confirm.html",
                form=confirm,
                chosen=service.preview(consent, wanted),
                **_context(consent),
            )
    status = 400 if form.errors else 200
    return render_template("withdrawal/choose.html", form=form, **_context(consent)), status


@bp.route("/<int:consent_id>/confirm", methods=["POST"])
@roles_required(Role.PATIENT)
def confirm(consent_id: int):
    """Step two: the password, then the withdrawal takes effect at once."""
    consent = service.in_force_for(db.session, own_consent_or_404(consent_id))
    form = ConfirmWithdrawalForm()
    if not form.validate_on_submit():
        abort(400)
    wanted = _request_from(form)
    done = _submit(
        consent,
        form,
        form.password,
        lambda: service.withdraw_in_portal(
            db.session, consent, current_user, wanted, form.password.data or ""
        ),
    )
    if done is not None:
        return done
    return render_template(
        "withdrawal/confirm.html",
        form=form,
        chosen=service.preview(consent, wanted),
        **_context(consent),
    ), 400


@bp.route("/record/<int:consent_id>", methods=["GET", "POST"])
@roles_required(Role.THERAPIST)
def record_for_patient(consent_id: int):
    """A therapist records a withdrawal the patient gave by phone, letter or in person."""
    consent = db.get_or_404(Consent, consent_id)
    if consent.therapist_id != current_user.id:
        abort(403)
    if consent.status not in service.OPEN_STATUSES:
        return _already_withdrawn(consent)
    consent = service.in_force_for(db.session, consent)
    form = StaffWithdrawalForm()
    if request.method == "GET":
        form.data_option.data = service.default_data_option(consent)
    if form.validate_on_submit():
        wanted = _request_from(form, staff=True)
        done = _submit(
            consent,
            form,
            form.scope,
            lambda: service.record_for_patient(
                db.session, consent, current_user, wanted, form.password.data or ""
            ),
        )
        if done is not None:
            return done
    status = 400 if form.errors else 200
    return render_template("withdrawal/record.html", form=form, **_context(consent)), status


@bp.route("/receipt/<int:withdrawal_id>")
@roles_required(Role.PATIENT, Role.THERAPIST, *PANEL_ROLES)
def receipt(withdrawal_id: int):
    withdrawal = db.get_or_404(Withdrawal, withdrawal_id)
    consent = withdrawal.consent
    allowed = (
        current_user.id == consent.patient_id
        or current_user.id == consent.therapist_id
        or current_user.role in PANEL_ROLES
    )
    if not allowed:
        abort(404)  # as far as this user knows, it does not exist
    service.receipt_read(db.session, current_user, withdrawal)
    db.session.commit()
    record = db.session.scalar(select(Record).where(Record.withdrawal_id == withdrawal.id))
    return render_template(
        "withdrawal/receipt.html", withdrawal=withdrawal, consent=consent, record=record
    )


@bp.route("/receipt/<int:withdrawal_id>/acknowledge", methods=["POST"])
@roles_required(Role.THERAPIST)
def acknowledge(withdrawal_id: int):
    withdrawal = db.get_or_404(Withdrawal, withdrawal_id)
    if withdrawal.consent.therapist_id != current_user.id:
        abort(403)
    if not EmptyForm().validate_on_submit():
        abort(400)
    service.acknowledge(db.session, withdrawal, current_user)
    db.session.commit()
    flash(_("Marked as dealt with."), "success")
    return redirect(url_for("consent.team"))


@bp.route("/help")
@public
def help_page():
    """For a patient who cannot sign in: staff can record the withdrawal for them."""
    return render_template("withdrawal/help.html")


def _context(consent: Consent) -> dict[str, object]:
    """What the withdrawal pages show: the options that apply to this consent right now."""
    return {
        "consent": consent,
        "scopes": service.available_scopes(consent),
        "items": service.withdrawable_items(consent),
        "asks_about_data": service.asks_about_data(consent, WithdrawalScope.STUDY),
        "support_contact": consent.therapist,
    }


def _request_from(form: WithdrawalForm, staff: bool = False) -> service.WithdrawalRequest:
    scope_value = form.scope.data or ""
    scope = WithdrawalScope(scope_value) if scope_value in set(WithdrawalScope) else None
    return service.WithdrawalRequest(
        scope=scope,
        item_key=(form.item.data or "") if scope == WithdrawalScope.OPTIONAL_ITEM else "",
        data_option_key=form.data_option.data or None,
        reason=form.reason.data or "",
        channel=(
            WithdrawalChannel(form.channel.data)
            if staff and form.channel.data in set(WithdrawalChannel)
            else WithdrawalChannel.PORTAL
        ),
        communicated_on=form.told_on() if staff else None,
        attestation=(str(form.attested.label.text) if staff and form.attested.data else None),
    )


def _submit(consent: Consent, form, fallback, withdraw: Callable[[], Withdrawal]):
    """Run the withdrawal and commit; the receipt page, or None with the error on the form."""
    try:
        withdrawal = withdraw()
    except service.AlreadyWithdrawn as exc:
        db.session.rollback()
        return _already_withdrawn(consent, exc)
    except service.WithdrawalError as exc:
        db.session.commit()  # keep the audited refusal of a wrong password
        show_error(form, exc, fallback)
        return None
    db.session.commit()
    fault_point("after_commit")
    return redirect(url_for("withdrawal.receipt", withdrawal_id=withdrawal.id))


def _already_withdrawn(consent: Consent, exc: service.AlreadyWithdrawn | None = None):
    """A second submission (double click, another tab): show what was recorded the first time."""
    existing = exc.existing if exc else consent.study_withdrawal
    if existing is not None:
        flash(_("This withdrawal was already recorded. Nothing else needs doing."), "info")
        return redirect(url_for("withdrawal.receipt", withdrawal_id=existing.id))
    flash(_("This consent has already ended. Nothing else needs doing."), "info")
    return redirect(
        url_for("consent.home" if current_user.role == Role.PATIENT else "consent.team")
    )
