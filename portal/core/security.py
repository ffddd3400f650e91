"""Request ids, CSP nonces and the security headers sent on every response, error pages included."""

from __future__ import annotations

import re
import secrets
import uuid

from flask import Flask, Response, current_app, g, request

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id() -> str:
    """This request's id (from a trusted proxy's X-Request-ID when well formed, else new)."""
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    return g.request_id


def csp_nonce() -> str:
    """A fresh nonce per response for the few inline scripts the layout needs."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _content_security_policy() -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{csp_nonce()}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = _content_security_policy()
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    # Invitation links carry a secret token: never leak a URL to another site.
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    headers["X-Request-ID"] = request_id()
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    if current_app.config["SESSION_COOKIE_SECURE"]:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return response


def _assign_request_id() -> None:
    request_id()


def _refuse_nul_characters():
    """A NUL character is never real input, and PostgreSQL cannot store one in text: refuse it
    up front with a clear 400, instead of failing when saving."""
    values = [*request.args.values(), *(request.form.values() if request.form else ())]
    if any("\x00" in value for value in values):
        from flask_babel import gettext as _

        from portal.core.errors import render_error

        return render_error(
            400,
            _(
                "What you sent contains a hidden control character (NUL) that cannot be saved. "
                "Go back, retype the text and try again; nothing already saved has been lost."
            ),
        )
    return None


def init_app(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.before_request(_refuse_nul_characters)
    app.after_request(_add_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
