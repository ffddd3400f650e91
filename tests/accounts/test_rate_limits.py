"""Rate limits: failed sign-ins per account and per address; lockouts audited; a 429 page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.core.audit import AuditEvent
from portal.core.permissions import Role
from portal.extensions import db
from tests.helpers import PortalClient


@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(sqlite_url, RATELIMIT_ENABLED=True)


def test_failed_sign_ins_lock_the_account_for_a_while_and_are_audited(app, users):
    patient = users[Role.PATIENT]
    client = PortalClient(app)
    for _attempt in range(5):
        response = client.post("/account/sign-in", {"email": patient.email, "password": "wrong!"})
        assert response.status_code == 400
    response = client.post(
        "/account/sign-in", {"email": patient.email, "password": patient.password}
    )
    assert response.status_code == 429
    assert "Too many attempts" in response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "account.login_throttled")
        ).one()
        assert event.after["email"] == patient.email
    # Another account from the same address is not locked out by this one.
    other = users[Role.THERAPIST]
    PortalClient(app).login(other.email, other.password)


def test_successful_sign_ins_do_not_count_against_the_account(app, users):
    patient = users[Role.PATIENT]
    for _attempt in range(7):
        client = PortalClient(app)
        client.login(patient.email, patient.password)


def test_many_attempts_from_one_address_are_slowed_down(app):
    client = PortalClient(app)
    statuses = [
        client.post(
            "/account/sign-in", {"email": f"person{n}@example.org", "password": "x"}
        ).status_code
        for n in range(21)
    ]
    assert statuses[:20] == [400] * 20
    assert statuses[20] == 429


def test_the_429_page_speaks_welsh_when_chosen(app, users):
    patient = users[Role.PATIENT]
    client = PortalClient(app)
    client.post("/language", {"locale": "cy"})
    for _attempt in range(6):
        response = client.post("/account/sign-in", {"email": patient.email, "password": "no"})
    assert response.status_code == 429
    assert 'lang="cy"' in response.text
