"""Ethics review end to end through the web routes: submit, declare, assign, vote, opinion,
conditions, and what the opinion changes for patients. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from portal.consent.models import DocumentVersion
from portal.core import audit
from portal.extensions import db
from portal.records.seal import check_seal
from portal.review import services
from portal.review.models import (
    InterestDeclaration,
    Opinion,
    PanelPaper,
    Protocol,
    Submission,
    Vote,
)
from tests.review.helpers import declare, quorate_votes, set_up_review, submit_protocol, vote


def _events(app, action: str) -> list[audit.AuditEvent]:
    with app.app_context():
        return list(
            db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.action == action))
        )


def _version_status(app, version_id: int) -> str:
    with app.app_context():
        return db.session.get(DocumentVersion, version_id).status


def test_favourable_opinion_with_conditions_makes_the_version_available_once_met(
    make_app, database_url, tmp_path
):
    review = set_up_review(make_app, database_url, tmp_path)
    submission_id = submit_protocol(review)
    assert _version_status(review.app, review.version_id) == "submitted"

    chair = declare(review, review.chair, submission_id)
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/assign",
        {"member_id": str(review.members[0].id)},
    )
    assert response.status_code == 302
    declare(review, review.members[7], submission_id, conflict=True)
    quorate_votes(review, submission_id, voters=7)

    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {
            "category": "favourable_with_conditions",
            "reasons": "A well-designed study.",
            "conditions": "Add the sponsor's insurance certificate\nName the data processor",
        },
    )
    assert response.status_code == 302, response.text
    with review.app.app_context():
        opinion = db.session.scalar(select(Opinion))
        assert (opinion.votes_for, opinion.present) == (7, 7)
        assert [c.text for c in opinion.conditions][1] == "Name the data processor"
        condition_ids = [c.id for c in opinion.conditions]
        letter = db.session.scalar(select(PanelPaper).where(PanelPaper.opinion_id == opinion.id))
        assert check_seal(letter.pdf).sealed_by_portal
        # Not approved until the conditions are met: no consent can be taken under it yet.
        assert db.session.scalar(select(Protocol.status)) == "under_review"
    # Approved, but not offered to patients until every condition is met.
    assert _version_status(review.app, review.version_id) == "approved"
    for index, condition_id in enumerate(condition_ids):
        response = chair.post(
            f"/review/panel/conditions/{condition_id}/met",
            {"evidence": f"Document {index} received"},
        )
        assert response.status_code == 302
    assert _version_status(review.app, review.version_id) == "active"
    assert len(_events(review.app, "submission.condition_met")) == 2
    with review.app.app_context():
        assert db.session.scalar(select(Protocol.status)) == "approved"

    investigator = review.client(review.investigator)
    page = investigator.get(f"/review/submissions/{submission_id}")
    assert "Favourable opinion with additional conditions" in page.text
    assert "Download the decision letter" in page.text
    download = investigator.get(f"/review/papers/{letter.uid}.pdf")
    assert download.status_code == 200 and download.data == letter.pdf
    assert _events(review.app, "panel_paper.downloaded")


def test_recused_member_and_submitter_cannot_vote_or_read_the_discussion(
    make_app, database_url, tmp_path
):
    review = set_up_review(make_app, database_url, tmp_path)
    # member01 is on the research team, so recused without declaring anything.
    submission_id = submit_protocol(review, team_emails="ada@example.org\nmember1@example.org")
    reviewer = declare(review, review.members[0], submission_id)
    assert (
        reviewer.post(
            f"/review/panel/submissions/{submission_id}/comment",
            {"about": "submission", "body": "Confidential: the dosing schedule worries me."},
        ).status_code
        == 302
    )

    conflicted = declare(review, review.members[2], submission_id, conflict=True)
    named = review.client(review.members[1])
    for client, why in ((conflicted, "declared_conflict"), (named, "named_on_protocol")):
        page = client.get(f"/review/panel/submissions/{submission_id}")
        assert page.status_code == 200
        assert "You are recused" in page.text
        assert "dosing schedule worries me" not in page.text
        refused = client.post(f"/review/panel/submissions/{submission_id}/vote", {"choice": "for"})
        assert refused.status_code == 403
        assert "recused" in refused.text
        refused = client.post(
            f"/review/panel/submissions/{submission_id}/comment",
            {"about": "submission", "body": "Let me in"},
        )
        assert refused.status_code == 403
    refusals = _events(review.app, "submission.action_refused")
    assert {(e.after_json and '"why"' in e.after_json) for e in refusals} == {True}
    assert len(refusals) == 4
    assert len(_events(review.app, "submission.access_refused")) >= 2

    # The submitter is never a reviewer: the panel pages are not theirs, and the
    # investigator's own page shows no discussion.
    investigator = review.client(review.investigator)
    assert investigator.get(f"/review/panel/submissions/{submission_id}").status_code == 403
    own = investigator.get(f"/review/submissions/{submission_id}")
    assert own.status_code == 200 and "dosing schedule" not in own.text
    assert (
        investigator.post(
            f"/review/panel/submissions/{submission_id}/vote", {"choice": "for"}
        ).status_code
        == 403
    )
    with review.app.app_context():
        assert db.session.scalar(select(func.count(Vote.id))) == 0
    # The chair cannot make a recused member a reviewer.
    chair = declare(review, review.chair, submission_id)
    refused = chair.post(
        f"/review/panel/submissions/{submission_id}/assign",
        {"member_id": str(review.members[2].id)},
    )
    assert refused.status_code == 400 and "That member is recused" in refused.text


def test_a_vote_is_counted_once(make_app, sqlite_url, tmp_path):
    review = set_up_review(make_app, sqlite_url, tmp_path)
    submission_id = submit_protocol(review)
    client = declare(review, review.members[0], submission_id)
    url = f"/review/panel/submissions/{submission_id}/vote"
    assert client.post(url, {"choice": "for"}).status_code == 302
    second = client.post(url, {"choice": "against"})
    assert second.status_code == 400 and "already voted" in second.text
    with review.app.app_context():
        assert db.session.scalars(select(Vote.choice)).all() == ["for"]


def test_an_opinion_without_quorum_is_refused(make_app, database_url, tmp_path):
    review = set_up_review(make_app, database_url, tmp_path)
    submission_id = submit_protocol(review)
    chair = declare(review, review.chair, submission_id)
    quorate_votes(review, submission_id, voters=6)  # one short of seven
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "favourable", "reasons": "Fine."},
    )
    assert response.status_code == 409
    assert "There is no quorum" in response.text
    assert _events(review.app, "submission.opinion_refused")
    with review.app.app_context():
        assert db.session.scalar(select(func.count(Opinion.id))) == 0
    assert _version_status(review.app, review.version_id) == "submitted"


def test_quorum_needs_a_lay_member(make_app, sqlite_url, tmp_path):
    """Enough members, but no lay member among them: still no quorum."""
    review2 = set_up_review(make_app, sqlite_url, tmp_path, QUORUM_MEMBERS=2)
    submission_id = submit_protocol(review2)
    chair = declare(review2, review2.chair, submission_id)
    for member in (review2.members[1], review2.members[2]):  # both expert
        assert vote(review2, member, submission_id).status_code == 302
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "favourable", "reasons": "Fine."},
    )
    assert response.status_code == 409 and "lay member" in response.text


def test_a_provisional_opinion_stops_the_clock_until_the_reply(make_app, database_url, tmp_path):
    review = set_up_review(make_app, database_url, tmp_path)
    submission_id = submit_protocol(review)
    chair = declare(review, review.chair, submission_id)
    quorate_votes(review, submission_id)
    response = chair.post(
        f"/review/panel/submissions/{submission_id}/opinion",
        {"category": "provisional", "reasons": "Explain the overnight staffing."},
    )
    assert response.status_code == 302
    with review.app.app_context():
        submission = db.session.get(Submission, submission_id)
        assert submission.status == "information_requested"
        stop = submission.clock_stops[0]
        later = stop.stopped_at + dt.timedelta(days=30)
        before = (stop.stopped_at - submission.submitted_at).days
        clock = services.clock(submission, later)
        assert clock.stopped and clock.days == before  # thirty days waiting do not count

    investigator = review.client(review.investigator)
    assert (
        investigator.post(
            f"/review/submissions/{submission_id}/respond", {"response": ""}
        ).status_code
        == 400
    )
    response = investigator.post(
        f"/review/submissions/{submission_id}/respond",
        {"response": "Two staff stay overnight; see section 4."},
    )
    assert response.status_code == 302
    with review.app.app_context():
        submission = db.session.get(Submission, submission_id)
        assert (submission.status, submission.round) == ("in_review", 2)
        stop = submission.clock_stops[0]
        assert stop.restarted_at is not None
        five_days_on = stop.restarted_at + dt.timedelta(days=5)
        clock = services.clock(submission, five_days_on)
        assert not clock.stopped
        assert (
            clock.days
            == (five_days_on - submission.submitted_at - (stop.restarted_at - stop.stopped_at)).days
        )
    # A new round: the first round's votes do not count again.
    assert vote(review, review.members[0], submission_id, declared=False).status_code == 302
    with review.app.app_context():
        assert db.session.scalar(select(func.count(Vote.id)).where(Vote.round == 2)) == 1


def test_submission_input_is_checked(make_app, sqlite_url, tmp_path):
    review = set_up_review(make_app, sqlite_url, tmp_path)
    client = review.client(review.investigator)
    import io

    from tests.review.helpers import protocol_form

    cases = {
        "The protocol document must be a PDF": {
            "protocol_file": (io.BytesIO(b"PK\x03\x04 a zip"), "protocol.docx")
        },
        "Enter the protocol's reference": {"reference": "   "},
        "is not an email address": {"team_emails": "not an address"},
        "cannot be submitted": {"version_ids": ["999999"]},
        "Attach the protocol document": {"protocol_file": (io.BytesIO(b""), "")},
    }
    for message, change in cases.items():
        response = client.post(
            "/review/protocols/new",
            protocol_form(review, **change),
            content_type="multipart/form-data",
        )
        assert response.status_code == 400, message
        assert message in response.text
    with review.app.app_context():
        assert db.session.scalar(select(func.count(Protocol.id))) == 0
        assert db.session.scalar(select(DocumentVersion.status)) == "draft"  # nothing half-done
    submit_protocol(review)
    response = client.post(
        "/review/protocols/new", protocol_form(review), content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert "already exists" in response.text


def test_declarations_are_written_once(make_app, sqlite_url, tmp_path):
    review = set_up_review(make_app, sqlite_url, tmp_path)
    submission_id = submit_protocol(review)
    client = declare(review, review.members[0], submission_id)
    again = client.post(
        f"/review/panel/submissions/{submission_id}/declare",
        {"conflict": "yes", "details": "changed my mind"},
    )
    assert again.status_code == 400
    with review.app.app_context():
        assert db.session.scalar(select(func.count(InterestDeclaration.id))) == 1


def test_eight_simultaneous_votes_from_one_member_count_once(make_app, database_url, tmp_path):
    """Double clicks and second tabs, all at once: one vote, no error page, chain intact."""
    import threading

    from portal.core.audit import verify_chain

    review = set_up_review(make_app, database_url, tmp_path)
    submission_id = submit_protocol(review)
    clients = [declare(review, review.members[0], submission_id)]
    clients += [review.client(review.members[0]) for _ in range(7)]
    tokens = [client.csrf_token() for client in clients]
    statuses: list[int] = []
    start = threading.Barrier(len(clients))

    def cast(client, token, choice):
        start.wait()
        response = client.post(
            f"/review/panel/submissions/{submission_id}/vote",
            {"choice": choice, "csrf_token": token},
        )
        statuses.append(response.status_code)

    threads = [
        threading.Thread(target=cast, args=(c, t, "for" if n % 2 else "against"))
        for n, (c, t) in enumerate(zip(clients, tokens, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302] + [400] * 7
    assert len(_events(review.app, "submission.vote_cast")) == 1
    with review.app.app_context():
        assert db.session.scalar(select(func.count(Vote.id))) == 1
        assert verify_chain(db.session).intact


def test_an_administrator_records_lay_or_expert_membership(make_app, sqlite_url, tmp_path):
    from portal.core.permissions import Role
    from tests.factories import create_account

    review = set_up_review(make_app, sqlite_url, tmp_path, members=1)
    admin = create_account(review.app, Role.ADMINISTRATOR, "admin@example.org")
    client = review.client(admin)
    url = f"/account/staff/{review.members[0].id}"
    assert "Ethics panel membership" in client.get(url).text
    missing = client.post(url, {"action": "panel_membership", "panel-membership": "lay"})
    assert missing.status_code == 400 and "Enter the reason" in missing.text
    response = client.post(
        url,
        {"action": "panel_membership", "panel-membership": "expert", "panel-reason": "CV checked"},
    )
    assert response.status_code == 302
    with review.app.app_context():
        assert db.session.get(services.User, review.members[0].id).panel_membership == "expert"
    events = _events(review.app, "account.panel_membership_changed")
    assert events[-1].reason == "CV checked"
    # Not for other staff.
    assert (
        "Ethics panel membership" not in client.get(f"/account/staff/{review.investigator.id}").text
    )
