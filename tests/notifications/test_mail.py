"""The outbox sent through a real SMTP server on loopback (aiosmtpd), with retries."""

from __future__ import annotations

import datetime as dt
import re
import socket
from email import message_from_bytes
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from portal.extensions import db
from portal.notifications.mail import retry_wait, send_pending
from portal.notifications.models import OutboxMessage
from tests.consent.journey_helpers import complete, set_up_journey


class Collector:
    """An SMTP handler that keeps what it receives."""

    def __init__(self) -> None:
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp():
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, collector
    controller.stop()


def withdrawn_journey(make_app, url, tmp_path, port):
    def with_mail(database_url, **overrides):
        return make_app(
            database_url,
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=port,
            PORTAL_BASE_URL="https://portal.example.org",
            **overrides,
        )

    journey = complete(set_up_journey(with_mail, url, tmp_path))
    patient = journey.patient_client()
    data = {"scope": "treatment", "password": journey.patient.password}
    assert patient.post(f"/withdraw/{journey.consent_id}/confirm", data).status_code == 302
    return journey


def test_queued_messages_are_sent_once_with_only_a_link(make_app, sqlite_url, tmp_path, smtp):
    controller, collector = smtp
    journey = withdrawn_journey(make_app, sqlite_url, tmp_path, controller.port)
    result = journey.app.test_cli_runner().invoke(args=["mail", "send-pending"])
    assert result.exit_code == 0, result.output
    assert "Sent 1, failed 0" in result.output
    (envelope,) = collector.received
    assert envelope.rcpt_tos == ["therapist@example.org"]
    content = envelope.content.decode()
    assert "a patient's consent has changed" in content
    assert "https://portal.example.org/withdraw/receipt/1" in content
    assert "Sam Taylor" not in content and "treatment" not in content.lower()
    # Sending again sends nothing more.
    result = journey.app.test_cli_runner().invoke(args=["mail", "send-pending"])
    assert "Sent 0, failed 0" in result.output
    assert len(collector.received) == 1


def test_a_mail_server_that_is_down_loses_nothing(make_app, sqlite_url, tmp_path, smtp):
    controller, collector = smtp
    closed_port = free_port()  # nothing listens here
    journey = withdrawn_journey(make_app, sqlite_url, tmp_path, closed_port)
    with journey.app.app_context():
        outcome = send_pending(db.session)
        assert (outcome.sent, outcome.failed) == (0, 1)
        message = db.session.scalars(select(OutboxMessage)).one()
        assert message.sent_at is None and message.attempts == 1
        assert message.last_error.startswith("ConnectionRefusedError")
        retry_at = message.next_attempt_at
        # Not due again yet.
        assert send_pending(db.session).failed == 0
        # The server is back; once the wait is over, the message goes.
        journey.app.config["MAIL_PORT"] = controller.port
        outcome = send_pending(db.session, now=retry_at + dt.timedelta(seconds=1))
        assert (outcome.sent, outcome.failed) == (1, 0)
        assert db.session.scalars(select(OutboxMessage)).one().attempts == 2
    assert len(collector.received) == 1


def test_retries_wait_longer_each_time_up_to_six_hours():
    assert [retry_wait(n).total_seconds() / 60 for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert retry_wait(30) == dt.timedelta(hours=6)


def test_without_a_mail_server_the_command_says_so(app):
    result = app.test_cli_runner().invoke(args=["mail", "send-pending"])
    assert result.exit_code != 0
    assert "no mail server is configured" in result.output


def test_an_invitation_link_is_emailed_and_kept_encrypted_until_sent(make_app, sqlite_url, smtp):
    from portal.core.permissions import Role
    from tests.accounts.test_invitations import accept
    from tests.factories import create_account
    from tests.helpers import PortalClient

    controller, collector = smtp
    app = make_app(
        sqlite_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=controller.port,
        PORTAL_BASE_URL="https://portal.example.org",
    )
    therapist = create_account(app, Role.THERAPIST)
    client = PortalClient(app)
    client.login(therapist.email, therapist.password)
    page = client.post(
        "/account/patients/invite", {"full_name": "Nia Williams", "email": "nia@example.org"}
    ).text
    assert "We have emailed this link to nia@example.org" in page
    with app.app_context():
        stored = (
            db.session.connection()
            .exec_driver_sql("SELECT secret_link FROM outbox_message")
            .scalar_one()
        )
        assert stored.startswith("fernet:") and "/account/invitation/" not in stored
        assert send_pending(db.session).sent == 1
    (envelope,) = collector.received
    assert envelope.rcpt_tos == ["nia@example.org"]
    body = message_from_bytes(envelope.content, policy=default).get_content()
    link = re.search(r"https://portal\.example\.org(/account/invitation/\S+)", body)
    assert link, body
    _client, response = accept(app, link[1])
    assert response.status_code == 302  # the emailed link works


def test_a_message_claimed_by_another_sender_is_not_sent_twice(
    make_app, sqlite_url, tmp_path, smtp
):
    controller, collector = smtp
    journey = withdrawn_journey(make_app, sqlite_url, tmp_path, controller.port)
    with journey.app.app_context():
        message = db.session.scalars(select(OutboxMessage)).one()
        message.claimed_until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        db.session.commit()
        assert send_pending(db.session).sent == 0
    assert collector.received == []


def test_administrators_see_the_outbox(make_app, sqlite_url, tmp_path):
    from tests.helpers import PortalClient

    journey = withdrawn_journey(make_app, sqlite_url, tmp_path, free_port())
    admin = PortalClient(journey.app)
    admin.login("administrator@example.org", "correct horse battery staple")
    page = admin.get("/notifications/outbox").text
    assert "therapist@example.org" in page and "a patient&#39;s consent has changed" in page
    assert journey.therapist_client().get("/notifications/outbox").status_code == 403


def test_overdue_triage_reminders_are_queued_once_a_day(make_app, sqlite_url, tmp_path):
    from portal.core.permissions import Role
    from portal.incidents.models import Incident
    from tests.factories import create_account
    from tests.helpers import PortalClient

    journey = set_up_journey(make_app, sqlite_url, tmp_path)
    chair = create_account(journey.app, Role.PANEL_CHAIR, "chair@example.org")
    today = dt.date.today()
    response = journey.patient_client().post(
        "/concerns/new",
        {
            "therapist": str(journey.therapist.id),
            "category": "outside_contact",
            "day": str(today.day),
            "month": str(today.month),
            "year": str(today.year),
            "session_kind": "outside",
            "what_happened": "Messages late at night.",
            "feels_safe": "yes",
        },
    )
    assert response.status_code == 302
    runner = journey.app.test_cli_runner()
    assert "Queued 0" in runner.invoke(args=["mail", "remind"]).output  # not overdue yet
    with journey.app.app_context():
        db.session.scalars(select(Incident)).one().reported_at -= dt.timedelta(hours=49)
        db.session.commit()
    assert "Queued 1" in runner.invoke(args=["mail", "remind"]).output
    assert "Queued 0" in runner.invoke(args=["mail", "remind"]).output  # once a day
    client = PortalClient(journey.app)
    client.login(chair.email, chair.password)
    assert "waiting for triage" in client.get("/notifications/").text
