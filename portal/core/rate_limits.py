"""Rate limits (Flask-Limiter): brute force on sign-in, codes and links is slowed down.

In-memory counters by default; several servers share a store named by RATELIMIT_STORAGE_URI
(e.g. redis://host:6379/0). Breaches of the sign-in limits are audited as lockouts.
"""

from __future__ import annotations

from flask import request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from portal.accounts.models import normalise_email
from portal.core import audit

SIGN_IN_PER_ADDRESS = "20 per minute; 200 per hour"
FAILED_SIGN_IN_PER_ACCOUNT = "5 per 15 minutes"
SECOND_FACTOR_PER_ADDRESS = "10 per minute"
LINKS_PER_ADDRESS = "30 per hour"  # invitation and password reset links being opened
LINKS_CREATED_PER_USER = "60 per hour"
VERIFICATIONS_PER_ADDRESS = "30 per minute"


def account_key() -> str:
    """The account being signed in to, so one account cannot be tried from many addresses."""
    return "account:" + normalise_email(request.form.get("email", ""))[:254]


def user_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else get_remote_address()


def failed_sign_in(response) -> bool:
    return response.status_code == 400


def audit_sign_in_lockout(_limit) -> None:
    """Record a lockout in the audit trail (it is also why the person sees a 429 page)."""
    from portal.extensions import db

    audit.record(
        db.session,
        "account.login_throttled",
        actor=audit.ANONYMOUS,
        object_type="user",
        after={
            "email": normalise_email(request.form.get("email", ""))[:254],
            "ip_address": request.remote_addr,
        },
        reason="too many sign-in attempts",
    )
    db.session.commit()
