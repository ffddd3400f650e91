"""Two app servers (gunicorn, separate processes and instance folders) on one PostgreSQL
database: a patient's journey moves between them at every step, and nothing is lost."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.consent.journey_models import Consent
from portal.core.audit import verify_chain
from portal.extensions import db
from portal.records.models import Record
from tests.consent.journey_helpers import PNG_DATA_URL, set_up_journey
from tests.servers import Browser, gunicorn, server_environment


@pytest.fixture
def two_servers(make_app, postgres_url, tmp_path):
    journey = set_up_journey(make_app, postgres_url, tmp_path)
    env = server_environment(postgres_url, tmp_path, journey.app)
    with gunicorn(env, tmp_path, "server-1") as a, gunicorn(env, tmp_path, "server-2") as b:
        yield journey, (a, b)


def test_a_patient_journey_across_two_servers(two_servers):
    journey, (a, b) = two_servers
    consent = journey.consent_id
    patient = Browser()
    status, _ = patient.post(
        f"{a}/account/sign-in",
        f"{b}/account/sign-in",
        {"email": journey.patient.email, "password": journey.patient.password},
    )
    assert status == 302
    assert patient.get(f"{b}/consent/")[0] == 200  # signed in on A, recognised by B

    for position in range(4):  # read on one server, move on through the other
        reader, mover = (a, b) if position % 2 == 0 else (b, a)
        status, page = patient.get(f"{reader}/consent/{consent}/read/{position}?note=seen")
        assert status == 200
        visit = re.search(r'name="visit" value="([^"]+)"', page)[1]
        status, _ = patient.post(
            f"{mover}/consent/{consent}/read/{position}",
            f"{reader}/consent/",
            {"visit": visit, "direction": "next"},
        )
        assert status == 302
    status, _ = patient.post(f"{a}/comprehension/{consent}", f"{b}/consent/", {"choice": "a"})
    assert status in (200, 302)
    status, _ = patient.post(
        f"{b}/consent/{consent}/choices", f"{a}/consent/", {"item_future-contact": "yes"}
    )
    assert status == 302
    journey.past_cooling_off()
    status, _ = patient.post(
        f"{a}/consent/{consent}/sign",
        f"{b}/consent/",
        {
            "attest": "y",
            "typed_name": "Sam Taylor",
            "method": "drawn",
            "signature": PNG_DATA_URL,
            "password": journey.patient.password,
        },
    )
    assert status == 302

    therapist = Browser()
    status, _ = therapist.post(
        f"{b}/account/sign-in",
        f"{a}/account/sign-in",
        {"email": journey.therapist.email, "password": journey.therapist.password},
    )
    assert status == 302
    status, _ = therapist.post(
        f"{a}/consent/team/{consent}/countersign",
        f"{b}/consent/team",
        {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password},
    )
    assert status == 302
    # The record sealed on one server downloads from the other.
    with journey.app.app_context():
        assert db.session.get(Consent, consent).status == "complete"
        (record,) = db.session.scalars(select(Record)).all()
        uid, pdf = record.uid, record.pdf
        assert verify_chain(db.session).intact
    status, downloaded = patient.download(f"{b}/records/{uid}.pdf")
    assert status == 200
    assert downloaded == pdf
