"""The consent journey: read, answer, choose, sign, countersign — and every refusal."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import func, select

from portal.comprehension.models import ComprehensionAttempt, TeachBack
from portal.consent.journey_models import Consent, SectionVisit, Signature
from portal.core.audit import AuditEvent, verify_chain
from portal.core.permissions import Role
from portal.extensions import db
from tests.consent.journey_helpers import (
    answer_all,
    choose,
    complete,
    publish_v1_1,
    read_everything,
    set_up_journey,
    sign,
)
from tests.factories import create_account
from tests.helpers import PortalClient


@pytest.fixture
def journey(make_app, database_url, tmp_path):
    return set_up_journey(make_app, database_url, tmp_path)


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_the_whole_journey_ends_in_a_countersigned_consent(journey):
    patient = journey.patient_client()
    assert "Start reading" in patient.get("/consent/").text
    read_everything(patient, journey.consent_id)
    answer_all(patient, journey.consent_id, "a")
    choose(patient, journey.consent_id, "yes")
    journey.past_cooling_off()
    response = sign(patient, journey.consent_id, journey.patient.password)
    assert response.status_code == 302, response.text

    therapist = journey.therapist_client()
    assert "Awaiting your countersignature" in therapist.get("/consent/team").text
    response = therapist.post(
        f"/consent/team/{journey.consent_id}/countersign",
        {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password},
    )
    assert response.status_code == 302
    with journey.app.app_context():
        consent = journey.consent()
        assert consent.status == "complete"
        participant, staff = consent.signatures
        assert (participant.role, staff.role) == ("participant", "person_taking_consent")
        bound = json.loads(participant.bound_json)
        assert bound["content_hash"] == consent.content_hash
        assert bound["answers"] == {"q-stop": "a"}
        assert bound["choices"] == {"future-contact": True}
        assert participant.image_png.startswith(b"\x89PNG")
        assert db.session.scalar(select(func.count(SectionVisit.id))) >= 4
        assert verify_chain(db.session).intact
    recorded = actions(journey.app)
    for action in (
        "consent.offered",
        "consent.opened",
        "consent.reading_completed",
        "comprehension.answered",
        "consent.choices_saved",
        "consent.signed",
        "consent.countersigned",
    ):
        assert action in recorded


def test_a_wrong_answer_shows_the_explanation_and_two_raise_teach_back(journey):
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    response = patient.post(f"/comprehension/{journey.consent_id}", {"choice": "b"})
    assert response.status_code == 200
    assert "You can stop whenever you like" in response.text  # the explanation
    assert "Read the section again" in response.text
    patient.post(f"/comprehension/{journey.consent_id}", {"choice": "b"})
    with journey.app.app_context():
        flag = db.session.scalars(select(TeachBack)).one()
        assert flag.is_open
    # Locked until the therapist records the discussion.
    assert "Talking it through" in patient.get(f"/comprehension/{journey.consent_id}").text

    therapist = journey.therapist_client()
    assert "Teach-back needed" in therapist.get("/consent/team").text
    response = therapist.post(
        f"/comprehension/teach-back/{flag.id}", {"note": "Talked through stopping at any time."}
    )
    assert response.status_code == 302
    answer_all(patient, journey.consent_id, "a")
    with journey.app.app_context():
        attempts = db.session.scalars(select(ComprehensionAttempt.correct)).all()
        assert attempts == [False, False, True]
        assert journey.consent().comprehension_completed_at is not None
    assert "comprehension.teach_back_resolved" in actions(journey.app)


@pytest.mark.parametrize(
    "stage", ["before_comprehension", "cooling_off", "wrong_password", "version_not_active"]
)
def test_signing_is_refused_until_every_condition_is_met(journey, stage):
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    if stage != "before_comprehension":
        answer_all(patient, journey.consent_id, "a")
        choose(patient, journey.consent_id)
    if stage in ("wrong_password", "version_not_active"):
        journey.past_cooling_off()
    if stage == "version_not_active":
        admin = create_account(journey.app, Role.ADMINISTRATOR, email="admin2@example.org")
        result = journey.app.test_cli_runner().invoke(
            args=["docs", "withdraw", "diary-study", "1.0", "--by", admin.email, "--reason", "test"]
        )
        assert result.exit_code == 0
    password = "not my password" if stage == "wrong_password" else journey.patient.password
    response = sign(patient, journey.consent_id, password)
    assert response.status_code == 400
    expected = {
        "before_comprehension": "Answer the questions about the document first",
        "cooling_off": "You can sign once you have had time to think it over",
        "wrong_password": "Your password is not correct",
        "version_not_active": "This version of the document is no longer in use",
    }[stage]
    assert expected in response.text
    with journey.app.app_context():
        assert db.session.scalar(select(func.count(Signature.id))) == 0


def test_another_patient_cannot_sign_or_see_this_consent(journey):
    other = create_account(journey.app, Role.PATIENT, email="other@example.org")
    client = PortalClient(journey.app)
    client.login(other.email, other.password)
    assert client.get(f"/consent/{journey.consent_id}/read/0").status_code == 404
    response = sign(client, journey.consent_id, other.password)
    assert response.status_code == 404


def test_another_therapist_cannot_countersign(journey):
    other = create_account(journey.app, Role.THERAPIST, email="t2@example.org")
    client = PortalClient(journey.app)
    client.login(other.email, other.password)
    assert client.get(f"/consent/team/{journey.consent_id}/countersign").status_code == 403


def test_a_double_submitted_signature_makes_one_record(journey):
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    answer_all(patient, journey.consent_id, "a")
    choose(patient, journey.consent_id)
    journey.past_cooling_off()
    token = patient.csrf_token()
    results = []

    def submit():
        results.append(
            sign(
                patient, journey.consent_id, journey.patient.password, csrf_token=token
            ).status_code
        )

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [302, 302]
    assert sign(patient, journey.consent_id, journey.patient.password).status_code == 302
    with journey.app.app_context():
        assert db.session.scalar(select(func.count(Signature.id))) == 1
    assert actions(journey.app).count("consent.signed") == 1


def test_typed_signature_needs_the_therapist_to_witness_it(journey):
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    answer_all(patient, journey.consent_id, "a")
    choose(patient, journey.consent_id)
    journey.past_cooling_off()
    assert (
        sign(
            patient, journey.consent_id, journey.patient.password, method="typed", signature=""
        ).status_code
        == 302
    )
    therapist = journey.therapist_client()
    url = f"/consent/team/{journey.consent_id}/countersign"
    data = {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password}
    response = therapist.post(url, data)
    assert response.status_code == 400
    assert "Confirm that you witnessed the patient typing their name" in response.text
    assert therapist.post(url, {**data, "witnessed_typed": "y"}).status_code == 302


def test_reading_resumes_where_the_patient_left_off(journey):
    patient = journey.patient_client()
    page = patient.get(f"/consent/{journey.consent_id}/read/0").text
    import re

    visit = re.search(r'name="visit" value="([^"]+)"', page)[1]
    patient.post(f"/consent/{journey.consent_id}/read/0", {"visit": visit, "direction": "next"})
    elsewhere = journey.patient_client()  # another device
    response = elsewhere.get(f"/consent/{journey.consent_id}")
    assert response.headers["Location"] == f"/consent/{journey.consent_id}/read/1"
    # A section ahead of where they are cannot be skipped to.
    assert elsewhere.get(f"/consent/{journey.consent_id}/read/3").status_code == 302


def _reading_rows(app) -> tuple[int, int, int]:
    """Visits stored, visits tallied and audit events: what showing a section could write."""
    from portal.oversight.models import SectionTally

    with app.app_context():
        return (
            db.session.scalar(select(func.count(SectionVisit.id))),
            db.session.scalar(select(func.coalesce(func.sum(SectionTally.visits), 0))),
            db.session.scalar(select(func.count(AuditEvent.seq))),
        )


def _visit_token(page: str) -> str:
    import re

    return re.search(r'name="visit" value="([^"]+)"', page)[1]


def test_showing_a_section_writes_nothing_once_the_consent_is_open(journey):
    patient = journey.patient_client()
    url = f"/consent/{journey.consent_id}/read/0"
    patient.get(url)  # the first opening: consent.opened is written
    before = _reading_rows(journey.app)
    for _ in range(3):
        assert patient.get(url).status_code == 200
    assert _reading_rows(journey.app) == before
    with journey.app.app_context():
        assert journey.consent().opened_at is not None


def test_time_on_a_section_is_recorded_once_when_the_patient_leaves_it(journey):
    patient = journey.patient_client()
    url = f"/consent/{journey.consent_id}/read/0"
    token = _visit_token(patient.get(url).text)
    visits, tallied, _events = _reading_rows(journey.app)
    assert patient.post(url, {"visit": token, "direction": "next"}).status_code == 302
    assert _reading_rows(journey.app)[:2] == (visits + 1, tallied + 1)
    from portal.consent.journey import reading_plan

    with journey.app.app_context():
        visit = db.session.scalars(select(SectionVisit).order_by(SectionVisit.id.desc())).first()
        assert visit.consent_id == journey.consent_id
        assert visit.section_key == reading_plan(db.session, journey.consent())[0]
        assert 0 <= visit.seconds < 60
    # The same form sent again (Back in the browser, then Next) is not a second visit.
    assert patient.post(url, {"visit": token, "direction": "next"}).status_code == 302
    assert _reading_rows(journey.app)[:2] == (visits + 1, tallied + 1)


def test_only_a_section_already_opened_can_be_left(journey):
    """Sending the last section's form first would otherwise mark every section read."""
    patient = journey.patient_client()
    last = f"/consent/{journey.consent_id}/read/3"
    refused = patient.post(last, {"direction": "next"})  # the consent was never opened
    assert refused.status_code == 302 and refused.headers["Location"] == "/consent/"
    assert "Please read the sections in order" in patient.get("/consent/").text
    assert patient.get(f"/consent/{journey.consent_id}/read/0?note=seen").status_code == 200
    refused = patient.post(last, {"direction": "next"})  # opened, but sections 1-3 unread
    assert refused.status_code == 302 and refused.headers["Location"] == "/consent/"
    assert "Please read the sections in order" in patient.get("/consent/").text
    patient.post(f"/consent/{journey.consent_id}/read/9", {"direction": "next"})
    assert "That section does not exist" in patient.get("/consent/").text
    with journey.app.app_context():
        consent = journey.consent()
        assert consent.reading_completed_at is None and consent.reading_position == 0
    assert "consent.reading_completed" not in actions(journey.app)


def test_a_visit_token_that_is_not_this_consents_counts_nothing(journey):
    patient = journey.patient_client()
    url = f"/consent/{journey.consent_id}/read/0"
    token = _visit_token(patient.get(url).text)
    before = _reading_rows(journey.app)[:2]
    payload, signature = token.rsplit(".", 1)
    forged = f"{payload}.{signature[::-1]}"
    with journey.app.test_request_context():
        from itsdangerous import URLSafeSerializer

        other_consent = URLSafeSerializer(
            journey.app.secret_key, salt="portal.consent.section-visit"
        ).dumps([journey.consent_id + 1, "risks", "2026-01-01T00:00:00+00:00"])
        unsalted = URLSafeSerializer(journey.app.secret_key).dumps(
            [journey.consent_id, "risks", "2026-01-01T00:00:00+00:00"]
        )
    for bad in (forged, other_consent, unsalted, "not-a-token", ""):
        # The patient still moves on: the time is only analytics.
        response = patient.post(url, {"visit": bad, "direction": "back"})
        assert response.status_code == 302
    assert _reading_rows(journey.app)[:2] == before
    # Longer than any token the portal makes: refused plainly, and nothing recorded.
    assert patient.post(url, {"visit": "x" * 201, "direction": "next"}).status_code == 400
    assert _reading_rows(journey.app)[:2] == before


def test_a_question_for_the_study_team_reaches_the_therapist(journey):
    patient = journey.patient_client()
    response = patient.post(
        f"/consent/{journey.consent_id}/ask",
        {
            "question": "Can my partner come to the sessions?",
            "section": "about",
            "back": f"/consent/{journey.consent_id}",
        },
    )
    assert response.status_code == 302
    assert (
        "Can my partner come to the sessions?"
        in journey.therapist_client().get("/consent/team").text
    )


def test_a_material_change_asks_for_consent_again_on_the_changed_sections(journey, tmp_path):
    complete(journey)
    publish_v1_1(journey, tmp_path, material=True)
    with journey.app.app_context():
        new = db.session.scalars(select(Consent).where(Consent.id != journey.consent_id)).one()
        assert new.replaces_id == journey.consent_id
        assert [s.key for s in new.sections] == ["risks-and-benefits"]
        assert new.questions == []  # no question is about the changed section
        new_id = new.id
    patient = journey.patient_client()
    home = patient.get("/consent/").text
    assert "we need to ask for your consent again" in home
    changes = patient.get(f"/consent/{new_id}/changes").text
    assert '<ins class="app-redline__added">' in changes
    read_everything(patient, new_id, sections=1)
    assert patient.get(f"/consent/{new_id}").headers["Location"] == f"/consent/{new_id}/choices"
    choose(patient, new_id, "no")
    with journey.app.app_context():
        new = db.session.get(Consent, new_id)
        new.opened_at -= dt.timedelta(hours=25)
        db.session.commit()
        assert db.session.get(Consent, journey.consent_id).status == "complete"  # still stands
    assert sign(patient, new_id, journey.patient.password).status_code == 302
    journey.therapist_client().post(
        f"/consent/team/{new_id}/countersign",
        {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password},
    )
    with journey.app.app_context():
        assert db.session.get(Consent, journey.consent_id).status == "replaced"
        assert db.session.get(Consent, new_id).status == "complete"
    assert "consent.replaced" in actions(journey.app)


def test_a_non_material_change_only_tells_the_patient(journey, tmp_path):
    complete(journey)
    publish_v1_1(journey, tmp_path, material=False)
    with journey.app.app_context():
        assert db.session.scalar(select(func.count(Consent.id))) == 1
    home = journey.patient_client().get("/consent/").text
    assert "has small changes. You do not need to do anything." in home


def test_questions_and_teach_back_notes_are_encrypted_at_rest(journey):
    from sqlalchemy import text

    patient = journey.patient_client()
    patient.post(
        f"/consent/{journey.consent_id}/ask",
        {"question": "I had a panic attack last week. Is that a problem?"},
    )
    read_everything(patient, journey.consent_id)
    for _attempt in range(2):
        patient.post(f"/comprehension/{journey.consent_id}", {"choice": "b"})
    with journey.app.app_context():
        flag_id = db.session.scalar(select(TeachBack.id))
    journey.therapist_client().post(
        f"/comprehension/teach-back/{flag_id}",
        {"note": "Discussed her panic attacks and stopping."},
    )
    with journey.app.app_context():
        stored_question = db.session.execute(text("SELECT text FROM patient_question")).scalar()
        stored_note = db.session.execute(text("SELECT note FROM teach_back")).scalar()
        trail = " ".join(
            e or ""
            for e in db.session.execute(text("SELECT after_json FROM audit_event")).scalars()
        )
        assert stored_question.startswith("fernet:") and "panic" not in stored_question
        assert stored_note.startswith("fernet:") and "panic" not in stored_note
        assert "panic" not in trail
        assert db.session.get(TeachBack, flag_id).note.startswith("Discussed her panic")
    assert "I had a panic attack last week" in journey.therapist_client().get("/consent/team").text


def test_the_data_key_is_generated_once_outside_the_database(monkeypatch, tmp_path):
    from portal import create_app

    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("PORTAL_DATA_ENCRYPTION_KEY", raising=False)
    first = create_app({"SECRET_KEY": "x"}).config["DATA_ENCRYPTION_KEY"]
    assert (tmp_path / "instance" / "data_key").stat().st_mode & 0o777 == 0o600
    assert create_app({"SECRET_KEY": "x"}).config["DATA_ENCRYPTION_KEY"] == first


def test_staff_reads_of_a_patients_answers_are_audited(journey):
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    answer_all(patient, journey.consent_id, "a")
    choose(patient, journey.consent_id, "yes")
    journey.past_cooling_off()
    sign(patient, journey.consent_id, journey.patient.password)
    therapist = journey.therapist_client()
    assert therapist.get(f"/consent/team/{journey.consent_id}/countersign").status_code == 200
    with journey.app.app_context():
        viewed = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "consent.viewed")
        ).one()
        assert viewed.actor_id == journey.therapist.id
        assert viewed.after == {"page": "countersign"}


def test_pages_that_only_read_do_not_wait_for_a_writer(make_app, sqlite_url, tmp_path):
    """While another connection holds SQLite's write lock, the therapist's dashboard, the
    patient's home page and inbox (views declared reads_only), a section the patient has
    opened before, and a page that reads nothing of its own (the change-password form, whose
    menu still asks the database) answer at once: the sign-in is checked, and the page read,
    without asking for the lock that every writer queues for."""
    import sqlite3
    import time

    journey = set_up_journey(make_app, sqlite_url, tmp_path)
    therapist = journey.therapist_client()
    patient = journey.patient_client()
    section_url = f"/consent/{journey.consent_id}/read/0?note=seen"
    assert patient.get(section_url).status_code == 200  # the first opening is written
    database = journey.app.config["DATABASE_URL"].removeprefix("sqlite:///")
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        began = time.perf_counter()
        section = patient.get(section_url)
        team = therapist.get("/consent/team")
        form = therapist.get("/account/password")
        home = patient.get("/consent/")
        inbox = patient.get("/notifications/")
        waited = time.perf_counter() - began
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert team.status_code == 200
    assert "Sam Taylor" in team.text  # their patient is listed
    assert form.status_code == 200
    assert "Notifications" in form.text  # the menu was read
    assert home.status_code == 200 and inbox.status_code == 200
    assert section.status_code == 200 and 'name="visit"' in section.text
    assert "Continue" in home.text or "Start" in home.text  # their consent is offered
    assert waited < 4
