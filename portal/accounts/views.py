"""Sign in and out, passwords, invitations, and the administrators' staff pages."""

from __future__ import annotations

import time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from portal.accounts import mfa, services
from portal.accounts.account_lists import UNUSED_INVITATIONS_KEPT_FOR, account_list, patient_list
from portal.accounts.forms import (
    ROLE_LABELS,
    AcceptInvitationForm,
    AccountSearchForm,
    AccountStatusForm,
    ChangeRoleForm,
    EmptyForm,
    InvitePatientForm,
    InviteStaffForm,
    LoginForm,
    PanelMembershipForm,
    PasswordChangeForm,
    StaffSearchForm,
    TwoFactorForm,
    TwoFactorSetupForm,
)
from portal.accounts.models import PURPOSE_NEW_ACCOUNT, AccountError, Invitation, User, UserSession
from portal.core import rate_limits
from portal.core.db import reads_only
from portal.core.forms import client_address, safe_next_url
from portal.core.i18n import SESSION_LOCALE_KEY, current_locale_code
from portal.core.paging import NoSuchPage, requested_page
from portal.core.permissions import Role, public, roles_required, signed_in
from portal.extensions import db, limiter

bp = Blueprint("accounts", __name__, url_prefix="/account")

# Set in the (signed) session cookie between the password and the second factor.
PENDING_SIGN_IN = "pending_sign_in"


@bp.app_context_processor
def _role_labels() -> dict[str, object]:
    return {"role_labels": ROLE_LABELS}


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(rate_limits.SIGN_IN_PER_ADDRESS, methods=["POST"])
@limiter.limit(
    rate_limits.FAILED_SIGN_IN_PER_ACCOUNT,
    methods=["POST"],
    key_func=rate_limits.account_key,
    deduct_when=rate_limits.failed_sign_in,
    on_breach=rate_limits.audit_sign_in_lockout,
)
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("core.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = services.check_password(
            db.session, form.email.data, form.password.data, client_address()
        )
        if user is not None:
            _adopt_language_chosen_before_sign_in(user)
            next_url = safe_next_url(request.args.get("next"))
            if mfa.required_for(user):
                db.session.commit()
                _start_pending_sign_in(user, next_url)
                endpoint = "two_factor" if mfa.is_enrolled(user) else "two_factor_setup"
                return redirect(url_for(f"accounts.{endpoint}"))
            return _finish_sign_in(user, next_url)
        db.session.commit()
        error = _("The email address or password is not correct")
    status = 400 if request.method == "POST" else 200
    return render_template("accounts/login.html", form=form, error=error), status


def _finish_sign_in(user: User, next_url: str | None):
    """Every factor passed: open the server-side session and go on."""
    result = services.open_sign_in(db.session, user, client_address(), request.user_agent.string)
    db.session.commit()
    session.pop(PENDING_SIGN_IN, None)
    login_user(result.user)
    return redirect(next_url or url_for("core.home"))


def _start_pending_sign_in(user: User, next_url: str | None) -> None:
    session[PENDING_SIGN_IN] = {
        "user_id": user.id,
        "started": time.time(),
        "attempts": 0,
        "next": next_url,
    }


def _pending_user() -> User | None:
    """The account whose password was just accepted, while the second factor is asked for."""
    pending = session.get(PENDING_SIGN_IN)
    limit = current_app.config["MFA_PENDING_MINUTES"] * 60
    if not pending or time.time() - pending.get("started", 0) > limit:
        session.pop(PENDING_SIGN_IN, None)
        return None
    user = db.session.get(User, pending["user_id"])
    return user if user is not None and user.active else None


@bp.route("/two-factor", methods=["GET", "POST"])
@limiter.limit(rate_limits.SECOND_FACTOR_PER_ADDRESS, methods=["POST"])
@public
def two_factor():
    user = _pending_user()
    if user is None:
        flash(_("Sign in again to continue."), "info")
        return redirect(url_for("accounts.login"))
    if not mfa.is_enrolled(user):
        return redirect(url_for("accounts.two_factor_setup"))
    form = TwoFactorForm()
    if form.validate_on_submit():
        if mfa.verify(db.session, user, form.code.data):
            return _finish_sign_in(user, session[PENDING_SIGN_IN].get("next"))
        db.session.commit()
        pending = session[PENDING_SIGN_IN]
        pending["attempts"] += 1
        session[PENDING_SIGN_IN] = pending
        if pending["attempts"] >= current_app.config["MFA_MAX_ATTEMPTS"]:
            session.pop(PENDING_SIGN_IN, None)
            flash(_("Too many wrong codes. Sign in again."), "error")
            return redirect(url_for("accounts.login"))
        form.code.errors.append(
            _(
                "That code is not right, or it was already used. Enter the "
                "newest code from your app."
            )
        )
    status = 400 if form.errors else 200
    return render_template("accounts/two_factor.html", form=form), status


@bp.route("/two-factor/setup", methods=["GET", "POST"])
@limiter.limit(rate_limits.SECOND_FACTOR_PER_ADDRESS, methods=["POST"])
@public
def two_factor_setup():
    user = _pending_user()
    if user is None:
        flash(_("Sign in again to continue."), "info")
        return redirect(url_for("accounts.login"))
    if mfa.is_enrolled(user):
        return redirect(url_for("accounts.two_factor"))
    secret = mfa.pending_secret(db.session, user)
    db.session.commit()
    form = TwoFactorSetupForm()
    if form.validate_on_submit():
        try:
            codes = mfa.enroll(db.session, user, form.code.data)
        except AccountError as exc:
            db.session.commit()  # keep the audited failure
            form.code.errors.append(str(exc))
        else:
            next_url = session[PENDING_SIGN_IN].get("next")
            _finish_sign_in(user, next_url)
            return render_template(
                "accounts/recovery_codes.html",
                codes=codes,
                next_url=next_url or url_for("core.home"),
            )
    status = 400 if form.errors else 200
    uri = mfa.provisioning_uri(user, secret)
    return render_template(
        "accounts/two_factor_setup.html",
        form=form,
        secret=secret,
        qr_code=mfa.qr_code_data_uri(uri),
    ), status


def _adopt_language_chosen_before_sign_in(user: User) -> None:
    """Someone who switched language on the sign-in page wants to carry on in that language."""
    chosen = session.get(SESSION_LOCALE_KEY)
    if chosen in current_app.config["LANGUAGES"] and chosen != user.locale:
        services.set_locale(db.session, user, chosen)


@bp.route("/sign-out", methods=["POST"])
@signed_in
def logout():
    if EmptyForm().validate_on_submit():
        services.sign_out(db.session, current_user.current_session)
        db.session.commit()
        logout_user()
        flash(_("You have signed out."), "success")
    return redirect(url_for("accounts.login"))


@bp.route("/password", methods=["GET", "POST"])
@signed_in
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            services.change_password(
                db.session,
                current_user,
                form.current_password.data,
                form.password.data,
                current_user.current_session,
            )
        except AccountError as exc:
            form[exc.field or "password"].errors.append(str(exc))
        else:
            db.session.commit()
            flash(
                _("Your password has been changed. Your other sessions were signed out."), "success"
            )
            return redirect(url_for("core.home"))
    status = 400 if form.errors else 200
    return render_template("accounts/change_password.html", form=form), status


@bp.route("/sessions")
@signed_in
@reads_only
def sessions():
    rows = services.open_sessions(db.session, current_user)
    return render_template("accounts/sessions.html", rows=rows, form=EmptyForm())


@bp.route("/sessions/<int:session_id>/end", methods=["POST"])
@signed_in
def end_session(session_id: int):
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != current_user.id:
        abort(404)  # someone else's session does not exist, as far as this user knows
    if not EmptyForm().validate_on_submit():
        abort(400)
    ending_this_one = session_id == current_user.current_session.id
    try:
        services.revoke_session(db.session, current_user, session_id)
    except AccountError as exc:
        flash(str(exc), "info")
        return redirect(url_for("accounts.sessions"))
    db.session.commit()
    if ending_this_one:
        logout_user()
        return redirect(url_for("accounts.login"))
    flash(_("That session has been signed out."), "success")
    return redirect(url_for("accounts.sessions"))


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@limiter.limit(rate_limits.LINKS_PER_ADDRESS)
@public
def accept_invitation(token: str):
    invitation = services.find_invitation(db.session, token)
    if invitation is None:
        abort(404)
    try:
        invitation.ensure_usable()
    except AccountError as exc:
        return render_template("accounts/invitation_unusable.html", message=str(exc)), 410
    form = AcceptInvitationForm()
    if form.validate_on_submit():
        try:
            user = services.accept_invitation(
                db.session, invitation, form.password.data, current_locale_code()
            )
            result = services.sign_in(
                db.session,
                user.email,
                form.password.data,
                client_address(),
                request.user_agent.string,
            )
        except AccountError as exc:
            form.password.errors.append(str(exc))
        else:
            db.session.commit()
            if current_user.is_authenticated:
                logout_user()
            if result is not None:
                login_user(result.user)
            flash(_("Your account is ready. Welcome."), "success")
            return redirect(url_for("core.home"))
    status = 400 if form.errors else 200
    return render_template(
        "accounts/accept_invitation.html", form=form, invitation=invitation
    ), status


# --- therapists: patients and their invitations ------------------------------------------------


@bp.route("/patients")
@roles_required(Role.THERAPIST)
@reads_only
def patients():
    form = AccountSearchForm(request.args)
    listed, status = _searched_list(
        form, lambda page, search: patient_list(db.session, current_user.id, page, search)
    )
    return render_template(
        "accounts/patients.html",
        listed=listed,
        search_form=form,
        search=form.search_text(),
        form=EmptyForm(),
        unused_invitation_days=UNUSED_INVITATIONS_KEPT_FOR.days,
    ), status


def _searched_list(form, read):
    """Check a list's search form and read the page of the list asked for: (the page, 200),
    or 400 with the whole list when the search was refused; 404 for a page not there."""
    valid = form.validate()
    try:
        return read(requested_page(request.args.get("page")), form.search_text()), (
            200 if valid else 400
        )
    except NoSuchPage:
        abort(404)


@bp.route("/patients/invite", methods=["GET", "POST"])
@limiter.limit(rate_limits.LINKS_CREATED_PER_USER, methods=["POST"], key_func=rate_limits.user_key)
@roles_required(Role.THERAPIST)
def invite_patient():
    form = InvitePatientForm()
    return _invite(form, Role.PATIENT, "accounts/invite_patient.html", "accounts.patients")


@bp.route("/invitations/<int:invitation_id>/withdraw", methods=["POST"])
@roles_required(Role.THERAPIST, Role.ADMINISTRATOR)
def revoke_invitation(invitation_id: int):
    invitation = db.get_or_404(Invitation, invitation_id)
    if invitation.invited_by_id != current_user.id and current_user.role != Role.ADMINISTRATOR:
        abort(403)
    back = url_for("accounts.patients" if current_user.role == Role.THERAPIST else "accounts.staff")
    if EmptyForm().validate_on_submit():
        try:
            services.revoke_invitation(db.session, invitation, current_user)
        except AccountError as exc:
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(_("The invitation was withdrawn; its link no longer works."), "success")
    return redirect(back)


@bp.route("/users/<int:user_id>/password-reset-link", methods=["POST"])
@limiter.limit(rate_limits.LINKS_CREATED_PER_USER, key_func=rate_limits.user_key)
@roles_required(Role.THERAPIST, Role.ADMINISTRATOR)
def password_reset_link(user_id: int):
    user = db.get_or_404(User, user_id)
    if not services.can_issue_password_reset(current_user, user):
        abort(403)
    back = "accounts.patients" if current_user.role == Role.THERAPIST else "accounts.staff"
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        invitation, token = services.create_password_reset(db.session, current_user, user)
    except AccountError as exc:
        flash(str(exc), "error")
        return redirect(url_for(back))
    emailed = _email_link(invitation, token, user.locale)
    db.session.commit()
    link = url_for("accounts.accept_invitation", token=token, _external=True)
    return render_template(
        "accounts/invitation_created.html",
        invitation=invitation,
        link=link,
        list_endpoint=back,
        emailed=emailed,
    )


def _email_link(invitation, token: str, locale: str) -> bool:
    """With a mail server, the link also goes by email (queued with this change)."""
    from portal.notifications.mail import mail_configured
    from portal.notifications.services import queue_link

    if not mail_configured():
        return False
    kind = "password_reset" if invitation.is_password_reset else "invitation"
    path = url_for("accounts.accept_invitation", token=token)
    queue_link(db.session, invitation.email, locale, kind, path)
    return True


def _invite(form, role: Role, template: str, list_endpoint: str):
    if form.validate_on_submit():
        chosen_role = Role(form.role.data) if hasattr(form, "role") else role
        try:
            invitation, token = services.create_invitation(
                db.session, current_user, form.email.data, form.full_name.data, chosen_role
            )
        except AccountError as exc:
            form.email.errors.append(str(exc))
        else:
            emailed = _email_link(invitation, token, current_locale_code())
            db.session.commit()
            link = url_for("accounts.accept_invitation", token=token, _external=True)
            return render_template(
                "accounts/invitation_created.html",
                invitation=invitation,
                link=link,
                list_endpoint=list_endpoint,
                emailed=emailed,
            )
    status = 400 if form.errors else 200
    return render_template(template, form=form), status


# --- administrators: staff accounts ------------------------------------------------------------


@bp.route("/staff")
@roles_required(Role.ADMINISTRATOR)
@reads_only
def staff():
    form = StaffSearchForm(request.args)
    listed, status = _searched_list(
        form, lambda page, search: account_list(db.session, form.roles_shown(), page, search)
    )
    invitations = db.session.scalars(
        select(Invitation)
        .where(Invitation.role != Role.PATIENT, Invitation.purpose == PURPOSE_NEW_ACCOUNT)
        .order_by(Invitation.created_at.desc())
    ).all()
    return render_template(
        "accounts/staff.html",
        listed=listed,
        search_form=form,
        search=form.search_text(),
        invitations=invitations,
        form=EmptyForm(),
    ), status


@bp.route("/staff/invite", methods=["GET", "POST"])
@limiter.limit(rate_limits.LINKS_CREATED_PER_USER, methods=["POST"], key_func=rate_limits.user_key)
@roles_required(Role.ADMINISTRATOR)
def invite_staff():
    form = InviteStaffForm()
    return _invite(form, Role.THERAPIST, "accounts/invite_staff.html", "accounts.staff")


@bp.route("/staff/<int:user_id>", methods=["GET", "POST"])
@roles_required(Role.ADMINISTRATOR)
def manage_user(user_id: int):
    user = db.get_or_404(User, user_id)
    role_form = ChangeRoleForm(prefix="role")
    status_form = AccountStatusForm(prefix="status")
    mfa_form = AccountStatusForm(prefix="mfa")
    membership_form = PanelMembershipForm(prefix="panel", membership=user.panel_membership)
    forms = {
        "change_role": role_form,
        "panel_membership": membership_form,
        "deactivate": status_form,
        "reactivate": status_form,
        "reset_mfa": mfa_form,
    }
    if request.method == "POST":
        action = request.form.get("action")
        if action not in forms:
            abort(400)
        form = forms[action]
        if form.validate_on_submit():
            try:
                message = _apply_user_action(user, action, form)
            except AccountError as exc:
                flash(str(exc), "error")
            else:
                db.session.commit()
                flash(message, "success")
                return redirect(url_for("accounts.manage_user", user_id=user.id))
    status = 400 if any(form.errors for form in forms.values()) else 200
    return render_template(
        "accounts/manage_user.html",
        user=user,
        role_form=role_form,
        status_form=status_form,
        mfa_form=mfa_form,
        membership_form=membership_form,
        mfa_enrolled=mfa.is_enrolled(user),
    ), status


def _apply_user_action(user: User, action: str, form) -> str:
    if action == "change_role":
        services.change_role(db.session, current_user, user, Role(form.role.data), form.reason.data)
        return _("The role was changed; their sessions were signed out.")
    if action == "panel_membership":
        services.set_panel_membership(
            db.session, current_user, user, form.membership.data, form.reason.data
        )
        return _("The panel membership was recorded.")
    if action == "reset_mfa":
        mfa.reset(db.session, current_user, user, form.reason.data)
        return _(
            "Two-step verification was reset. They will set it up again at their next sign-in."
        )
    reactivate = action == "reactivate"
    services.set_active(db.session, current_user, user, reactivate, form.reason.data)
    if reactivate:
        return _("The account was reactivated.")
    return _("The account was deactivated; its sessions were ended.")
