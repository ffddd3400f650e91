"""Account operations: each applies the rules, writes its audit event and flushes (no commit)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from portal.accounts.models import (
    PURPOSE_NEW_ACCOUNT,
    PURPOSE_PASSWORD_RESET,
    AccountError,
    Invitation,
    User,
    UserSession,
    normalise_email,
    pending_invitation_count,
)
from portal.accounts.passwords import hash_password, is_common, needs_rehash, verify_password
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import STAFF_ROLES, Role

# Who may invite whom: therapists bring in patients; administrators create staff accounts.
INVITABLE_ROLES: dict[Role, frozenset[Role]] = {
    Role.THERAPIST: frozenset({Role.PATIENT}),
    Role.ADMINISTRATOR: STAFF_ROLES,
}


def token_digest(token: str) -> str:
    """Tokens are stored only as their SHA-256, so a database leak reveals no live link."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_new_password(password: str) -> None:
    """Length rules only (ASVS: no composition rules); raises AccountError."""
    config = current_app.config
    if len(password) < config["PASSWORD_MIN_LENGTH"]:
        raise AccountError(
            _("Enter a password of at least %(n)d characters", n=config["PASSWORD_MIN_LENGTH"]),
            field="password",
        )
    if is_common(password):
        raise AccountError(
            _(
                "This password is one of the most common ones, so it is easy to guess. Choose "
                "another: a few unrelated words make a strong password."
            ),
            field="password",
        )
    if len(password) > config["PASSWORD_MAX_LENGTH"]:
        raise AccountError(
            _("Enter a password of at most %(n)d characters", n=config["PASSWORD_MAX_LENGTH"]),
            field="password",
        )


# --- signing in and out ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    user: User
    session_row: UserSession
    token: str


def sign_in(
    session: Session, email: str, password: str, ip_address: str | None, user_agent: str | None
) -> SignIn | None:
    """Check the password and open a session (no second factor: patients, tests, CLI)."""
    user = check_password(session, email, password, ip_address)
    return None if user is None else open_sign_in(session, user, ip_address, user_agent)


def check_password(
    session: Session, email: str, password: str, ip_address: str | None
) -> User | None:
    """The first factor. Failures are audited; success opens nothing by itself."""
    user = User.by_email(session, email)
    password_ok = verify_password(user.password_hash if user else None, password)
    if user is None or not password_ok or not user.active:
        reason = (
            "unknown account"
            if user is None
            else ("wrong password" if not password_ok else "account deactivated")
        )
        audit.record(
            session,
            "account.login_failed",
            actor=audit.ANONYMOUS,
            object_type="user",
            object_id=user.id if user else None,
            after={"email": normalise_email(email)[:254], "ip_address": ip_address},
            reason=reason,
        )
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def reauthenticated(
    session: Session, user: User, password: str, *, refused: str, object_type: str, object_id
) -> bool:
    """The password re-entered for a signature or a withdrawal (21 CFR 11.200); a wrong one is
    audited as `refused` against the object it was for."""
    if verify_password(user.password_hash, password):
        return True
    audit.record(
        session,
        refused,
        actor=audit.Actor.of(user),
        object_type=object_type,
        object_id=object_id,
        reason="wrong password",
    )
    return False


def open_sign_in(
    session: Session, user: User, ip_address: str | None, user_agent: str | None
) -> SignIn:
    """Every factor passed: open a new server-side session and audit the sign-in."""
    session_row, token = _open_session(session, user, ip_address, user_agent)
    user.session_token, user.current_session = token, session_row
    audit.record(
        session,
        "account.login",
        actor=audit.Actor.of(user),
        object_type="user_session",
        object_id=session_row.id,
        after={"user_id": user.id, "ip_address": ip_address},
    )
    return SignIn(user, session_row, token)


def _open_session(
    session: Session, user: User, ip_address: str | None, user_agent: str | None
) -> tuple[UserSession, str]:
    token = secrets.token_urlsafe(32)
    row = UserSession(
        user_id=user.id,
        token_hash=token_digest(token),
        ip_address=(ip_address or "")[:45] or None,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(row)
    session.flush()
    return row, token


def load_session(session: Session, token: str) -> UserSession | None:
    """The open session for a cookie token, ended here if it has passed a time limit."""
    row = find_session(session, token)
    if row is None:
        return None
    change = session_change(row)
    if change == "touch":
        row.last_seen_at = utcnow()
    elif change is not None:
        _end_session(session, row, change, audit.SYSTEM)
        return None
    return row


def find_session(session: Session, token: str) -> UserSession | None:
    """The open session for a cookie token, whatever its time limits say (reads only)."""
    found = session.execute(_session_and_user_query(), {"digest": token_digest(token)}).first()
    if found is None:
        return None
    row, user = found
    set_committed_value(row, "user", user)  # loaded, as joinedload would leave it
    if not row.is_open or not user.active:
        return None
    return row


@functools.cache
def _session_and_user_query() -> Select:
    """Asked on every request, so built once: one query for both rows (two entities cost the ORM
    less than joinedload), and a statement kept between requests also keeps its cache key, which
    SQLAlchemy otherwise works out afresh for every new statement object."""
    return (
        select(UserSession, User)
        .join(UserSession.user)
        .where(UserSession.token_hash == bindparam("digest"))
    )


def session_change(row: UserSession) -> str | None:
    """What this request must write about the session: "idle_timeout" or "absolute_timeout"
    to end it, "touch" to move last_seen on (at most once a minute, so that reads do not all
    become writes), or None."""
    config = current_app.config
    now = utcnow()
    if now - row.last_seen_at > dt.timedelta(minutes=config["SESSION_IDLE_MINUTES"]):
        return "idle_timeout"
    if now - row.created_at > dt.timedelta(hours=config["SESSION_ABSOLUTE_HOURS"]):
        return "absolute_timeout"
    if now - row.last_seen_at > dt.timedelta(minutes=1):
        return "touch"
    return None


def sign_out(session: Session, row: UserSession) -> None:
    _end_session(session, row, "logout", audit.Actor.of(row.user))


def _end_session(session: Session, row: UserSession, reason: str, actor: audit.Actor) -> None:
    row.end(reason)
    action = "account.logout" if reason == "logout" else "account.session_ended"
    audit.record(
        session,
        action,
        actor=actor,
        object_type="user_session",
        object_id=row.id,
        after={"user_id": row.user_id},
        reason=reason,
    )
    session.flush()


def open_sessions(session: Session, user: User) -> list[UserSession]:
    return list(
        session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .order_by(UserSession.last_seen_at.desc())
        )
    )


def revoke_session(session: Session, user: User, session_id: int) -> None:
    """Sign one of your own other sessions out (a lost phone, a shared computer)."""
    row = session.get(UserSession, session_id)
    if row is None or row.user_id != user.id or not row.is_open:
        raise AccountError(_("That session has already ended"))
    _end_session(session, row, "revoked", audit.Actor.of(user))


def end_all_sessions(session: Session, user: User, reason: str, actor: audit.Actor) -> int:
    return _end_other_sessions(session, user, None, reason, actor)


def _end_other_sessions(
    session: Session, user: User, keep: UserSession | None, reason: str, actor: audit.Actor
) -> int:
    rows = session.scalars(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    ).all()
    ended = 0
    for row in rows:
        if keep is None or row.id != keep.id:
            _end_session(session, row, reason, actor)
            ended += 1
    return ended


# --- passwords ------------------------------------------------------------------------------


def change_password(
    session: Session, user: User, current: str, new: str, current_session: UserSession | None
) -> None:
    """Re-check the current password, store the new hash, end every other session."""
    if not verify_password(user.password_hash, current):
        raise AccountError(_("Your current password is not correct"), field="current_password")
    check_new_password(new)
    user.password_hash = hash_password(new)
    audit.record(
        session,
        "account.password_changed",
        actor=audit.Actor.of(user),
        object_type="user",
        object_id=user.id,
    )
    _end_other_sessions(session, user, current_session, "password_change", audit.Actor.of(user))


# --- invitations ----------------------------------------------------------------------------


def create_invitation(
    session: Session, inviter: User, email: str, full_name: str, role: Role
) -> tuple[Invitation, str]:
    """Create a single-use link; the raw token is returned once and never stored."""
    allowed = INVITABLE_ROLES.get(Role(inviter.role), frozenset())
    if role not in allowed:
        raise AccountError(_("You cannot invite someone with this role"), field="email")
    email = normalise_email(email)
    if User.by_email(session, email) is not None:
        raise AccountError(_("An account with this email address already exists"), field="email")
    if pending_invitation_count(session, email):
        raise AccountError(_("This person already has an invitation waiting"), field="email")
    invitation, token = _new_link(
        session,
        inviter,
        email=email,
        full_name=full_name.strip(),
        role=role,
        purpose=PURPOSE_NEW_ACCOUNT,
    )
    audit.record(
        session,
        "invitation.created",
        actor=audit.Actor.of(inviter),
        object_type="invitation",
        object_id=invitation.id,
        after={
            "email": invitation.email,
            "full_name": invitation.full_name,
            "role": invitation.role,
            "expires_at": audit.format_timestamp(invitation.expires_at),
        },
    )
    return invitation, token


def can_issue_password_reset(actor: User, user: User) -> bool:
    """Administrators for anyone else; therapists for the patients they brought in."""
    if actor.id == user.id:
        return False
    if actor.role == Role.ADMINISTRATOR:
        return True
    return (
        actor.role == Role.THERAPIST
        and user.role == Role.PATIENT
        and user.invited_by_id == actor.id
    )


def create_password_reset(session: Session, actor: User, user: User) -> tuple[Invitation, str]:
    """A single-use link on which `user` sets a new password; earlier unused links stop working."""
    if not can_issue_password_reset(actor, user):
        raise AccountError(_("You cannot reset this person's password"))
    if not user.active:
        raise AccountError(_("This account is deactivated. Reactivate it first."))
    replaced = session.scalars(
        select(Invitation).where(
            Invitation.user_id == user.id,
            Invitation.purpose == PURPOSE_PASSWORD_RESET,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ).all()
    for old in replaced:
        old.revoked_at = utcnow()
    invitation, token = _new_link(
        session,
        actor,
        email=user.email,
        full_name=user.full_name,
        role=Role(user.role),
        purpose=PURPOSE_PASSWORD_RESET,
        user_id=user.id,
    )
    audit.record(
        session,
        "account.password_reset_link_created",
        actor=audit.Actor.of(actor),
        object_type="user",
        object_id=user.id,
        after={
            "link_id": invitation.id,
            "expires_at": audit.format_timestamp(invitation.expires_at),
            "replaced_link_ids": [old.id for old in replaced],
        },
    )
    return invitation, token


def _new_link(
    session: Session,
    actor: User,
    *,
    email: str,
    full_name: str,
    role: Role,
    purpose: str,
    user_id: int | None = None,
) -> tuple[Invitation, str]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    invitation = Invitation(
        token_hash=token_digest(token),
        email=email,
        full_name=full_name,
        role=str(role),
        purpose=purpose,
        user_id=user_id,
        invited_by_id=actor.id,
        created_at=now,
        expires_at=now + dt.timedelta(hours=current_app.config["INVITATION_TTL_HOURS"]),
    )
    session.add(invitation)
    session.flush()
    return invitation, token


def find_invitation(session: Session, token: str) -> Invitation | None:
    return session.scalar(select(Invitation).where(Invitation.token_hash == token_digest(token)))


def accept_invitation(session: Session, invitation: Invitation, password: str, locale: str) -> User:
    """Create the invited person's account (or set a new password); the link is then spent."""
    invitation.ensure_usable()
    check_new_password(password)
    if invitation.is_password_reset:
        return _complete_password_reset(session, invitation, password)
    if User.by_email(session, invitation.email) is not None:
        raise AccountError(_("An account with this email address already exists"))
    user = User(
        email=invitation.email,
        full_name=invitation.full_name,
        role=invitation.role,
        password_hash=hash_password(password),
        locale=locale,
        invited_by_id=invitation.invited_by_id,
    )
    session.add(user)
    session.flush()
    invitation.mark_accepted(user)
    actor = audit.Actor.of(user)
    audit.record(
        session,
        "account.created",
        actor=actor,
        object_type="user",
        object_id=user.id,
        after=user.audit_view(),
        reason=f"invitation {invitation.id}",
    )
    audit.record(
        session,
        "invitation.accepted",
        actor=actor,
        object_type="invitation",
        object_id=invitation.id,
        before={"status": "pending"},
        after={"status": "accepted", "user_id": user.id},
    )
    return user


def _complete_password_reset(session: Session, invitation: Invitation, password: str) -> User:
    user = invitation.user
    if not user.active:
        raise AccountError(_("This account is deactivated. Contact your study team."))
    user.password_hash = hash_password(password)
    invitation.mark_accepted(user)
    actor = audit.Actor.of(user)
    audit.record(
        session,
        "account.password_reset",
        actor=actor,
        object_type="user",
        object_id=user.id,
        reason=f"reset link {invitation.id}",
    )
    _end_other_sessions(session, user, None, "password_reset", actor)
    return user


def revoke_invitation(session: Session, invitation: Invitation, actor_user: User) -> None:
    invitation.ensure_usable()
    invitation.revoked_at = utcnow()
    audit.record(
        session,
        "invitation.revoked",
        actor=audit.Actor.of(actor_user),
        object_type="invitation",
        object_id=invitation.id,
        before={"status": "pending"},
        after={"status": "revoked"},
    )


# --- administration -------------------------------------------------------------------------


def create_user(
    session: Session,
    *,
    email: str,
    full_name: str,
    role: Role,
    password: str,
    actor: audit.Actor,
    locale: str = "en_GB",
    reason: str | None = None,
) -> User:
    """Create an account directly (first administrator, demo data)."""
    check_new_password(password)
    email = normalise_email(email)
    if User.by_email(session, email) is not None:
        raise AccountError(_("An account with this email address already exists"))
    user = User(
        email=email,
        full_name=full_name.strip(),
        role=str(role),
        password_hash=hash_password(password),
        locale=locale,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        "account.created",
        actor=actor,
        object_type="user",
        object_id=user.id,
        after=user.audit_view(),
        reason=reason,
    )
    return user


def change_role(session: Session, admin: User, user: User, new_role: Role, reason: str) -> None:
    """Move a staff member to another staff role; patients and staff never swap."""
    if user.id == admin.id:
        raise AccountError(_("You cannot change your own role"))
    if Role.PATIENT in (Role(user.role), new_role):
        raise AccountError(_("Patient accounts and staff accounts cannot be converted"))
    if user.role == new_role:
        raise AccountError(_("This person already has that role"))
    before = user.audit_view()
    user.role = str(new_role)
    audit.record(
        session,
        "account.role_changed",
        actor=audit.Actor.of(admin),
        object_type="user",
        object_id=user.id,
        before=before,
        after=user.audit_view(),
        reason=reason,
    )
    # A new role means new permissions: make them sign in again.
    _end_other_sessions(session, user, None, "role_changed", audit.Actor.of(admin))


def set_panel_membership(
    session: Session, admin: User, user: User, membership: str, reason: str
) -> None:
    """Record whether an ethics panel member is a lay or an expert member (for quorum)."""
    if user.role not in (Role.PANEL_MEMBER, Role.PANEL_CHAIR):
        raise AccountError(_("Only ethics panel members have a panel membership"))
    if membership not in ("lay", "expert"):
        raise AccountError(_("Choose lay or expert"))
    before = user.audit_view()
    user.panel_membership = membership
    audit.record(
        session,
        "account.panel_membership_changed",
        actor=audit.Actor.of(admin),
        object_type="user",
        object_id=user.id,
        before=before,
        after=user.audit_view(),
        reason=reason,
    )


def set_active(session: Session, admin: User, user: User, active: bool, reason: str) -> None:
    """Deactivate (ending every session at once) or reactivate an account."""
    if user.id == admin.id:
        raise AccountError(_("You cannot deactivate your own account"))
    if user.active == active:
        raise AccountError(
            _("This account is already active")
            if active
            else _("This account is already deactivated")
        )
    before = user.audit_view()
    user.active = active
    user.deactivated_at = None if active else utcnow()
    audit.record(
        session,
        "account.reactivated" if active else "account.deactivated",
        actor=audit.Actor.of(admin),
        object_type="user",
        object_id=user.id,
        before=before,
        after=user.audit_view(),
        reason=reason,
    )
    if not active:
        _end_other_sessions(session, user, None, "deactivated", audit.Actor.of(admin))


def set_locale(session: Session, user: User, locale: str) -> None:
    if user.locale == locale:
        return
    before = {"locale": user.locale}
    user.locale = locale
    audit.record(
        session,
        "account.locale_changed",
        actor=audit.Actor.of(user),
        object_type="user",
        object_id=user.id,
        before=before,
        after={"locale": locale},
    )
