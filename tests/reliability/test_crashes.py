"""Crash consistency: the serving process is killed (SIGKILL) at points of signing and of
withdrawal. Afterwards there is the complete record (row, sealed PDF, audit event) or nothing,
the audit chain verifies, and the person can simply try again."""

from __future__ import annotations

import http.client

import pytest
from sqlalchemy import func, select

from portal.consent.journey_models import Consent, Withdrawal
from portal.core.audit import AuditEvent, verify_chain
from portal.extensions import db
from portal.records.models import Record
from portal.records.seal import check_seal
from tests.consent.journey_helpers import (
    answer_all,
    choose,
    complete,
    read_everything,
    set_up_journey,
    sign,
)
from tests.servers import Browser, gunicorn, server_environment, sharing_the_seal

POINTS = ["before_pdf", "after_pdf", "after_commit"]


def signed(make_app, url, tmp_path):
    journey = set_up_journey(make_app, url, tmp_path)
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    answer_all(patient, journey.consent_id, "a")
    choose(patient, journey.consent_id, "yes")
    journey.past_cooling_off()
    assert sign(patient, journey.consent_id, journey.patient.password).status_code == 302
    return journey


def countersign(journey, url: str):
    therapist = Browser()
    therapist.post(
        f"{url}/account/sign-in",
        f"{url}/account/sign-in",
        {"email": journey.therapist.email, "password": journey.therapist.password},
    )
    return _attempt(
        therapist,
        f"{url}/consent/team/{journey.consent_id}/countersign",
        f"{url}/consent/team",
        {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password},
    )


def withdraw(journey, url: str):
    patient = Browser()
    patient.post(
        f"{url}/account/sign-in",
        f"{url}/account/sign-in",
        {"email": journey.patient.email, "password": journey.patient.password},
    )
    return _attempt(
        patient,
        f"{url}/withdraw/{journey.consent_id}/confirm",
        f"{url}/consent/",
        {"scope": "treatment", "password": journey.patient.password},
    )


def _attempt(browser: Browser, url: str, form_page: str, data: dict) -> int | None:
    """The status, or None when the server died mid-request."""
    try:
        return browser.post(url, form_page, data)[0]
    except (OSError, http.client.HTTPException):
        return None


def state(journey) -> dict:
    with journey.app.app_context():
        db.session.expire_all()
        records = db.session.scalars(select(Record)).all()
        return {
            "status": db.session.get(Consent, journey.consent_id).status,
            "records": {r.kind: r for r in records},
            "count": len(records),
            "withdrawals": db.session.scalar(select(func.count(Withdrawal.id))),
            "record_events": db.session.scalar(
                select(func.count(AuditEvent.seq)).where(AuditEvent.action == "record.created")
            ),
            "intact": verify_chain(db.session).intact,
            "sealed": all(check_seal(r.pdf).sealed_by_portal for r in records),
        }


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_while_countersigning_leaves_all_or_nothing(
    make_app, database_url, tmp_path, point
):
    journey = signed(sharing_the_seal(make_app, tmp_path), database_url, tmp_path)
    env = server_environment(database_url, tmp_path, journey.app)
    with gunicorn({**env, "PORTAL_FAULT_POINT": point}, tmp_path, "crashing") as url:
        assert countersign(journey, url) is None  # the process died
    after = state(journey)
    assert after["intact"] and after["sealed"]
    if point == "after_commit":
        assert (after["status"], after["count"], after["record_events"]) == ("complete", 1, 1)
    else:
        assert (after["status"], after["count"], after["record_events"]) == ("signed", 0, 0)
    with gunicorn(env, tmp_path, "restarted") as url:
        assert countersign(journey, url) == 302  # trying again simply works (or says it is done)
    final = state(journey)
    assert (final["status"], final["count"], final["record_events"]) == ("complete", 1, 1)
    assert final["intact"] and final["sealed"]


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_while_withdrawing_leaves_all_or_nothing(make_app, database_url, tmp_path, point):
    journey = complete(set_up_journey(sharing_the_seal(make_app, tmp_path), database_url, tmp_path))
    env = server_environment(database_url, tmp_path, journey.app)
    with gunicorn({**env, "PORTAL_FAULT_POINT": point}, tmp_path, "crashing") as url:
        assert withdraw(journey, url) is None
    after = state(journey)
    assert after["intact"] and after["sealed"]
    expected = 1 if point == "after_commit" else 0
    assert after["withdrawals"] == expected
    assert ("withdrawal" in after["records"]) == bool(expected)
    with gunicorn(env, tmp_path, "restarted") as url:
        assert withdraw(journey, url) == 302
    final = state(journey)
    assert final["withdrawals"] == 1 and final["count"] == 2 and final["record_events"] == 2
    assert final["intact"] and final["sealed"]
