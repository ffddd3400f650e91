"""Error pages that reveal nothing internal, in the portal's style and the user's language."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from portal.extensions import db

log = logging.getLogger("portal.errors")

ERROR_TEXT = {
    400: (
        _l("There is a problem with your request"),
        _l("The page could not use what was sent. Go back, check your answers and try again."),
    ),
    403: (
        _l("You do not have access to this page"),
        _l("Your account does not allow this. If you think it should, contact your study team."),
    ),
    404: (
        _l("Page not found"),
        _l(
            "If you typed the web address, check it is correct. If you pasted it, check you "
            "copied the whole address."
        ),
    ),
    405: (
        _l("This action is not available here"),
        _l("Go back to the previous page and use the buttons on it."),
    ),
    410: (
        _l("This link is no longer valid"),
        _l("The link has expired or was already used. Ask the study team for a new one."),
    ),
    413: (_l("The file or form is too large"), _l("Go back and send something smaller.")),
    429: (
        _l("Too many attempts"),
        _l("You have tried this too many times. Wait a few minutes, then try again."),
    ),
    500: (
        _l("Sorry, there is a problem with the service"),
        _l("Nothing you already saved has been lost. Try again later."),
    ),
}


def render_error(code: int, detail: str | None = None):
    title, text = ERROR_TEXT.get(code, ERROR_TEXT[400])
    return render_template(
        "errors/error.html", code=code, title=title, text=text, detail=detail
    ), code


def _handle_csrf(error: CSRFError):
    return render_error(
        400,
        str(
            _l(
                "This form has expired or was not sent from this site. Reload the page and try "
                "again; nothing you had already saved has been lost."
            )
        ),
    )


def _handle_http(error: HTTPException):
    code = error.code or 500
    if code >= 500:
        return _handle_unexpected(error)
    return render_error(code if code in ERROR_TEXT else 400)


def _handle_unexpected(error: Exception):
    log.exception("unhandled error", exc_info=error)
    try:
        db.session.rollback()
    except Exception:
        log.exception("rollback after an unhandled error failed")
    return render_error(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _handle_csrf)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(InternalServerError, _handle_unexpected)
    app.register_error_handler(Exception, _handle_unexpected)
