"""The outbox sent through a real SMTP server on loopback (aiosmtpd), with retries."""

from __future__ import annotations

import datetime as dt
import socket

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
