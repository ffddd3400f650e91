"""Signing in and out, server-side sessions, passwords, CSRF and deactivation."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from portal.accounts.models import User, UserSession
from portal.core.audit import AuditEvent
from portal.core.permissions import Role
from portal.extensions import db
from tests.helpers import PortalClient


def events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        ).all()


def test_sign_in_lands_on_the_role_page_and_is_audited(app, client, users):
    therapist = users[Role.THERAPIST]
    client.login(therapist.email, therapist.password)
    assert client.get("/").headers["Location"] == "/consent/team"
    [login] = events(app, "account.login")
    assert login.actor_id == therapist.id
    assert login.actor_role == "therapist"
    assert login.request_id


def test_email_is_matched_without_regard_to_case(client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email.upper(), patient.password)


def test_wrong_password_is_refused_with_a_message_and_audited(app, client, users):
    patient = users[Role.PATIENT]
    response = client.post("/account/sign-in", {"email": patient.email, "password": "nope nope"})
    assert response.status_code == 400
    assert "The email address or password is not correct" in response.text
    [failed] = events(app, "account.login_failed")
    assert failed.object_id == str(patient.id)
    assert failed.reason == "wrong password"
    assert "nope" not in (failed.after_json or "")  # passwords are never recorded
    assert client.get("/consent/").status_code == 302


def test_unknown_account_gets_the_same_message(app, client):
    response = client.post("/account/sign-in", {"email": "who@example.org", "password": "x" * 9})
    assert response.status_code == 400
    assert "The email address or password is not correct" in response.text
    [failed] = events(app, "account.login_failed")
    assert failed.reason == "unknown account"


def test_a_post_without_csrf_token_is_refused(client, users):
    patient = users[Role.PATIENT]
    response = client.post(
        "/account/sign-in", {"email": patient.email, "password": patient.password}, csrf=False
    )
    assert response.status_code == 400
    assert "expired" in response.text
    assert client.get("/consent/").status_code == 302  # not signed in


def test_a_cookie_replayed_after_sign_out_is_refused(app, client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    stolen = client.session_cookie()
    assert client.get("/consent/").status_code == 200

    client.logout()
    assert client.get("/consent/").status_code == 302

    thief = PortalClient(app)
    thief.set_session_cookie(stolen)
    response = thief.get("/consent/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/sign-in")
    [logout] = events(app, "account.logout")
    assert logout.actor_id == patient.id


def test_password_change_ends_other_sessions(app, users):
    patient = users[Role.PATIENT]
    laptop, phone = PortalClient(app), PortalClient(app)
    laptop.login(patient.email, patient.password)
    phone.login(patient.email, patient.password)

    response = laptop.post(
        "/account/password",
        {
            "current_password": patient.password,
            "password": "a new long password",
            "confirm": "a new long password",
        },
    )
    assert response.status_code == 302
    assert laptop.get("/consent/").status_code == 200
    assert phone.get("/consent/").status_code == 302
    assert len(events(app, "account.password_changed")) == 1

    fresh = PortalClient(app)
    fresh.login(patient.email, "a new long password")


def test_password_change_with_wrong_current_password_keeps_the_old_one(app, client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    response = client.post(
        "/account/password",
        {
            "current_password": "wrong password",
            "password": "another password",
            "confirm": "another password",
        },
    )
    assert response.status_code == 400
    assert "Your current password is not correct" in response.text
    PortalClient(app).login(patient.email, patient.password)


def test_short_password_is_refused_next_to_the_field(client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    response = client.post(
        "/account/password",
        {"current_password": patient.password, "password": "short", "confirm": "short"},
    )
    assert response.status_code == 400
    assert "at least 8 characters" in response.text
    assert 'href="#password"' in response.text  # the error summary links to the field


def test_deactivation_ends_sessions_and_blocks_sign_in(app, users):
    admin, therapist = users[Role.ADMINISTRATOR], users[Role.THERAPIST]
    therapist_client = PortalClient(app)
    therapist_client.login(therapist.email, therapist.password)

    admin_client = PortalClient(app)
    admin_client.login(admin.email, admin.password)
    response = admin_client.post(
        f"/account/staff/{therapist.id}",
        {
            "action": "deactivate",
            "status-reason": "left the trust",
            "status-csrf_token": admin_client.csrf_token(),
        },
        csrf=False,
    )
    assert response.status_code == 302
    assert therapist_client.get("/account/patients").status_code == 302
    response = PortalClient(app).post(
        "/account/sign-in", {"email": therapist.email, "password": therapist.password}
    )
    assert response.status_code == 400
    [event] = events(app, "account.deactivated")
    assert event.before["active"] is True and event.after["active"] is False
    assert event.reason == "left the trust"


def test_idle_session_is_ended_on_the_server(app, client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    with app.app_context():
        row = db.session.scalars(select(UserSession)).one()
        row.last_seen_at -= dt.timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1)
        db.session.commit()
    assert client.get("/consent/").status_code == 302
    [ended] = events(app, "account.session_ended")
    assert ended.reason == "idle_timeout"


def test_next_parameter_only_redirects_within_the_site(client, users):
    patient = users[Role.PATIENT]
    response = client.post(
        "/account/sign-in?next=https://evil.example.com/",
        {"email": patient.email, "password": patient.password},
    )
    assert response.headers["Location"] == "/"
    client.logout()
    response = client.post(
        "/account/sign-in?next=/consent/",
        {"email": patient.email, "password": patient.password},
    )
    assert response.headers["Location"] == "/consent/"


def test_role_change_is_audited_with_before_and_after(app, users):
    admin, investigator = users[Role.ADMINISTRATOR], users[Role.INVESTIGATOR]
    client = PortalClient(app)
    client.login(admin.email, admin.password)
    response = client.post(
        f"/account/staff/{investigator.id}",
        {
            "action": "change_role",
            "role-role": "panel_member",
            "role-reason": "joined the panel",
            "role-csrf_token": client.csrf_token(),
        },
        csrf=False,
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(User, investigator.id).role == "panel_member"
    [event] = events(app, "account.role_changed")
    assert event.before["role"] == "investigator"
    assert event.after["role"] == "panel_member"
    assert event.actor_id == admin.id


def test_language_choice_is_remembered_for_the_account(app, client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    response = client.post("/language", {"locale": "cy", "next": "/consent/"})
    assert response.headers["Location"] == "/consent/"
    with app.app_context():
        assert db.session.get(User, patient.id).locale == "cy"
    assert 'lang="cy"' in client.get("/consent/").text
    assert client.post("/language", {"locale": "fr"}).status_code == 400


def test_a_user_sees_their_sessions_and_signs_another_one_out(app, users):
    patient = users[Role.PATIENT]
    laptop, phone = PortalClient(app), PortalClient(app)
    laptop.login(patient.email, patient.password)
    phone.login(patient.email, patient.password)
    page = laptop.get("/account/sessions").text
    assert page.count('/end"') == 2 and "This device" in page
    with app.app_context():
        phone_row = db.session.scalars(select(UserSession).order_by(UserSession.id.desc())).first()
    assert laptop.post(f"/account/sessions/{phone_row.id}/end").status_code == 302
    assert phone.get("/consent/").status_code == 302
    assert laptop.get("/consent/").status_code == 200
    [revoked] = events(app, "account.session_ended")
    assert revoked.reason == "revoked"


def test_nobody_can_sign_out_someone_elses_session(app, users):
    patient, therapist = users[Role.PATIENT], users[Role.THERAPIST]
    victim = PortalClient(app)
    victim.login(therapist.email, therapist.password)
    attacker = PortalClient(app)
    attacker.login(patient.email, patient.password)
    with app.app_context():
        victim_row = db.session.scalars(
            select(UserSession).where(UserSession.user_id == therapist.id)
        ).one()
    attacker.post(f"/account/sessions/{victim_row.id}/end")
    assert victim.get("/consent/team").status_code == 200


def test_a_common_password_is_refused(client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    response = client.post(
        "/account/password",
        {"current_password": patient.password, "password": "Password123", "confirm": "Password123"},
    )
    assert response.status_code == 400
    assert "one of the most common ones" in response.text


def test_a_long_password_of_128_characters_is_accepted(client, users):
    patient = users[Role.PATIENT]
    client.login(patient.email, patient.password)
    long_password = "a quiet walk by the river " * 5  # 130 characters, no rules to follow
    response = client.post(
        "/account/password",
        {
            "current_password": patient.password,
            "password": long_password[:128],
            "confirm": long_password[:128],
        },
    )
    assert response.status_code == 302
