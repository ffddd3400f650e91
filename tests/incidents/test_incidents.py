"""Boundary incidents: confidential reports, triage with a hold, investigation, the therapist's
response, outcomes; and who is refused (with the attempt audited)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from portal.core.audit import AuditEvent, verify_chain
from portal.core.permissions import Role
from portal.extensions import db
from portal.incidents.models import Incident, IncidentEntry, TherapistHold
from tests.consent.journey_helpers import answer_all, choose, read_everything, set_up_journey, sign
from tests.factories import create_account
from tests.helpers import PortalClient, reads_for

PDF = b"%PDF-1.4\n% evidence\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def site(make_app, database_url, tmp_path):
    """A therapist with a patient whose consent awaits countersignature, and a panel."""
    journey = set_up_journey(make_app, database_url, tmp_path)
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    answer_all(patient, journey.consent_id, "a")
    choose(patient, journey.consent_id, "yes")
    journey.past_cooling_off()
    assert sign(patient, journey.consent_id, journey.patient.password).status_code == 302
    journey.chair = create_account(journey.app, Role.PANEL_CHAIR, "chair@example.org")
    journey.member = create_account(journey.app, Role.PANEL_MEMBER, "member@example.org")
    return journey


def client_for(app, account) -> PortalClient:
    client = PortalClient(app)
    client.login(account.email, account.password)
    return client


def report(client: PortalClient, therapist_id: int, **overrides):
    today = dt.date.today()
    data = {
        "therapist": str(therapist_id),
        "category": "touch",
        "day": str(today.day),
        "month": str(today.month),
        "year": str(today.year),
        "session_kind": "dosing",
        "what_happened": "They held my hand for a long time and I did not want that.",
        "others_involved": "",
        "feels_safe": "unsure",
        **overrides,
    }
    return client.post("/concerns/new", data)


def only_incident(app) -> Incident:
    with app.app_context():
        incident = db.session.scalars(select(Incident)).one()
        db.session.expunge(incident)
        return incident


def only_incident_of(app, category: str) -> Incident:
    with app.app_context():
        incident = db.session.scalars(select(Incident).filter_by(category=category)).one()
        db.session.expunge(incident)
        return incident


def actions(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()
        for event in events:
            db.session.expunge(event)
        return events


def test_the_whole_path_from_report_to_outcome(site):
    patient = site.patient_client()
    assert "Report a concern about a therapist" in patient.get("/consent/").text  # every page
    response = report(patient, site.therapist.id)
    assert response.status_code == 302, response.text
    received = patient.get(response.headers["Location"]).text
    assert "116 123" in received and "999" in received  # support and crisis contacts at once
    incident = only_incident(site.app)
    with site.app.app_context():  # the narrative is encrypted at rest
        raw = db.session.execute(db.session.query(Incident.id).statement).all()
        stored = db.session.connection().exec_driver_sql("SELECT what_happened FROM incident")
        assert "held my hand" not in stored.scalar_one()
        assert raw

    chair = client_for(site.app, site.chair)
    assert incident.reference in chair.get("/concerns/").text
    page = chair.get(f"/concerns/{incident.id}").text
    assert "held my hand" in page and "Sam Taylor" in page
    response = chair.post(
        f"/concerns/{incident.id}/triage",
        {"severity": "serious", "hold": "y", "serious_breach_due": "y", "note": "Safeguard now."},
    )
    assert response.status_code == 302, response.text
    assert "Serious-breach report due" in chair.get(f"/concerns/{incident.id}").text

    # On hold: the therapist can no longer countersign, and the site sees only "unavailable".
    therapist = site.therapist_client()
    response = therapist.post(
        f"/consent/team/{site.consent_id}/countersign",
        {"discussed": "y", "identity_checked": "y", "password": site.therapist.password},
    )
    assert response.status_code == 400
    assert "cannot take or countersign consent at the moment" in response.text
    with site.app.app_context():
        assert site.consent().status == "signed"
        document_id = site.consent().version.document_id
    response = therapist.post(
        f"/consent/team/offer/{site.patient.id}", {"document_id": document_id}
    )
    assert "cannot take or countersign consent" in therapist.get(response.headers["Location"]).text
    admin = PortalClient(site.app)
    admin.login("administrator@example.org", "correct horse battery staple")
    staff = admin.get("/account/staff").text
    assert "Unavailable" in staff and "held my hand" not in staff

    # Investigation: a member is assigned and adds a note with evidence.
    assert (
        chair.post(
            f"/concerns/{incident.id}/assign", {"member_id": str(site.member.id)}
        ).status_code
        == 302
    )
    member = client_for(site.app, site.member)
    response = member.post(
        f"/concerns/{incident.id}/notes",
        {
            "text": "Spoke to the co-therapist.",
            "recording_reference": "Session 3, 2026-11-20",
            "evidence": (__import__("io").BytesIO(PDF), "statement.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.text
    page = member.get(f"/concerns/{incident.id}").text
    assert "Spoke to the co-therapist." in page and "Session 3, 2026-11-20" in page
    entry_id = re.search(rf"/concerns/{incident.id}/evidence/(\d+)", page)[1]
    download = member.get(f"/concerns/{incident.id}/evidence/{entry_id}")
    assert download.data == PDF and download.headers["Cache-Control"] == "no-store"

    # The therapist is asked to respond: they see the allegation, never the reporter.
    assert therapist.get(f"/concerns/{incident.id}").status_code == 404
    assert chair.post(f"/concerns/{incident.id}/share", {}).status_code == 302
    page = therapist.get(f"/concerns/{incident.id}").text
    assert "held my hand" in page
    assert "Sam Taylor" not in page and "patient@example.org" not in page
    response = therapist.post(
        f"/concerns/{incident.id}/respond", {"response": "I recall it differently."}
    )
    assert response.status_code == 302
    assert "I recall it differently." in chair.get(f"/concerns/{incident.id}").text

    # No case to answer: the hold is lifted; the reporter is told in general terms.
    response = chair.post(
        f"/concerns/{incident.id}/outcome",
        {"outcome": "no_case", "reasons": "The recording shows a handshake at the end."},
    )
    assert response.status_code == 302
    with site.app.app_context():
        holds = db.session.scalars(select(TherapistHold)).all()
        assert holds and all(h.lifted_at is not None for h in holds)
        assert verify_chain(db.session).intact
    status = patient.get(f"/concerns/{incident.id}").text
    assert "decided that no further action was needed" in status
    assert "handshake" not in status  # the reasons stay with the panel
    assert (
        therapist.post(
            f"/consent/team/{site.consent_id}/countersign",
            {"discussed": "y", "identity_checked": "y", "password": site.therapist.password},
        ).status_code
        == 302
    )
    # Every read was audited.
    assert len(actions(site.app, "incident.viewed")) >= 6


def test_suspension_keeps_the_therapist_unavailable(site):
    report(site.patient_client(), site.therapist.id)
    incident = only_incident(site.app)
    chair = client_for(site.app, site.chair)
    chair.post(f"/concerns/{incident.id}/triage", {"severity": "moderate"})
    # Not before the therapist has been asked for their side.
    response = chair.post(
        f"/concerns/{incident.id}/outcome", {"outcome": "suspension", "reasons": "Upheld."}
    )
    assert response.status_code == 400
    assert "Ask the therapist for their response" in response.text
    assert chair.post(f"/concerns/{incident.id}/share", {}).status_code == 302
    response = chair.post(
        f"/concerns/{incident.id}/outcome", {"outcome": "suspension", "reasons": "Upheld."}
    )
    assert response.status_code == 302
    with site.app.app_context():
        placed = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "therapist.hold_placed")
        ).one()
        assert placed.actor_id == site.chair.id
    with site.app.app_context():
        from portal.incidents.services import is_unavailable

        assert is_unavailable(db.session, site.therapist.id)
    history = chair.get(f"/concerns/therapists/{site.therapist.id}").text
    assert "On hold" in history and "Suspension" in history


def test_the_named_therapist_other_therapists_and_other_patients_are_refused(site):
    report(site.patient_client(), site.therapist.id)
    incident = only_incident(site.app)
    other_therapist = create_account(site.app, Role.THERAPIST, "t2@example.org")
    other_patient = create_account(site.app, Role.PATIENT, "p2@example.org")
    for account in (site.therapist, other_therapist, other_patient):
        client = client_for(site.app, account)
        assert client.get(f"/concerns/{incident.id}").status_code == 404
        assert incident.reference not in client.get("/concerns/mine").text
    assert client_for(site.app, other_therapist).get("/concerns/").status_code == 403
    assert client_for(site.app, site.chair).get("/concerns/99999999999999999999").status_code == 404
    refused = actions(site.app, "incident.access_refused")
    assert {event.actor_id for event in refused} == {
        site.therapist.id,
        other_therapist.id,
        other_patient.id,
    }


def test_a_panel_member_who_reports_cannot_be_told_apart_from_a_conflicted_one(site):
    response = report(client_for(site.app, site.member), site.therapist.id, anonymous="y")
    assert response.status_code == 302
    incident = only_incident(site.app)
    chair = client_for(site.app, site.chair)
    page = chair.get(f"/concerns/{incident.id}").text
    assert "asked not to be named" in page
    assert "Test Panel Member" not in page  # not even in the list of members to assign
    response = chair.post(f"/concerns/{incident.id}/assign", {"member_id": "²"})
    assert response.status_code == 400  # a nonsense id is a clear refusal, not a 500


def test_a_member_with_a_conflict_is_recused(site):
    report(site.patient_client(), site.therapist.id)
    incident = only_incident(site.app)
    member = client_for(site.app, site.member)
    assert member.get(f"/concerns/{incident.id}").status_code == 200
    assert member.post(f"/concerns/{incident.id}/conflict", {}).status_code == 302
    assert member.get(f"/concerns/{incident.id}").status_code == 404
    assert incident.reference not in member.get("/concerns/").text
    chair = client_for(site.app, site.chair)
    chair.post(f"/concerns/{incident.id}/triage", {"severity": "low"})
    response = chair.post(f"/concerns/{incident.id}/assign", {"member_id": str(site.member.id)})
    assert response.status_code == 400
    assert "no conflict of interest" in response.text


def test_the_panels_list_reads_as_many_times_for_three_concerns_as_for_one(site):
    patient = site.patient_client()
    report(patient, site.therapist.id)
    chair = client_for(site.app, site.chair)
    one = reads_for(site.app, chair, "/concerns/")
    report(patient, site.therapist.id, category="coercion")
    report(patient, site.therapist.id, category="other")
    incident = only_incident_of(site.app, "coercion")
    member = client_for(site.app, site.member)
    assert member.post(f"/concerns/{incident.id}/conflict", {}).status_code == 302
    with site.app.app_context():
        references = [i.reference for i in db.session.scalars(select(Incident))]
    listed = chair.get("/concerns/").text
    assert len(references) == 3 and all(reference in listed for reference in references)
    assert reads_for(site.app, chair, "/concerns/") == one
    assert incident.reference not in member.get("/concerns/").text  # recusals still apply


def test_an_anonymous_staff_report_never_reveals_its_author(site):
    co_therapist = create_account(
        site.app, Role.THERAPIST, "co@example.org", full_name="Casey Cotherapist"
    )
    client = client_for(site.app, co_therapist)
    response = report(client, site.therapist.id, anonymous="y", category="alone")
    assert response.status_code == 302, response.text
    incident = only_incident(site.app)
    chair = client_for(site.app, site.chair)
    for path in (
        "/concerns/",
        f"/concerns/{incident.id}",
        f"/concerns/therapists/{site.therapist.id}",
    ):
        page = chair.get(path).text
        assert "Casey" not in page and "co@example.org" not in page
    assert "asked not to be named" in chair.get(f"/concerns/{incident.id}").text
    # The audit trail does not name them either, even when they check on their report.
    assert client.get(f"/concerns/{incident.id}").status_code == 200
    (reported,) = actions(site.app, "incident.reported")
    assert reported.actor_id is None and reported.actor_role == "anonymous_reporter"
    viewed = [e for e in actions(site.app, "incident.viewed") if e.after == {"as": "reporter"}]
    assert viewed and all(e.actor_id is None for e in viewed)


def test_patients_cannot_report_anonymously(site):
    response = report(site.patient_client(), site.therapist.id, anonymous="y")
    assert response.status_code == 302
    assert only_incident(site.app).anonymous is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"therapist": ""}, "Choose the therapist your concern is about"),
        ({"category": "gossip"}, "Choose what kind of concern it is"),
        ({"day": "", "month": "", "year": ""}, "Enter the date it happened"),
        ({"year": str(dt.date.today().year + 1)}, "The date cannot be in the future"),
        ({"session_kind": ""}, "Choose whether it was during a session"),
        ({"what_happened": "   "}, "Tell us what happened"),
        ({"what_happened": "x" * 10_001}, "10000 characters or fewer"),
        ({"feels_safe": ""}, "Tell us whether you feel safe now"),
    ],
)
def test_a_report_with_bad_input_is_refused_clearly(site, overrides, message):
    response = report(site.patient_client(), site.therapist.id, **overrides)
    assert response.status_code == 400
    assert message in response.text
    with site.app.app_context():
        assert db.session.scalars(select(Incident)).all() == []


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"MZ\x90\x00 not a document", "evil.pdf", "The file must be a PDF, PNG or JPEG"),
        (b"", "empty.pdf", "The file is empty"),
    ],
)
def test_evidence_uploads_are_checked_by_content(site, content, name, message):
    import io

    report(site.patient_client(), site.therapist.id)
    incident = only_incident(site.app)
    chair = client_for(site.app, site.chair)
    chair.post(f"/concerns/{incident.id}/triage", {"severity": "low"})
    response = chair.post(
        f"/concerns/{incident.id}/notes",
        {"text": "", "evidence": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert message in response.text
    with site.app.app_context():
        assert (
            db.session.scalars(select(IncidentEntry).where(IncidentEntry.kind == "evidence")).all()
            == []
        )


def test_overdue_triage_is_highlighted(site):
    report(site.patient_client(), site.therapist.id)
    incident = only_incident(site.app)
    with site.app.app_context():
        row = db.session.get(Incident, incident.id)
        row.reported_at -= dt.timedelta(hours=49)
        db.session.commit()
    assert "Triage overdue" in client_for(site.app, site.chair).get("/concerns/").text
