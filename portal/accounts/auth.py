"""Flask-Login wiring: the cookie names a server-side session, checked on every request."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

from portal.accounts.models import User
from portal.accounts.services import load_session
from portal.extensions import db, login_manager


@login_manager.user_loader
def _load_user(token: str) -> User | None:
    session = db.session
    row = load_session(session, token)
    # Touching last_seen or ending a timed-out session is its own small unit of work; committing
    # here also releases SQLite's write lock before the view runs.
    session.commit()
    if row is None:
        return None
    user = row.user
    user.session_token = token
    user.current_session = row
    return user


def init_app(app: Flask) -> None:
    login_manager.login_view = "accounts.login"
    login_manager.login_message = _l("Sign in to continue.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
