"""Withdrawal: possible in every state, in two steps, exactly once, with a sealed receipt."""

from __future__ import annotations

import datetime as dt
import re
import subprocess

import pytest
from sqlalchemy import func, select

from portal.consent.journey_models import Consent, Withdrawal
from portal.core.audit import AuditEvent, verify_chain
from portal.core.permissions import Role
from portal.extensions import db
from portal.notifications.models import OutboxMessage
from portal.records.models import Record
from tests.consent.journey_helpers import (
    answer_all,
    complete,
    publish_v1_1,
    read_everything,
    set_up_journey,
    signed_by_the_patient,
)
from tests.factories import create_account
from tests.helpers import PortalClient


@pytest.fixture
def journey(make_app, database_url, tmp_path):
    return set_up_journey(make_app, database_url, tmp_path)


def withdraw(client: PortalClient, consent_id: int, password: str, **choice):
    """Both steps, as the browser does: choose (nothing saved), then confirm with a password."""
    data = {"scope": "study", "data_option": "keep", "reason": "", **choice}
    step_one = client.post(f"/withdraw/{consent_id}", data)
    assert step_one.status_code == 200, step_one.text
    assert "Confirm your withdrawal" in step_one.text
    return client.post(f"/withdraw/{consent_id}/confirm", {**data, "password": password})


def withdrawals(app) -> list[Withdrawal]:
    with app.app_context():
        found = db.session.scalars(select(Withdrawal).order_by(Withdrawal.id)).all()
        for withdrawal in found:
            db.session.expunge(withdrawal)
        return found


def consent_status(journey) -> str:
    with journey.app.app_context():
        return journey.consent().status


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


# --- every state ---------------------------------------------------------------------------------


def _offered(journey):
    pass


def _reading(journey):
    client = journey.patient_client()
    client.get(f"/consent/{journey.consent_id}/read/0?note=seen")


def _comprehension(journey):
    read_everything(journey.patient_client(), journey.consent_id)


def _teach_back_flagged(journey):
    client = journey.patient_client()
    read_everything(client, journey.consent_id)
    answer_all(client, journey.consent_id, "b")
    answer_all(client, journey.consent_id, "b")
    with journey.app.app_context():
        from portal.comprehension.models import TeachBack

        assert db.session.scalar(select(func.count(TeachBack.id))) == 1


def _awaiting_countersignature(journey):
    signed_by_the_patient(journey)


def _complete(journey):
    complete(journey)


STATES = {
    "offered": (_offered, "offered"),
    "reading": (_reading, "in_progress"),
    "comprehension": (_comprehension, "in_progress"),
    "teach_back": (_teach_back_flagged, "in_progress"),
    "awaiting_countersignature": (_awaiting_countersignature, "signed"),
    "complete": (_complete, "complete"),
}


@pytest.mark.parametrize("state", list(STATES))
def test_withdrawing_from_the_study_works_in_every_state(journey, state):
    prepare, expected_status = STATES[state]
    prepare(journey)
    assert consent_status(journey) == expected_status
    patient = journey.patient_client()
    assert 'href="/withdraw/"' in patient.get("/consent/").text  # the link on every page
    response = withdraw(patient, journey.consent_id, journey.patient.password)
    assert response.status_code == 302, response.text
    assert consent_status(journey) == "withdrawn"
    (withdrawal,) = withdrawals(journey.app)
    assert withdrawal.scope == "study"
    # The data question is only asked once data has been collected under a consent.
    assert withdrawal.data_option_key == ("keep" if state == "complete" else None)
    receipt = patient.get(response.headers["Location"])
    assert "Withdrawn from the study" in receipt.text
    assert "Download the receipt (PDF)" in receipt.text
    assert 'href="/withdraw/"' not in receipt.text  # nothing left in force to withdraw from
    recorded = actions(journey.app)
    for action in ("withdrawal.recorded", "consent.withdrawn", "record.created"):
        assert action in recorded
    with journey.app.app_context():
        assert verify_chain(db.session).intact


def test_a_pending_reconsent_is_closed_too_and_history_is_kept(make_app, sqlite_url, tmp_path):
    journey = complete(set_up_journey(make_app, sqlite_url, tmp_path))
    publish_v1_1(journey, tmp_path, material=True)
    with journey.app.app_context():
        statuses = dict(db.session.execute(select(Consent.id, Consent.status)).all())
    assert sorted(statuses.values()) == ["complete", "offered"]  # re-consent pending

    patient = journey.patient_client()
    response = withdraw(patient, journey.consent_id, journey.patient.password)
    assert response.status_code == 302
    with journey.app.app_context():
        statuses = dict(db.session.execute(select(Consent.id, Consent.status)).all())
        assert set(statuses.values()) == {"withdrawn"}
        assert len(statuses) == 2  # nothing deleted: both consents are kept
        assert db.session.scalar(select(func.count(Record.id))) == 2  # consent + receipt
    # History stays on the patient's page, with both records.
    home = patient.get("/consent/").text
    assert "you withdrew" in home and "See the receipt" in home
    assert "Download your signed record (PDF)" in home


# --- scopes --------------------------------------------------------------------------------------


def test_withdrawing_from_one_optional_item_keeps_the_patient_in_the_study(journey):
    complete(journey)
    patient = journey.patient_client()
    page = patient.get(f"/withdraw/{journey.consent_id}").text
    assert "Take back one of the optional choices" in page
    assert "I agree to be contacted about future studies." in page
    response = withdraw(
        patient,
        journey.consent_id,
        journey.patient.password,
        scope="optional_item",
        item="future-contact",
    )
    assert response.status_code == 302
    assert consent_status(journey) == "complete"
    with journey.app.app_context():
        consent = journey.consent()
        assert consent.choice_map == {"future-contact": True}  # as signed: never edited
        assert consent.effective_choices == {"future-contact": False}
    # Nothing left to take back: the option disappears.
    assert (
        "Take back one of the optional choices"
        not in patient.get(f"/withdraw/{journey.consent_id}").text
    )
    team = journey.therapist_client().get("/consent/team").text
    assert "Withdrew from: I agree to be contacted about future studies." in team
    assert "Withdrawals to act on" in team


def test_stopping_treatment_keeps_follow_up_and_flags_future_sessions(journey):
    complete(journey)
    patient = journey.patient_client()
    response = withdraw(patient, journey.consent_id, journey.patient.password, scope="treatment")
    assert response.status_code == 302
    assert consent_status(journey) == "complete"
    therapist = journey.therapist_client()
    team = therapist.get("/consent/team").text
    assert "No further treatment sessions" in team
    (withdrawal,) = withdrawals(journey.app)
    # The therapist marks future sessions cancelled; it leaves the list, audited.
    response = therapist.post(f"/withdraw/receipt/{withdrawal.id}/acknowledge", {})
    assert response.status_code == 302
    assert "Withdrawals to act on" not in therapist.get("/consent/team").text
    assert "withdrawal.acknowledged" in actions(journey.app)
    # Then leaving the study altogether is still possible.
    response = withdraw(patient, journey.consent_id, journey.patient.password)
    assert response.status_code == 302
    assert consent_status(journey) == "withdrawn"
    assert len(withdrawals(journey.app)) == 2


def test_scopes_that_do_not_apply_yet_are_refused_clearly(journey):
    _reading(journey)
    patient = journey.patient_client()
    page = patient.get(f"/withdraw/{journey.consent_id}").text
    assert "Stop the treatment sessions" not in page
    response = patient.post(f"/withdraw/{journey.consent_id}", {"scope": "treatment"})
    assert response.status_code == 400
    assert "Choose one of the options shown" in response.text
    response = patient.post(f"/withdraw/{journey.consent_id}", {"scope": ""})
    assert response.status_code == 400
    assert consent_status(journey) == "in_progress"


def test_the_data_options_come_from_the_document_with_the_default_stated(journey):
    complete(journey)
    page = journey.patient_client().get(f"/withdraw/{journey.consent_id}").text
    assert "Keep what I have already written" in page
    assert "Delete my diary entries" in page
    assert "This is what happens if you make no other choice." in page
    assert re.search(r'value="keep"[^>]*checked', page)
    assert "does not affect your other care" in page
    assert "0300 000 0001" in page  # who to talk to


def test_a_missing_data_choice_is_asked_for(journey):
    complete(journey)
    response = journey.patient_client().post(
        f"/withdraw/{journey.consent_id}", {"scope": "study", "data_option": "shred-it"}
    )
    assert response.status_code == 400
    assert "Choose what should happen to the information already collected" in response.text


# --- confirmation, exactly once, other people ----------------------------------------------------


def test_a_wrong_password_keeps_the_choices_and_is_audited(journey):
    complete(journey)
    patient = journey.patient_client()
    data = {"scope": "study", "data_option": "delete", "reason": "Moving away"}
    response = patient.post(
        f"/withdraw/{journey.consent_id}/confirm", {**data, "password": "not-it-at-all"}
    )
    assert response.status_code == 400
    assert "Your password is not correct" in response.text
    assert 'value="delete"' in response.text and "Moving away" in response.text
    assert consent_status(journey) == "complete"
    assert withdrawals(journey.app) == []
    with journey.app.app_context():  # nothing is sent for a change that did not happen
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0
    assert "withdrawal.refused" in actions(journey.app)


def test_a_double_submitted_withdrawal_creates_one_withdrawal(journey):
    complete(journey)
    patient = journey.patient_client()
    data = {"scope": "study", "data_option": "keep", "password": journey.patient.password}
    first = patient.post(f"/withdraw/{journey.consent_id}/confirm", data)
    second = patient.post(f"/withdraw/{journey.consent_id}/confirm", data)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert len(withdrawals(journey.app)) == 1
    with journey.app.app_context():
        assert (
            db.session.scalar(select(func.count(Record.id)).where(Record.kind == "withdrawal")) == 1
        )
    assert "already recorded" in patient.get(second.headers["Location"]).text


def test_another_patient_cannot_withdraw_this_consent(journey):
    complete(journey)
    other = create_account(journey.app, Role.PATIENT, "other@example.org", full_name="Alex Other")
    client = PortalClient(journey.app)
    client.login(other.email, other.password)
    data = {"scope": "study", "data_option": "keep", "password": other.password}
    assert client.post(f"/withdraw/{journey.consent_id}", data).status_code == 404
    assert client.post(f"/withdraw/{journey.consent_id}/confirm", data).status_code == 404
    assert client.get(f"/withdraw/{journey.consent_id}").status_code == 404
    assert consent_status(journey) == "complete"
    # Nor see someone else's receipt.
    withdraw(journey.patient_client(), journey.consent_id, journey.patient.password)
    (withdrawal,) = withdrawals(journey.app)
    assert client.get(f"/withdraw/receipt/{withdrawal.id}").status_code == 404


def test_rejoining_after_withdrawal_is_a_new_consent(journey):
    complete(journey)
    withdraw(journey.patient_client(), journey.consent_id, journey.patient.password)
    therapist = journey.therapist_client()
    team = therapist.get("/consent/team").text
    assert "Offer diary-study v1.0" in team
    with journey.app.app_context():
        document_id = journey.consent().version.document_id
    response = therapist.post(
        f"/consent/team/offer/{journey.patient.id}", {"document_id": document_id}
    )
    assert response.status_code == 302
    with journey.app.app_context():
        statuses = list(db.session.scalars(select(Consent.status).order_by(Consent.id)))
    assert statuses == ["withdrawn", "offered"]


# --- effects: receipt, notifications -------------------------------------------------------------


def test_every_receipt_verifies_with_pdfsig_and_the_cli(journey, tmp_path):
    complete(journey)
    withdraw(
        journey.patient_client(),
        journey.consent_id,
        journey.patient.password,
        scope="optional_item",
        item="future-contact",
    )
    assert staff_record(journey, journey.therapist_client()).status_code == 302
    with journey.app.app_context():
        receipts = db.session.scalars(
            select(Record).where(Record.kind == "withdrawal").order_by(Record.id)
        ).all()
        found = [(r.uid, r.pdf) for r in receipts]
    assert len(found) == 2
    for (uid, pdf), expected in zip(
        found, ("Took back one optional item", "Delete my diary entries"), strict=True
    ):
        path = tmp_path / f"{uid}.pdf"
        path.write_bytes(pdf)
        pdfsig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
        assert "Signature is Valid" in pdfsig.stdout, pdfsig.stdout + pdfsig.stderr
        text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
        assert "Withdrawal receipt" in text and "Sam Taylor" in text
        assert expected in text
        result = journey.app.test_cli_runner().invoke(args=["records", "verify", str(path)])
        assert result.exit_code == 0, result.output
        assert uid in result.output
        # The patient can download each of their receipts.
        assert journey.patient_client().get(f"/records/{uid}.pdf").status_code == 200


def test_the_therapist_and_panel_chair_are_notified_without_health_details(journey):
    chair = create_account(journey.app, Role.PANEL_CHAIR)
    complete(journey)
    withdraw(journey.patient_client(), journey.consent_id, journey.patient.password)
    with journey.app.app_context():
        messages = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert {m.recipient_id for m in messages} == {journey.therapist.id, chair.id}
        for message in messages:
            assert "Sam Taylor" not in message.subject + message.body
            assert "MDMA" not in message.subject + message.body
            assert message.sent_at is None  # waiting in the outbox
    therapist = journey.therapist_client()
    inbox = therapist.get("/notifications/")
    assert "a patient&#39;s consent has changed" in inbox.text
    assert "Notifications (1 new)" in inbox.text


def test_the_panel_sees_the_withdrawal_on_its_dashboard(journey):
    chair = create_account(journey.app, Role.PANEL_CHAIR)
    complete(journey)
    withdraw(journey.patient_client(), journey.consent_id, journey.patient.password)
    client = PortalClient(journey.app)
    client.login(chair.email, chair.password)
    page = client.get("/oversight/").text
    assert "Stopped taking part in the study" in page
    assert "diary-study v1.0" in page


# --- recorded by staff ---------------------------------------------------------------------------


def staff_record(journey, client: PortalClient, **overrides):
    today = dt.date.today()
    data = {
        "scope": "study",
        "data_option": "delete",
        "channel": "phone",
        "day": str(today.day),
        "month": str(today.month),
        "year": str(today.year),
        "reason": "",
        "attested": "y",
        "password": journey.therapist.password,
        **overrides,
    }
    return client.post(f"/withdraw/record/{journey.consent_id}", data)


def test_a_therapist_records_a_withdrawal_given_by_phone(journey):
    complete(journey)
    therapist = journey.therapist_client()
    assert "Record a withdrawal" in therapist.get("/consent/team").text
    response = staff_record(journey, therapist)
    assert response.status_code == 302, response.text
    assert consent_status(journey) == "withdrawn"
    (withdrawal,) = withdrawals(journey.app)
    assert (withdrawal.channel, withdrawal.recorded_by_id) == ("phone", journey.therapist.id)
    assert withdrawal.attestation.startswith("I confirm that the patient told me")
    # The patient sees the receipt when they sign in.
    patient = journey.patient_client()
    home = patient.get("/consent/").text
    assert "See the receipt" in home
    receipt = patient.get(f"/withdraw/receipt/{withdrawal.id}").text
    assert "By phone" in receipt and "Test Therapist" in receipt


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attested": ""}, "Confirm that the patient told you this themselves"),
        ({"day": "31", "month": "2"}, "Enter the date the patient told you"),
        ({"year": str(dt.date.today().year + 1)}, "The date cannot be in the future"),
        ({"year": "2001"}, "The date cannot be before the document was offered"),
        ({"channel": "portal"}, "Choose how the patient told you"),
        ({"password": "wrong-wrong"}, "Your password is not correct"),
    ],
)
def test_staff_recorded_withdrawals_refuse_bad_input_clearly(journey, overrides, message):
    complete(journey)
    response = staff_record(journey, journey.therapist_client(), **overrides)
    assert response.status_code == 400
    assert message in response.text
    assert consent_status(journey) == "complete"


def test_only_the_patients_own_therapist_can_record_one(journey):
    complete(journey)
    other = create_account(journey.app, Role.THERAPIST, "other-therapist@example.org")
    client = PortalClient(journey.app)
    client.login(other.email, other.password)
    response = staff_record(journey, client, password=other.password)
    assert response.status_code == 403
    assert consent_status(journey) == "complete"


def test_a_patient_who_cannot_sign_in_is_told_how(client):
    login = client.get("/account/sign-in").text
    assert "/withdraw/help" in login
    page = client.get("/withdraw/help")
    assert page.status_code == 200
    assert "record your withdrawal" in page.text


def test_the_panel_sees_the_receipt_but_not_the_reason_and_every_read_is_audited(journey):
    chair = create_account(journey.app, Role.PANEL_CHAIR, "chair@example.org")
    complete(journey)
    withdraw(
        journey.patient_client(), journey.consent_id, journey.patient.password, reason="Private"
    )
    (withdrawal,) = withdrawals(journey.app)
    client = PortalClient(journey.app)
    client.login(chair.email, chair.password)
    page = client.get(f"/withdraw/receipt/{withdrawal.id}").text
    assert "Withdrawn from the study" in page and "Private" not in page
    assert "Private" in journey.therapist_client().get(f"/withdraw/receipt/{withdrawal.id}").text
    assert actions(journey.app).count("withdrawal.viewed") == 2


def test_during_a_pending_reconsent_the_consent_in_force_is_withdrawn_with_its_data_choice(
    make_app, sqlite_url, tmp_path
):
    journey = complete(set_up_journey(make_app, sqlite_url, tmp_path))
    publish_v1_1(journey, tmp_path, material=True)
    with journey.app.app_context():
        pending = db.session.scalars(select(Consent).where(Consent.status == "offered")).one().id
    # Through the pending re-consent's own address: still the consent in force that counts.
    journey.consent_id = pending
    response = staff_record(journey, journey.therapist_client(), data_option="delete")
    assert response.status_code == 302, response.text
    (withdrawal,) = withdrawals(journey.app)
    assert withdrawal.consent_id != pending
    assert withdrawal.data_option_key == "delete"


def test_stopping_treatment_outlasts_a_reconsent(make_app, sqlite_url, tmp_path):
    journey = complete(set_up_journey(make_app, sqlite_url, tmp_path))
    withdraw(
        journey.patient_client(), journey.consent_id, journey.patient.password, scope="treatment"
    )
    publish_v1_1(journey, tmp_path, material=True)
    with journey.app.app_context():
        new = db.session.scalars(select(Consent).where(Consent.status == "offered")).one()
        assert new.treatment_stopped


def test_a_bad_date_is_shown_next_to_the_date_and_huge_ids_are_not_found(journey):
    complete(journey)
    response = staff_record(journey, journey.therapist_client(), day="31", month="2")
    assert response.status_code == 400
    assert 'href="#day"' in response.text
    patient = journey.patient_client()
    assert patient.get("/withdraw/99999999999999999999").status_code == 404
    assert patient.get("/withdraw/receipt/99999999999999999999").status_code == 404
