"""Two-step verification for staff: set-up, single-use codes, recovery codes, reset."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from portal.accounts.models import User
from portal.core.audit import AuditEvent
from portal.core.permissions import Role
from portal.extensions import db
from tests.helpers import PortalClient


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url, MFA_REQUIRED_FOR_STAFF=True)


def actions(app) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()


def password_step(client: PortalClient, account) -> str:
    response = client.post(
        "/account/sign-in", {"email": account.email, "password": account.password}
    )
    assert response.status_code == 302
    return response.headers["Location"]


def set_up(client: PortalClient, account) -> tuple[str, list[str]]:
    """Sign in for the first time and turn on two-step verification; return key and codes."""
    assert password_step(client, account) == "/account/two-factor/setup"
    page = client.get("/account/two-factor/setup").text
    secret = re.search(r'class="app-totp-key">([A-Z2-7]+)<', page)[1]
    assert 'src="data:image/svg+xml' in page  # the QR code
    response = client.post("/account/two-factor/setup", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200, response.text
    codes = re.findall(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>", response.text)
    return secret, codes


def next_step_code(secret: str) -> str:
    """A code for a later time step than the one just used (valid within the drift window)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def test_staff_set_up_two_step_verification_at_first_sign_in(app, users):
    therapist = users[Role.THERAPIST]
    client = PortalClient(app)
    secret, codes = set_up(client, therapist)
    assert len(codes) == 10
    assert client.get("/account/patients").status_code == 200
    with app.app_context():
        user = db.session.get(User, therapist.id)
        assert user.totp_secret == secret and user.totp_pending_secret is None
    recorded = [e.action for e in actions(app)]
    assert recorded.index("account.mfa_enrolled") < recorded.index("account.login")


def test_a_password_alone_does_not_sign_staff_in(app, users):
    client = PortalClient(app)
    password_step(client, users[Role.PANEL_CHAIR])
    response = client.get("/oversight/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/sign-in")


def test_a_wrong_setup_code_is_refused_and_audited(app, users):
    client = PortalClient(app)
    password_step(client, users[Role.INVESTIGATOR])
    response = client.post("/account/two-factor/setup", {"code": "000000"})
    assert response.status_code == 400
    assert "That code did not match" in response.text
    assert actions(app)[-1].action == "account.mfa_failed"


def test_a_code_works_only_once(app, users):
    admin = users[Role.ADMINISTRATOR]
    secret, _codes = set_up(PortalClient(app), admin)

    first = PortalClient(app)
    assert password_step(first, admin) == "/account/two-factor"
    code = next_step_code(secret)
    assert first.post("/account/two-factor", {"code": code}).status_code == 302
    assert first.get("/account/staff").status_code == 200

    replay = PortalClient(app)
    password_step(replay, admin)
    response = replay.post("/account/two-factor", {"code": code})
    assert response.status_code == 400
    assert "already used" in response.text
    assert replay.get("/account/staff").status_code == 302
    failed = [e for e in actions(app) if e.action == "account.mfa_failed"]
    assert failed[-1].reason == "code already used"


def test_a_recovery_code_works_once(app, users):
    member = users[Role.PANEL_MEMBER]
    _secret, codes = set_up(PortalClient(app), member)
    client = PortalClient(app)
    password_step(client, member)
    assert client.post("/account/two-factor", {"code": codes[0].upper()}).status_code == 302
    again = PortalClient(app)
    password_step(again, member)
    assert again.post("/account/two-factor", {"code": codes[0]}).status_code == 400
    assert "account.mfa_recovery_code_used" in [e.action for e in actions(app)]


def test_too_many_wrong_codes_send_you_back_to_sign_in(app, users):
    chair = users[Role.PANEL_CHAIR]
    set_up(PortalClient(app), chair)
    client = PortalClient(app)
    password_step(client, chair)
    for _attempt in range(app.config["MFA_MAX_ATTEMPTS"] - 1):
        assert client.post("/account/two-factor", {"code": "123456"}).status_code == 400
    response = client.post("/account/two-factor", {"code": "123456"})
    assert response.headers["Location"] == "/account/sign-in"
    assert client.get("/account/two-factor").headers["Location"] == "/account/sign-in"


def test_patients_are_not_asked_for_a_second_factor(app, users):
    client = PortalClient(app)
    assert password_step(client, users[Role.PATIENT]) == "/"


def test_an_administrator_resets_a_lost_factor(app, users):
    admin, therapist = users[Role.ADMINISTRATOR], users[Role.THERAPIST]
    admin_secret, _ = set_up(PortalClient(app), admin)
    therapist_client = PortalClient(app)
    set_up(therapist_client, therapist)

    admin_client = PortalClient(app)
    password_step(admin_client, admin)
    admin_client.post("/account/two-factor", {"code": next_step_code(admin_secret)})
    response = admin_client.post(
        f"/account/staff/{therapist.id}",
        {
            "action": "reset_mfa",
            "mfa-reason": "lost phone",
            "mfa-csrf_token": admin_client.csrf_token(),
        },
        csrf=False,
    )
    assert response.status_code == 302
    assert therapist_client.get("/account/patients").status_code == 302  # signed out
    reset = next(e for e in actions(app) if e.action == "account.mfa_reset")
    assert reset.actor_id == admin.id and reset.reason == "lost phone"
    assert password_step(PortalClient(app), therapist) == "/account/two-factor/setup"


def test_the_two_factor_pages_need_a_password_first(app):
    client = PortalClient(app)
    for url in ("/account/two-factor", "/account/two-factor/setup"):
        assert client.get(url).headers["Location"] == "/account/sign-in"
