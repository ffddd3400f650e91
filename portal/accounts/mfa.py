"""The second factor: TOTP (RFC 6238) with single-use codes, and single-use recovery codes."""

from __future__ import annotations

import hashlib
import secrets
import time

import pyotp
import segno
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import AccountError, RecoveryCode, User
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import Role

TOTP_STEP_SECONDS = 30
# One step either side absorbs clock drift between the phone and the server.
ACCEPTED_DRIFT_STEPS = 1
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)


def required_for(user: User) -> bool:
    return current_app.config["MFA_REQUIRED_FOR_STAFF"] and user.role != Role.PATIENT


def is_enrolled(user: User) -> bool:
    return user.totp_secret is not None and user.totp_enabled_at is not None


def pending_secret(session: Session, user: User) -> str:
    """The secret being set up (created on first use and kept until confirmed)."""
    if user.totp_pending_secret is None:
        user.totp_pending_secret = pyotp.random_base32()
        audit.record(
            session,
            "account.mfa_setup_started",
            actor=audit.Actor.of(user),
            object_type="user",
            object_id=user.id,
        )
    return user.totp_pending_secret


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["MFA_ISSUER"]
    )


def qr_code_data_uri(uri: str) -> str:
    """An SVG QR code as a data: URI (allowed by the CSP's img-src)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, dark="#212b32", light="#ffffff")


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code equals `code` (within the accepted drift), or None."""
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // TOTP_STEP_SECONDS)
    for step in range(current - ACCEPTED_DRIFT_STEPS, current + ACCEPTED_DRIFT_STEPS + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _recovery_digest(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode("ascii", "ignore")).hexdigest()


def _new_recovery_codes(session: Session, user: User) -> list[str]:
    for old in session.scalars(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.used_at.is_(None),
            RecoveryCode.revoked_at.is_(None),
        )
    ):
        old.revoked_at = utcnow()
    codes = []
    for _index in range(current_app.config["RECOVERY_CODE_COUNT"]):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        code = f"{raw[:5]}-{raw[5:]}"
        session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_digest(code)))
        codes.append(code)
    session.flush()
    return codes


def enroll(session: Session, user: User, code: str) -> list[str]:
    """Confirm the pending secret with a code from the app; return recovery codes (shown once)."""
    secret = user.totp_pending_secret
    step = _matching_step(secret, _normalise(code)) if secret else None
    if step is None:
        audit.record(
            session,
            "account.mfa_failed",
            actor=audit.Actor.of(user),
            object_type="user",
            object_id=user.id,
            reason="setup code did not match",
        )
        raise AccountError(
            _("That code did not match. Check the time on your phone and enter the newest code."),
            field="code",
        )
    user.totp_secret, user.totp_pending_secret = secret, None
    user.totp_enabled_at, user.totp_last_counter = utcnow(), step
    codes = _new_recovery_codes(session, user)
    audit.record(
        session,
        "account.mfa_enrolled",
        actor=audit.Actor.of(user),
        object_type="user",
        object_id=user.id,
        after={"recovery_codes": len(codes)},
    )
    return codes


def verify(session: Session, user: User, code: str) -> bool:
    """Accept a TOTP code for a time step after the last one used, or an unused recovery code."""
    cleaned = _normalise(code)
    actor = audit.Actor.of(user)
    if cleaned.isdigit() and len(cleaned) == 6 and user.totp_secret:
        step = _matching_step(user.totp_secret, cleaned)
        if step is not None and step > (user.totp_last_counter or -1):
            user.totp_last_counter = step
            return True
        reason = "code already used" if step is not None else "wrong code"
    else:
        recovery = session.scalar(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _recovery_digest(cleaned),
                RecoveryCode.used_at.is_(None),
                RecoveryCode.revoked_at.is_(None),
            )
        )
        if recovery is not None:
            recovery.used_at = utcnow()
            audit.record(
                session,
                "account.mfa_recovery_code_used",
                actor=actor,
                object_type="user",
                object_id=user.id,
            )
            return True
        reason = "wrong recovery code"
    audit.record(
        session,
        "account.mfa_failed",
        actor=actor,
        object_type="user",
        object_id=user.id,
        reason=reason,
    )
    return False


def reset(session: Session, admin: User, user: User, reason: str) -> None:
    """An administrator clears a lost factor: the person sets up a new one at next sign-in."""
    from portal.accounts.services import end_all_sessions

    if user.id == admin.id:
        raise AccountError(_("Another administrator must reset your own second factor"))
    before = {"mfa_enrolled": is_enrolled(user)}
    user.totp_secret = user.totp_pending_secret = None
    user.totp_enabled_at = user.totp_last_counter = None
    for code in session.scalars(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.used_at.is_(None),
            RecoveryCode.revoked_at.is_(None),
        )
    ):
        code.revoked_at = utcnow()
    audit.record(
        session,
        "account.mfa_reset",
        actor=audit.Actor.of(admin),
        object_type="user",
        object_id=user.id,
        before=before,
        after={"mfa_enrolled": False},
        reason=reason,
    )
    end_all_sessions(session, user, "mfa_reset", audit.Actor.of(admin))
