"""Concurrency: eight threads at once countersigning and withdrawing (each twice over, as double
clicks and second tabs do), on SQLite and on PostgreSQL, and two app servers on one PostgreSQL
database. No error page, no duplicate, one intact audit chain."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from portal.accounts.models import User
from portal.cli.demo import _sign_demo_consents
from portal.consent.journey_models import Consent, Withdrawal
from portal.core.audit import verify_chain
from portal.core.permissions import Role
from portal.extensions import db
from portal.records.models import Record
from tests.consent.journey_helpers import set_up_journey
from tests.factories import DEFAULT_PASSWORD, create_account
from tests.helpers import PortalClient
from tests.servers import Browser, gunicorn, server_environment, sharing_the_seal

PATIENTS = 4


def _site(make_app, url, tmp_path):
    """One therapist; four patients who have signed (to countersign) and four whose consent is
    complete (to withdraw), all walked through the real services."""
    journey = set_up_journey(make_app, url, tmp_path)
    app = journey.app
    accounts = [
        create_account(app, Role.PATIENT, f"p{n}@example.org", full_name=f"Patient {n}")
        for n in range(2 * PATIENTS)
    ]
    with app.app_context():
        therapist = db.session.get(User, journey.therapist.id)
        for n, account in enumerate(accounts):
            patient = db.session.get(User, account.id)
            patient.invited_by_id = therapist.id
            db.session.flush()
            _sign_demo_consents_with(
                db.session, therapist, patient, journey.therapist.password, n >= PATIENTS
            )
        db.session.commit()
        signed = list(
            db.session.scalars(
                select(Consent.id).where(
                    Consent.status == "signed", Consent.patient_id != journey.patient.id
                )
            )
        )
        complete = list(db.session.scalars(select(Consent.id).where(Consent.status == "complete")))
    assert len(signed) == len(complete) == PATIENTS
    return journey, signed, complete


def _sign_demo_consents_with(session, therapist, patient, therapist_password, countersigned):
    import portal.cli.demo as demo

    original = demo.DEMO_ACCOUNTS
    demo.DEMO_ACCOUNTS = [
        (Role.THERAPIST, therapist.email, therapist.full_name, therapist_password)
    ]
    try:
        _sign_demo_consents(session, therapist, patient, DEFAULT_PASSWORD, countersigned)
    finally:
        demo.DEMO_ACCOUNTS = original


def _run_all(jobs) -> list[int]:
    """Start every job at the same moment; collect their statuses."""
    barrier = threading.Barrier(len(jobs))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def run(job):
        try:
            barrier.wait()
            statuses.append(job())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    return statuses


def _check(app, signed, complete) -> None:
    with app.app_context():
        for consent_id in signed:
            assert db.session.get(Consent, consent_id).status == "complete"
            assert (
                db.session.scalar(
                    select(func.count(Record.id)).where(
                        Record.consent_id == consent_id, Record.kind == "consent"
                    )
                )
                == 1
            )
        for consent_id in complete:
            assert db.session.get(Consent, consent_id).status == "withdrawn"
            assert (
                db.session.scalar(
                    select(func.count(Withdrawal.id)).where(Withdrawal.consent_id == consent_id)
                )
                == 1
            )
            assert (
                db.session.scalar(
                    select(func.count(Record.id)).where(
                        Record.consent_id == consent_id, Record.kind == "withdrawal"
                    )
                )
                == 1
            )
        assert verify_chain(db.session).intact


def test_eight_threads_countersigning_and_withdrawing_twice_over(make_app, database_url, tmp_path):
    journey, signed, complete = _site(make_app, database_url, tmp_path)
    app = journey.app
    therapists = [PortalClient(app) for _ in signed]
    for client in therapists:
        client.login(journey.therapist.email, journey.therapist.password)
    patients = []
    for n in range(PATIENTS, 2 * PATIENTS):
        client = PortalClient(app)
        client.login(f"p{n}@example.org", DEFAULT_PASSWORD)
        patients.append(client)
    # Tokens are fetched first, so that the eight requests really arrive together.
    jobs = []
    for consent_id, client in zip(signed, therapists, strict=True):
        token = client.csrf_token()
        data = {
            "discussed": "y",
            "witnessed_typed": "y",
            "identity_checked": "y",
            "password": journey.therapist.password,
            "csrf_token": token,
        }
        jobs.append(
            lambda c=client, i=consent_id, d=data: (
                c.http.post(f"/consent/team/{i}/countersign", data=d).status_code
            )
        )
    for consent_id, client in zip(complete, patients, strict=True):
        token = client.csrf_token()
        data = {
            "scope": "study",
            "data_option": "keep",
            "password": DEFAULT_PASSWORD,
            "csrf_token": token,
        }
        jobs.append(
            lambda c=client, i=consent_id, d=data: (
                c.http.post(f"/withdraw/{i}/confirm", data=d).status_code
            )
        )
    assert len(jobs) == 8
    statuses = _run_all(jobs) + _run_all(jobs)  # and all of it again: double submits
    assert all(status == 302 for status in statuses), statuses
    _check(app, signed, complete)


def test_two_servers_on_one_postgresql_database(make_app, postgres_url, tmp_path):
    journey, signed, complete = _site(sharing_the_seal(make_app, tmp_path), postgres_url, tmp_path)
    env = server_environment(postgres_url, tmp_path, journey.app)
    with gunicorn(env, tmp_path, "a", workers=2) as a, gunicorn(env, tmp_path, "b", workers=2) as b:
        servers = [a, b]
        jobs = []
        for n, consent_id in enumerate(signed):
            therapist = Browser()
            server = servers[n % 2]
            therapist.post(
                f"{server}/account/sign-in",
                f"{server}/account/sign-in",
                {"email": journey.therapist.email, "password": journey.therapist.password},
            )
            for attempt in range(2):  # the same form sent to both servers at once
                target = servers[(n + attempt) % 2]
                data = {
                    "discussed": "y",
                    "witnessed_typed": "y",
                    "identity_checked": "y",
                    "password": journey.therapist.password,
                }
                jobs.append(
                    lambda t=therapist, s=target, i=consent_id, d=data: t.post(
                        f"{s}/consent/team/{i}/countersign", f"{s}/consent/team", d
                    )[0]
                )
        for n, consent_id in enumerate(complete):
            patient = Browser()
            server = servers[n % 2]
            email = f"p{PATIENTS + n}@example.org"
            patient.post(
                f"{server}/account/sign-in",
                f"{server}/account/sign-in",
                {"email": email, "password": DEFAULT_PASSWORD},
            )
            for attempt in range(2):
                target = servers[(n + attempt) % 2]
                data = {"scope": "study", "data_option": "keep", "password": DEFAULT_PASSWORD}
                jobs.append(
                    lambda p=patient, s=target, i=consent_id, d=data: p.post(
                        f"{s}/withdraw/{i}/confirm", f"{s}/consent/", d
                    )[0]
                )
        statuses = _run_all(jobs)
    assert all(status == 302 for status in statuses), statuses
    _check(journey.app, signed, complete)
