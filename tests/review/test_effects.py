"""What opinions change: consent versions offered to patients, re-consent after a material
modification, suspended protocols; and the paper trail (letters, minutes) anyone can verify."""

from __future__ import annotations

import subprocess

from sqlalchemy import select

from portal.accounts.models import User
from portal.consent.journey_models import Consent, ConsentStatus, Withdrawal
from portal.consent.models import DocumentVersion
from portal.core import audit
from portal.core.permissions import Role
from portal.extensions import db
from portal.records.services import verify_file
from portal.review.models import PanelMeeting, PanelPaper, Protocol, Vote
from tests.consent.doc_fixtures import write_example
from tests.consent.journey_helpers import Journey, complete
from tests.factories import create_account
from tests.review.helpers import declare, quorate_votes, set_up_review, submit_protocol, vote


def _approve(review, submission_id: int, **material) -> None:
    chair = declare(review, review.chair, submission_id)
    quorate_votes(review, submission_id)
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "favourable", "reasons": "Sound.", **material},
    )
    assert response.status_code == 302, response.text


def _patient_of(review, therapist, email: str):
    patient = create_account(review.app, Role.PATIENT, email, full_name="Sam Taylor")
    with review.app.app_context():
        db.session.get(User, patient.id).invited_by_id = therapist.id
        db.session.commit()
    return patient


def _offer(review, therapist, patient):
    client = review.client(therapist)
    with review.app.app_context():
        document_id = db.session.get(DocumentVersion, review.version_id).document_id
    return client.post(f"/consent/team/offer/{patient.id}", {"document_id": document_id})


def _consent_of(review, patient) -> int:
    with review.app.app_context():
        return db.session.scalar(select(Consent.id).where(Consent.patient_id == patient.id))


def test_a_suspended_protocol_takes_no_new_consent_but_withdrawal_works(
    make_app, database_url, tmp_path
):
    review = set_up_review(make_app, database_url, tmp_path)
    submission_id = submit_protocol(review)
    _approve(review, submission_id)
    therapist = create_account(review.app, Role.THERAPIST, "t@example.org")
    consented = _patient_of(review, therapist, "p1@example.org")
    reading = _patient_of(review, therapist, "p2@example.org")
    newcomer = _patient_of(review, therapist, "p3@example.org")
    assert _offer(review, therapist, consented).status_code == 302
    journey = complete(Journey(review.app, therapist, consented, _consent_of(review, consented)))
    assert _offer(review, therapist, reading).status_code == 302

    chair = review.client(review.chair)
    with review.app.app_context():
        protocol_id = db.session.scalar(select(Protocol.id))
    response = chair.post(
        f"/review/protocols/{protocol_id}/status",
        {"status": "suspended", "reason": "A serious breach is being investigated."},
    )
    assert response.status_code == 302

    # No new offer, and the patient part-way through cannot sign.
    refused = _offer(review, therapist, newcomer)
    assert refused.status_code in (302, 400)
    assert _consent_of(review, newcomer) is None
    patient = review.client(reading)
    sign_page = patient.get(f"/consent/{_consent_of(review, reading)}/sign")
    assert "suspended or stopped this study" in sign_page.text

    # The consented patient still reads their record and withdraws.
    with review.app.app_context():
        record_uid = db.session.scalar(
            select(audit.AuditEvent.object_id).where(audit.AuditEvent.action == "record.created")
        )
    own = journey.patient_client()
    assert own.get(f"/records/{record_uid}.pdf").status_code == 200
    response = own.post(
        f"/withdraw/{journey.consent_id}/confirm",
        {"scope": "study", "password": consented.password, "data_option": "keep"},
    )
    assert response.status_code == 302, response.text
    with review.app.app_context():
        assert db.session.scalar(select(Withdrawal.id)) is not None
        assert db.session.get(Consent, journey.consent_id).status == ConsentStatus.WITHDRAWN
        events = db.session.scalars(
            select(audit.AuditEvent).where(audit.AuditEvent.action == "protocol.status_changed")
        ).all()
        assert events[-1].reason == "A serious breach is being investigated."
    # Lifting the suspension lets consent be taken again.
    response = chair.post(
        f"/review/protocols/{protocol_id}/status",
        {"status": "approved", "reason": "Investigation closed."},
    )
    assert response.status_code == 302
    assert _offer(review, therapist, newcomer).status_code == 302
    assert _consent_of(review, newcomer) is not None


def test_a_material_modification_asks_patients_to_consent_again(make_app, sqlite_url, tmp_path):
    review = set_up_review(make_app, sqlite_url, tmp_path)
    _approve(review, submit_protocol(review))
    therapist = create_account(review.app, Role.THERAPIST, "t@example.org")
    patient = _patient_of(review, therapist, "p1@example.org")
    assert _offer(review, therapist, patient).status_code == 302
    complete(Journey(review.app, therapist, patient, _consent_of(review, patient)))

    write_example(
        tmp_path / "consent_docs", "1.1", body_change="Writing about nightmares can be upsetting."
    )
    assert review.app.test_cli_runner().invoke(args=["docs", "import"]).exit_code == 0
    with review.app.app_context():
        new_version = db.session.scalar(
            select(DocumentVersion.id).where(DocumentVersion.version == "1.1")
        )
        protocol_id = db.session.scalar(select(Protocol.id))
    investigator = review.client(review.investigator)
    response = investigator.post(
        f"/review/protocols/{protocol_id}/modify",
        {
            "kind": "substantial",
            "summary": "Warns that writing about nightmares can be upsetting.",
            "version_ids": [str(new_version)],
        },
    )
    assert response.status_code == 302, response.text
    with review.app.app_context():
        from portal.review.models import Submission

        modification = db.session.scalar(select(Submission.id).order_by(Submission.id.desc()))
    page = review.client(review.chair).get(f"/review/panel/submissions/{modification}")
    assert "Compare with 1.0" in page.text  # the redline of the changed document
    chair = declare(review, review.chair, modification)
    quorate_votes(review, modification)
    missing = chair.post(
        f"/review/panel/submissions/{modification}/opinion",
        {"category": "favourable", "reasons": "Sound."},
    )
    assert missing.status_code == 400 and "material change" in missing.text
    response = chair.post(
        f"/review/panel/submissions/{modification}/opinion",
        {"category": "favourable", "reasons": "Sound.", f"material_{new_version}": "yes"},
    )
    assert response.status_code == 302
    with review.app.app_context():
        version = db.session.get(DocumentVersion, new_version)
        assert (version.status, version.material_change) == ("active", True)
        reconsent = db.session.scalars(
            select(Consent).where(
                Consent.patient_id == patient.id, Consent.version_id == version.id
            )
        ).all()
        assert len(reconsent) == 1  # the patient is asked to consent to v1.1


def test_meeting_minutes_record_attendance_recusals_and_votes(make_app, database_url, tmp_path):
    review = set_up_review(make_app, database_url, tmp_path, members=9)
    submission_id = submit_protocol(review)
    chair = declare(review, review.chair, submission_id)
    response = chair.post(
        "/review/meetings", {"title": "December panel", "day": "3", "month": "12", "year": "2026"}
    )
    assert response.status_code == 302
    with review.app.app_context():
        meeting_id = db.session.scalar(select(PanelMeeting.id))
    assert (
        chair.post(
            f"/review/meetings/{meeting_id}/agenda", {"submission_id": str(submission_id)}
        ).status_code
        == 302
    )
    present = [review.chair, *review.members[:8]]
    for person in present:
        assert (
            chair.post(
                f"/review/meetings/{meeting_id}/attendance", {"member_id": str(person.id)}
            ).status_code
            == 302
        )
    declare(review, review.members[7], submission_id, conflict=True)
    # Only those present vote at a meeting.
    absent = vote(review, review.members[8], submission_id)
    assert absent.status_code == 400 and "recorded as present" in absent.text
    for member in review.members[:6]:
        assert vote(review, member, submission_id).status_code == 302
    assert vote(review, review.chair, submission_id, "abstain", declared=False).status_code == 302
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "favourable", "reasons": "The panel agreed."},
    )
    assert response.status_code == 302, response.text
    assert chair.post(f"/review/meetings/{meeting_id}/close", {}).status_code == 302
    # Closed: nothing more can be added.
    late = chair.post(
        f"/review/meetings/{meeting_id}/attendance", {"member_id": str(review.members[8].id)}
    )
    assert late.status_code == 400

    with review.app.app_context():
        minutes = db.session.scalar(select(PanelPaper).where(PanelPaper.kind == "minutes"))
        assert verify_file(db.session, minutes.pdf).paper.uid == minutes.uid
        votes = db.session.scalars(select(Vote.meeting_id)).all()
        assert set(votes) == {meeting_id}
    # The investigator gets the extract about their own item, never the whole minutes.
    investigator = review.client(review.investigator)
    assert investigator.get(f"/review/papers/{minutes.uid}.pdf").status_code == 404
    with review.app.app_context():
        extract = db.session.scalar(select(PanelPaper).where(PanelPaper.kind == "minutes_extract"))
    assert investigator.get(f"/review/papers/{extract.uid}.pdf").status_code == 200
    assert "minutes extract" in investigator.get(f"/review/submissions/{submission_id}").text
    path = tmp_path / "minutes.pdf"
    path.write_bytes(review.client(review.chair).get(f"/review/papers/{minutes.uid}.pdf").data)

    assert (
        "Signature is Valid"
        in subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    )
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert "Member 07: conflict declared" in text
    assert "declared a conflict of interest" in text  # the recusal is minuted
    assert "6 for, 0 against, 1 abstaining" in text
    assert "Member 08" in text and "lay member" in text
    # The public check page knows the minutes too.
    page = review.client(review.members[0]).post(
        "/records/verify",
        {"document": (path.open("rb"), "minutes.pdf")},
        content_type="multipart/form-data",
    )
    assert "the ethics panel's minutes" in page.text


def test_quorum_at_a_meeting_counts_only_declared_members_present_and_their_votes(
    make_app, sqlite_url, tmp_path
):
    """Members present who have not declared are not counted, and virtual votes cast before
    the item went on the agenda do not count at the meeting."""
    review = set_up_review(make_app, sqlite_url, tmp_path, members=9)
    submission_id = submit_protocol(review)
    for member in review.members[6:9]:  # three virtual votes against, before the meeting
        assert vote(review, member, submission_id, "against").status_code == 302
    chair = declare(review, review.chair, submission_id)
    chair.post("/review/meetings", {"title": "Panel", "day": "1", "month": "12", "year": "2026"})
    with review.app.app_context():
        meeting_id = db.session.scalar(select(PanelMeeting.id))
    chair.post(f"/review/meetings/{meeting_id}/agenda", {"submission_id": str(submission_id)})
    for person in [review.chair, *review.members[:6]]:
        chair.post(f"/review/meetings/{meeting_id}/attendance", {"member_id": str(person.id)})
    assert vote(review, review.members[0], submission_id).status_code == 302
    # Seven present, but only two have declared: no quorum.
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "favourable", "reasons": "Fine."},
    )
    assert response.status_code == 409 and "2 non-conflicted members" in response.text
    for member in review.members[1:6]:
        assert vote(review, member, submission_id).status_code == 302
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "favourable", "reasons": "Fine."},
    )
    assert response.status_code == 302, response.text
    with review.app.app_context():
        from portal.review.models import Opinion

        opinion = db.session.scalar(select(Opinion))
        # The three earlier virtual votes against are not part of the meeting's count.
        assert (opinion.votes_for, opinion.votes_against, opinion.present) == (6, 0, 7)


def test_another_protocol_cannot_take_a_document_that_belongs_to_a_protocol(
    make_app, sqlite_url, tmp_path
):
    review = set_up_review(make_app, sqlite_url, tmp_path)
    submit_protocol(review)
    write_example(tmp_path / "consent_docs", "1.1", body_change="A changed sentence.")
    assert review.app.test_cli_runner().invoke(args=["docs", "import"]).exit_code == 0
    with review.app.app_context():
        newer = db.session.scalar(
            select(DocumentVersion.id).where(DocumentVersion.version == "1.1")
        )
    other = create_account(review.app, Role.INVESTIGATOR, "other@example.org")
    client = review.client(other)
    form = client.get("/review/protocols/new").text
    assert "diary-study v1.1" not in form  # the document belongs to the first protocol
    import io

    from tests.review.helpers import protocol_form

    response = client.post(
        "/review/protocols/new",
        protocol_form(
            review,
            reference="IRAS 999",
            version_ids=[str(newer)],
            protocol_file=(io.BytesIO(b"%PDF-1.4 other"), "other.pdf"),
        ),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and "cannot be submitted" in response.text


def test_an_item_left_undecided_at_a_meeting_is_deferred_to_a_new_round(
    make_app, sqlite_url, tmp_path
):
    review = set_up_review(make_app, sqlite_url, tmp_path)
    submission_id = submit_protocol(review)
    chair = declare(review, review.chair, submission_id)
    chair.post("/review/meetings", {"title": "Panel", "day": "1", "month": "12", "year": "2026"})
    with review.app.app_context():
        meeting_id = db.session.scalar(select(PanelMeeting.id))
    chair.post(f"/review/meetings/{meeting_id}/agenda", {"submission_id": str(submission_id)})
    chair.post(
        f"/review/meetings/{meeting_id}/attendance", {"member_id": str(review.members[0].id)}
    )
    assert vote(review, review.members[0], submission_id, "against").status_code == 302
    # All votes against: an unfavourable opinion fits; a favourable one does not.
    refused = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "favourable", "reasons": "Fine."},
    )
    assert refused.status_code in (400, 409)
    assert chair.post(f"/review/meetings/{meeting_id}/close", {}).status_code == 302
    with review.app.app_context():
        from portal.review.models import Submission

        assert db.session.get(Submission, submission_id).round == 2
    # The member voted at the meeting; in the new round they vote again.
    again = review.client(review.members[0]).post(
        f"/review/panel/submissions/{submission_id}/vote", {"choice": "for"}
    )
    assert again.status_code == 302
