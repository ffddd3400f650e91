"""The therapist's consent dashboard: whose consents it shows, what can still be offered, the
invitations waiting, and a number of queries that does not grow with the number of patients."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from portal.accounts.models import Invitation, User
from portal.consent.models import ConsentDocument
from portal.consent.team_overview import team_overview
from portal.core.permissions import Role
from portal.extensions import db
from tests.consent.journey_helpers import set_up_journey, signed_by_the_patient
from tests.factories import create_account
from tests.helpers import reads_for


@pytest.fixture
def journey(make_app, database_url, tmp_path):
    return set_up_journey(make_app, database_url, tmp_path)


def add_patient(journey, email: str, full_name: str, therapist_id: int) -> int:
    patient = create_account(journey.app, Role.PATIENT, email=email, full_name=full_name)
    with journey.app.app_context():
        db.session.get(User, patient.id).invited_by_id = therapist_id
        db.session.commit()
    return patient.id


def test_the_dashboard_shows_only_this_therapists_patients_and_what_each_can_be_offered(
    journey,
):
    newcomer = add_patient(journey, "aled@example.org", "Aled Evans", journey.therapist.id)
    other_therapist = create_account(journey.app, Role.THERAPIST, email="other.t@example.org")
    add_patient(journey, "stranger@example.org", "Someone Else", other_therapist.id)
    with journey.app.app_context():
        overview = team_overview(db.session, journey.therapist.id)
        assert [consent.id for consent in overview.consents] == [journey.consent_id]
        assert (overview.page, overview.pages, overview.total) == (1, 1, 1)
        assert overview.has_patients
        # Sam has been offered the version in use; only the newcomer can be offered it.
        offers = [(o.patient_id, o.patient_name, o.version.label) for o in overview.offers]
        assert offers == [(newcomer, "Aled Evans", "diary-study v1.0")]
        assert overview.withdrawals == [] and overview.flags == [] and overview.questions == []
        assert overview.to_countersign == []
    page = journey.therapist_client().get("/consent/team").text
    assert 'Offer diary-study v1.0<span class="nhsuk-u-visually-hidden"> to Aled Evans' in page
    assert "to Sam Taylor" not in page
    assert "Someone Else" not in page


def test_every_patient_offered_the_document_in_use_is_said_plainly(journey):
    page = journey.therapist_client().get("/consent/team").text
    assert "Every patient has been offered the documents in use." in page
    assert "Offer diary-study" not in page


def test_invitations_waiting_are_listed_until_they_expire(journey):
    therapist = journey.therapist_client()
    response = therapist.post(
        "/account/patients/invite", {"full_name": "Nia Williams", "email": "nia@example.org"}
    )
    assert response.status_code == 200, response.text
    page = therapist.get("/consent/team").text
    assert "Invited, not signed up yet" in page
    assert "Nia Williams" in page
    with journey.app.app_context():
        invitation = db.session.scalar(
            select(Invitation).where(Invitation.full_name == "Nia Williams")
        )
        now = dt.datetime.now(dt.UTC)
        invitation.created_at = now - dt.timedelta(days=8)
        invitation.expires_at = now - dt.timedelta(minutes=1)
        db.session.commit()
    page = therapist.get("/consent/team").text
    assert "Nia Williams" not in page
    assert "Invited, not signed up yet" not in page


def test_the_dashboard_reads_as_many_times_for_six_patients_as_for_one(journey):
    therapist = journey.therapist_client()
    with journey.app.app_context():
        document_id = db.session.scalar(select(ConsentDocument.id))
    one = reads_for(journey.app, therapist, "/consent/team")
    for n in range(5):
        patient_id = add_patient(journey, f"p{n}@example.org", f"Patient {n}", journey.therapist.id)
        response = therapist.post(f"/consent/team/offer/{patient_id}", {"document_id": document_id})
        assert response.status_code == 302
    page = therapist.get("/consent/team").text
    assert all(f"Patient {n}" in page for n in range(5))
    assert reads_for(journey.app, therapist, "/consent/team") == one


def test_consents_come_a_page_at_a_time_newest_first(journey, monkeypatch):
    monkeypatch.setattr("portal.consent.team_overview.CONSENTS_PER_PAGE", 2)
    therapist = journey.therapist_client()
    with journey.app.app_context():
        document_id = db.session.scalar(select(ConsentDocument.id))
    for name in ("Bryn Jones", "Carys Morgan"):
        patient_id = add_patient(
            journey, f"{name.split()[0]}@example.org", name, journey.therapist.id
        )
        response = therapist.post(f"/consent/team/offer/{patient_id}", {"document_id": document_id})
        assert response.status_code == 302

    first = therapist.get("/consent/team").text
    assert "page 1 of 2, 3 consents" in first
    assert "Carys Morgan" in first and "Bryn Jones" in first and "Sam Taylor" not in first
    assert 'href="/consent/team?page=2#consents"' in first
    second = therapist.get("/consent/team?page=2").text
    assert "page 2 of 2, 3 consents" in second
    assert "Sam Taylor" in second and "Carys Morgan" not in second
    assert 'href="/consent/team?page=1#consents"' in second
    for page in ("3", "0", "-1", "two", "\u00b2", "1" * 5000):
        assert therapist.get(f"/consent/team?page={page}").status_code == 404, page


def test_what_needs_the_therapist_is_listed_whatever_page_its_consent_is_on(journey, monkeypatch):
    signed_by_the_patient(journey)
    monkeypatch.setattr("portal.consent.team_overview.CONSENTS_PER_PAGE", 1)
    therapist = journey.therapist_client()
    with journey.app.app_context():
        document_id = db.session.scalar(select(ConsentDocument.id))
    patient_id = add_patient(journey, "dewi@example.org", "Dewi Price", journey.therapist.id)
    response = therapist.post(f"/consent/team/offer/{patient_id}", {"document_id": document_id})
    assert response.status_code == 302
    first = therapist.get("/consent/team").text  # Dewi's new consent: Sam's is on page 2
    assert "Dewi Price" in first
    assert "Sam Taylor, diary-study v1.0:" in first
    assert f'href="/consent/team/{journey.consent_id}/countersign"' in first
