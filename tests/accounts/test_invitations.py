"""Invitations: single-use, expiring links on which invited people set their password."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from portal.accounts.models import Invitation, User
from portal.core.audit import AuditEvent
from portal.core.permissions import Role
from portal.extensions import db
from tests.helpers import PortalClient

NEW_PASSWORD = "calm river morning"


def invite_patient(app, therapist, email="new.patient@example.org") -> str:
    client = PortalClient(app)
    client.login(therapist.email, therapist.password)
    response = client.post(
        "/account/patients/invite", {"full_name": "Nia Williams", "email": email}
    )
    assert response.status_code == 200, response.text
    match = re.search(r"http://localhost(/account/invitation/[A-Za-z0-9_-]+)", response.text)
    assert match, "the page shows the invitation link"
    return match.group(1)


def accept(app, link: str, password: str = NEW_PASSWORD):
    client = PortalClient(app)
    response = client.post(link, {"password": password, "confirm": password})
    return client, response


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_patient_accepts_an_invitation_and_is_signed_in(app, users):
    therapist = users[Role.THERAPIST]
    link = invite_patient(app, therapist)
    patient_client, response = accept(app, link)
    assert response.status_code == 302
    assert patient_client.get("/consent/").status_code == 200
    with app.app_context():
        user = User.by_email(db.session, "new.patient@example.org")
        assert user.role == "patient"
        assert user.invited_by_id == therapist.id
        invitation = db.session.scalars(select(Invitation)).one()
        assert invitation.user_id == user.id
        assert invitation.token_hash not in link  # only the digest is stored
    recorded = actions(app)
    for action in ("invitation.created", "account.created", "invitation.accepted", "account.login"):
        assert action in recorded


def test_an_invitation_link_works_once(app, users):
    link = invite_patient(app, users[Role.THERAPIST])
    accept(app, link)
    _, again = accept(app, link, "another password here")
    assert again.status_code == 410
    assert "already been used" in again.text


def test_an_expired_invitation_is_refused(app, users):
    link = invite_patient(app, users[Role.THERAPIST])
    with app.app_context():
        invitation = db.session.scalars(select(Invitation)).one()
        invitation.created_at -= dt.timedelta(hours=80)
        invitation.expires_at -= dt.timedelta(hours=73)
        db.session.commit()
    _, response = accept(app, link)
    assert response.status_code == 410
    assert "expired" in response.text
    with app.app_context():
        assert User.by_email(db.session, "new.patient@example.org") is None


def test_an_unknown_token_is_not_found(app):
    _, response = accept(app, "/account/invitation/not-a-real-token")
    assert response.status_code == 404


def test_invitation_lifetime_is_configurable(make_app, sqlite_url):
    from tests.factories import create_account

    app = make_app(sqlite_url, INVITATION_TTL_HOURS=24)
    invite_patient(app, create_account(app, Role.THERAPIST))
    with app.app_context():
        invitation = db.session.scalars(select(Invitation)).one()
        assert invitation.expires_at - invitation.created_at == dt.timedelta(hours=24)


def test_mismatched_passwords_keep_the_invitation_usable(app, users):
    link = invite_patient(app, users[Role.THERAPIST])
    client = PortalClient(app)
    response = client.post(link, {"password": NEW_PASSWORD, "confirm": "something else"})
    assert response.status_code == 400
    assert "The passwords do not match" in response.text
    _, response = accept(app, link)
    assert response.status_code == 302


def test_an_existing_account_cannot_be_invited_again(app, users):
    client = PortalClient(app)
    therapist = users[Role.THERAPIST]
    client.login(therapist.email, therapist.password)
    response = client.post(
        "/account/patients/invite",
        {"full_name": "Someone", "email": users[Role.PATIENT].email},
    )
    assert response.status_code == 400
    assert "already exists" in response.text


def test_invalid_email_gets_a_specific_message(app, users):
    client = PortalClient(app)
    therapist = users[Role.THERAPIST]
    client.login(therapist.email, therapist.password)
    response = client.post("/account/patients/invite", {"full_name": "X", "email": "not-an-email"})
    assert response.status_code == 400
    assert "correct format" in response.text


def test_administrator_invites_staff_with_a_role(app, users):
    admin = users[Role.ADMINISTRATOR]
    client = PortalClient(app)
    client.login(admin.email, admin.password)
    response = client.post(
        "/account/staff/invite",
        {"full_name": "Dr Owen Hughes", "email": "owen@example.org", "role": "panel_chair"},
    )
    assert response.status_code == 200
    link = re.search(r"http://localhost(/account/invitation/[A-Za-z0-9_-]+)", response.text)[1]
    new_client, response = accept(app, link)
    assert new_client.get("/").headers["Location"] == "/oversight/"


def test_a_withdrawn_invitation_no_longer_works(app, users):
    therapist = users[Role.THERAPIST]
    link = invite_patient(app, therapist)
    client = PortalClient(app)
    client.login(therapist.email, therapist.password)
    with app.app_context():
        invitation_id = db.session.scalars(select(Invitation.id)).one()
    assert client.post(f"/account/invitations/{invitation_id}/withdraw").status_code == 302
    _, response = accept(app, link)
    assert response.status_code == 410
    assert "invitation.revoked" in actions(app)


def test_a_therapist_cannot_withdraw_another_therapists_invitation(app, users):
    from tests.factories import create_account

    link = invite_patient(app, users[Role.THERAPIST])
    other = create_account(app, Role.THERAPIST, email="other.therapist@example.org")
    client = PortalClient(app)
    client.login(other.email, other.password)
    with app.app_context():
        invitation_id = db.session.scalars(select(Invitation.id)).one()
    assert client.post(f"/account/invitations/{invitation_id}/withdraw").status_code == 403
    _, response = accept(app, link)
    assert response.status_code == 302


def _reset_link(client: PortalClient, user_id: int):
    response = client.post(f"/account/users/{user_id}/password-reset-link")
    match = re.search(r"http://localhost(/account/invitation/[A-Za-z0-9_-]+)", response.text)
    return response, match.group(1) if match else None


def test_therapist_gives_their_patient_a_password_reset_link(app, users):
    therapist = users[Role.THERAPIST]
    link = invite_patient(app, therapist)
    patient_client, _ = accept(app, link)
    with app.app_context():
        patient_id = User.by_email(db.session, "new.patient@example.org").id

    client = PortalClient(app)
    client.login(therapist.email, therapist.password)
    response, reset = _reset_link(client, patient_id)
    assert response.status_code == 200
    assert "Password reset link created for Nia Williams" in response.text

    new_client, response = accept(app, reset, "a brand new password")
    assert response.status_code == 302
    assert new_client.get("/consent/").status_code == 200
    assert patient_client.get("/consent/").status_code == 302  # old sessions ended
    PortalClient(app).login("new.patient@example.org", "a brand new password")
    recorded = actions(app)
    assert "account.password_reset_link_created" in recorded
    assert "account.password_reset" in recorded
    _, again = accept(app, reset, "yet another password")
    assert again.status_code == 410


def test_a_newer_reset_link_replaces_the_older_one(app, users):
    admin, investigator = users[Role.ADMINISTRATOR], users[Role.INVESTIGATOR]
    client = PortalClient(app)
    client.login(admin.email, admin.password)
    _, first = _reset_link(client, investigator.id)
    _, second = _reset_link(client, investigator.id)
    assert accept(app, first)[1].status_code == 410
    assert accept(app, second)[1].status_code == 302


def test_a_therapist_cannot_reset_someone_elses_password(app, users):
    therapist = users[Role.THERAPIST]
    client = PortalClient(app)
    client.login(therapist.email, therapist.password)
    # The demo patient was not invited by this therapist; staff are out of reach altogether.
    for target in (users[Role.PATIENT], users[Role.PANEL_CHAIR]):
        response, link = _reset_link(client, target.id)
        assert response.status_code == 403
        assert link is None
