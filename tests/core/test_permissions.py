"""Every route declares who may reach it; everyone else is refused (checked over the URL map)."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.routing import IntegerConverter

from portal import create_app
from portal.core.permissions import ALL_ROLES, AccessRule, Role, access_rule_for
from tests.conftest import TEST_CONFIG
from tests.helpers import PortalClient


def _url_map_app() -> Flask:
    return create_app({**TEST_CONFIG, "DATABASE_URL": "sqlite://"})


def _routes() -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every route, with placeholder arguments filled in."""
    app = _url_map_app()
    routes = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static":
                continue
            values = {
                arg: 1 if isinstance(rule._converters[arg], IntegerConverter) else "x"
                for arg in rule.arguments
            }
            url = app.url_map.bind("localhost").build(rule.endpoint, values)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                routes.append((rule.endpoint, method, url))
    return routes


ROUTES = _routes()


@pytest.fixture
def app(make_app, sqlite_url):
    """Access rules do not depend on the database: SQLite only here."""
    return make_app(sqlite_url)


def _rule(app: Flask, endpoint: str) -> AccessRule | None:
    with app.test_request_context():
        return access_rule_for(endpoint)


def test_every_route_declares_an_access_rule():
    app = _url_map_app()
    missing = sorted({endpoint for endpoint, _, _ in ROUTES if _rule(app, endpoint) is None})
    assert not missing, f"routes without @public/@roles_required: {missing}"


def test_a_route_without_a_rule_is_denied(app, users):
    @app.route("/forgotten")
    def forgotten():
        return "should never be served"

    client = PortalClient(app)
    client.login(users[Role.ADMINISTRATOR].email, users[Role.ADMINISTRATOR].password)
    assert client.get("/forgotten").status_code == 403


def _request(client: PortalClient, method: str, url: str):
    if method == "GET":
        return client.get(url)
    return client.post(url, {})


@pytest.mark.parametrize(("endpoint", "method", "url"), ROUTES)
def test_each_role_is_refused_where_it_does_not_belong(app, users, endpoint, method, url):
    rule = _rule(app, endpoint)
    refused_roles = sorted(role for role in ALL_ROLES if not rule.allows(role))
    let_through = []
    for role in refused_roles:
        client = PortalClient(app)
        client.login(users[role].email, users[role].password)
        status = _request(client, method, url).status_code
        if status != 403:
            let_through.append((str(role), status))
    assert not let_through, f"{method} {url} must refuse these roles: {let_through}"


@pytest.mark.parametrize(("endpoint", "method", "url"), ROUTES)
def test_strangers_are_sent_to_sign_in(app, endpoint, method, url):
    if _rule(app, endpoint).public:
        return  # public pages are for strangers
    response = _request(PortalClient(app), method, url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/sign-in")


@pytest.mark.parametrize(("endpoint", "method", "url"), ROUTES)
def test_allowed_roles_are_not_refused(app, users, endpoint, method, url):
    """The route's rule lets its roles through (an object check may still refuse afterwards)."""
    from flask import g

    rule = _rule(app, endpoint)
    for role in sorted(rule.roles):
        client = PortalClient(app)
        client.login(users[Role(role)].email, users[Role(role)].password)
        with client.http:
            _request(client, method, url)
            assert not g.get("refused_by_access_rule"), f"{role} refused by {endpoint}'s rule"


STATE_CHANGING = sorted({(endpoint, url) for endpoint, method, url in ROUTES if method == "POST"})
POST_ONLY = sorted(
    {(endpoint, url) for endpoint, method, url in ROUTES if method == "POST"}
    - {(endpoint, url) for endpoint, method, url in ROUTES if method == "GET"}
)


@pytest.mark.parametrize(("endpoint", "url"), STATE_CHANGING)
def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(
    app, users, endpoint, url
):
    rule = _rule(app, endpoint)
    client = PortalClient(app)
    if not rule.public:
        role = sorted(rule.roles)[0]
        client.login(users[Role(role)].email, users[Role(role)].password)
    assert client.post(url, {}, csrf=False).status_code == 400
    assert client.post(url, {"csrf_token": "forged"}, csrf=False).status_code == 400


@pytest.mark.parametrize(("endpoint", "url"), POST_ONLY)
def test_state_changing_routes_refuse_get(app, users, endpoint, url):
    client = PortalClient(app)
    rule = _rule(app, endpoint)
    if not rule.public:
        role = sorted(rule.roles)[0]
        client.login(users[Role(role)].email, users[Role(role)].password)
    assert client.get(url).status_code == 405


@pytest.mark.parametrize(("endpoint", "method", "url"), ROUTES)
def test_every_response_carries_the_security_headers(app, endpoint, method, url):
    response = PortalClient(app).http.open(url, method=method)
    for header in (
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "X-Frame-Options",
        "Permissions-Policy",
        "Cache-Control",
    ):
        assert header in response.headers, (url, header)
