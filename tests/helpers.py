"""A test client that knows how to fetch CSRF tokens and sign in, like a browser would."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import event
from werkzeug.test import TestResponse

_CSRF_RE = re.compile(
    r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"'
)


def csrf_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    if match is None:
        raise AssertionError("no CSRF token on the page")
    return match.group(1) or match.group(2)


class PortalClient:
    """Wraps Flask's test client; every POST carries the session's CSRF token unless told not to."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.http = app.test_client()

    def get(self, url: str, **kwargs) -> TestResponse:
        return self.http.get(url, **kwargs)

    def csrf_token(self) -> str:
        return csrf_from(self.http.get("/account/sign-in", follow_redirects=True).text)

    def post(self, url: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf_token())
        return self.http.post(url, data=data, **kwargs)

    def login(self, email: str, password: str) -> TestResponse:
        response = self.post("/account/sign-in", {"email": email, "password": password})
        assert response.status_code == 302, f"sign-in failed for {email}: {response.status_code}"
        return response

    def logout(self) -> TestResponse:
        return self.post("/account/sign-out")

    def session_cookie(self) -> str | None:
        cookie = self.http.get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        return cookie.value if cookie else None

    def set_session_cookie(self, value: str) -> None:
        self.http.set_cookie(self.app.config["SESSION_COOKIE_NAME"], value)


def reads_for(app: Flask, client, url: str) -> int:
    """The SELECTs a page asks (not writes: the sign-in check touches the session at most once
    a minute, whenever that minute happens to pass)."""
    engine = app.extensions["portal.database"][0]
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)
