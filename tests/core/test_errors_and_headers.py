"""Error pages reveal nothing internal and carry the security headers."""

from __future__ import annotations

from portal.core.permissions import public

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def assert_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert "unsafe-inline" not in csp


def test_not_found_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert_security_headers(response)


def test_method_not_allowed_page(client):
    response = client.get("/account/sign-out")
    assert response.status_code == 405
    assert_security_headers(response)


def test_unexpected_error_page_reveals_nothing(make_app, sqlite_url):
    app = make_app(sqlite_url, TESTING=False)

    @app.route("/explode")
    @public
    def explode():
        raise RuntimeError("secret internal detail")

    response = app.test_client().get("/explode")
    assert response.status_code == 500
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert "Sorry, there is a problem with the service" in response.text
    assert response.headers["X-Request-ID"] in response.text  # a reference to quote
    assert_security_headers(response)


def test_authenticated_pages_are_not_cached(client, users):
    from portal.core.permissions import Role

    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    response = client.get("/consent/")
    assert response.headers["Cache-Control"] == "no-store"
    assert_security_headers(response)


def test_session_cookie_flags_and_hsts_outside_development(make_app, sqlite_url):
    app = make_app(sqlite_url, ENVIRONMENT="production")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-portal_session"
    response = app.test_client().get("/account/sign-in", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    cookie = response.headers.get("Set-Cookie", "")
    if cookie:
        assert "Secure" in cookie and "HttpOnly" in cookie


def test_no_hsts_in_development(client):
    assert "Strict-Transport-Security" not in client.get("/account/sign-in").headers
