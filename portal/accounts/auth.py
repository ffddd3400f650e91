"""Flask-Login wiring: the cookie names a server-side session, checked on every request."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

from portal.accounts.models import User
from portal.accounts.services import find_session, load_session, session_change
from portal.core.db import begin_reading
from portal.extensions import db, login_manager


@login_manager.user_loader
def _load_user(token: str) -> User | None:
    session = db.session
    # Most requests only read their session: they do so without SQLite's write lock, which
    # every request would otherwise queue for. A touch of last_seen or a timeout is then
    # written in a unit of work of its own, committed before the view runs.
    begin_reading(session)
    row = find_session(session, token)
    session.commit()
    if row is not None and session_change(row) is not None:
        session.expire(row.user)  # decide on the rows as they are in the writing transaction
        session.expire(row)
        row = load_session(session, token)
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
