"""Dashboards: the figures equal what the rows say, each chart has its table, only the panel sees
them."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from portal.accounts.models import User
from portal.comprehension.models import ComprehensionAttempt
from portal.consent.journey_models import Consent
from portal.core.db import utcnow
from portal.core.permissions import Role
from portal.extensions import db
from portal.oversight import dashboards
from tests.consent.journey_helpers import complete, set_up_journey
from tests.consent.test_withdrawal import withdraw
from tests.factories import create_account
from tests.helpers import PortalClient

PAGES = [
    "/oversight/dashboards",
    "/oversight/dashboards/consent",
    "/oversight/dashboards/comprehension",
    "/oversight/dashboards/withdrawals",
    "/oversight/dashboards/concerns",
    "/oversight/dashboards/reviews",
]


@pytest.fixture
def journey(make_app, database_url, tmp_path):
    return complete(set_up_journey(make_app, database_url, tmp_path))


def _panel(app) -> PortalClient:
    member = create_account(app, Role.PANEL_CHAIR, email="chair@example.org")
    client = PortalClient(app)
    client.login(member.email, member.password)
    return client


def _chart_data(page: str) -> list[dict]:
    return [
        json.loads(found)
        for found in re.findall(r'<script type="application/json">(.*?)</script>', page, re.S)
    ]


def test_the_funnel_counts_each_step_per_version(journey):
    app = journey.app
    # A second patient who only started reading.
    second = create_account(app, Role.PATIENT, email="second@example.org")
    with app.app_context():
        version_id = journey.consent().version_id
    therapist = journey.therapist_client()
    with app.app_context():
        document_id = db.session.get(Consent, journey.consent_id).version.document_id
        db.session.get(User, second.id).invited_by_id = journey.therapist.id
        db.session.commit()
    assert (
        therapist.post(f"/consent/team/offer/{second.id}", {"document_id": document_id}).status_code
        == 302
    )
    with app.app_context():
        second_consent = db.session.scalar(
            select(Consent.id).where(Consent.patient_id == second.id)
        )
    reader = PortalClient(app)
    reader.login(second.email, second.password)
    reader.get(f"/consent/{second_consent}/read/0")

    with app.app_context():
        funnel = dashboards.consent_funnel(db.session)
    [series] = funnel.series
    assert series.values == [2, 2, 1, 1, 1, 0]
    page = _panel(app).get("/oversight/dashboards/consent")
    assert page.status_code == 200
    [config] = _chart_data(page.text)
    assert config["datasets"][0]["data"] == [2, 2, 1, 1, 1, 0]
    assert config["labels"][0] == "Offered"
    # The table shows the same figures.
    table = page.text.split("<table")[1]
    assert re.search(r"Started reading</th>\s*<td>2</td>", table)
    assert version_id


def test_item_analysis_matches_the_answers(journey):
    app = journey.app
    with app.app_context():
        consent = journey.consent()
        [version] = [
            v for v in dashboards.analysed_versions(db.session) if v.id == consent.version_id
        ]
        analysis = dashboards.comprehension_analysis(db.session, version)
        attempts = db.session.scalars(
            select(ComprehensionAttempt).order_by(ComprehensionAttempt.id)
        ).all()
    expected_first: dict[str, bool] = {}
    counts: dict[str, int] = {}
    for attempt in attempts:
        expected_first.setdefault(attempt.question_key, attempt.correct)
        counts[attempt.question_key] = counts.get(attempt.question_key, 0) + 1
    answered = {q.key: q for q in analysis.questions if q.answered}
    assert set(answered) == set(expected_first)
    for key, question in answered.items():
        assert question.answered == 1
        assert question.first_attempt_rate == (100.0 if expected_first[key] else 0.0)
        assert question.attempts == counts[key]
        assert question.confusing == (not expected_first[key])
    # Readability is scored for every English section, with the low ones marked.
    assert all(section.readability is not None for section in analysis.sections)
    page = _panel(app).get("/oversight/dashboards/comprehension").text
    assert "Sections: readability and reading time" in page
    assert "Questions: item analysis" in page
    assert len(_chart_data(page)) >= 1


def test_every_dashboard_answers_the_panel_and_refuses_others(journey):
    app = journey.app
    client = _panel(app)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        for config in _chart_data(response.text):
            assert config["labels"] and config["datasets"]
    assert client.get("/oversight/dashboards/comprehension?version=99999").status_code == 404
    assert client.get("/oversight/dashboards/comprehension?version=abc").status_code == 404
    for role in (Role.PATIENT, Role.THERAPIST, Role.INVESTIGATOR, Role.ADMINISTRATOR):
        account = create_account(app, role, email=f"x-{role.value}@example.org")
        other = PortalClient(app)
        other.login(account.email, account.password)
        for url in PAGES:
            assert other.get(url).status_code == 403, (role, url)


def test_dashboards_with_nothing_yet(make_app, sqlite_url):
    app = make_app(sqlite_url)
    client = _panel(app)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
    assert "No patient has been offered a consent document yet." in client.get(PAGES[2]).text


def test_a_withdrawal_appears_by_month_and_data_choice(journey):
    app = journey.app
    response = withdraw(journey.patient_client(), journey.consent_id, journey.patient.password)
    assert response.status_code == 302
    with app.app_context():
        today = utcnow().date()
        by_month = dashboards.withdrawals_over_time(db.session, today)
        by_option = dashboards.withdrawals_by_data_option(db.session)
    study = next(s for s in by_month.series if s.label == "Stopped taking part in the study")
    assert study.values[-1] == 1 and sum(study.values) == 1
    assert by_month.labels[-1] == today.strftime("%Y-%m")
    assert sum(v for s in by_option.series for v in s.values) == 1
    page = _panel(app).get("/oversight/dashboards/withdrawals").text
    assert len(_chart_data(page)) == 2


def test_running_totals_equal_a_recount_from_the_raw_rows(journey):
    """The totals kept as answers are written agree with recounting every attempt, including a
    patient with wrong answers and a teach-back, and a rebuild gives the same rows."""
    from portal.comprehension.services import answer, question_states
    from portal.oversight import tallies
    from portal.oversight.models import QuestionTally, SectionTally

    app = journey.app
    second = create_account(app, Role.PATIENT, email="second@example.org")
    with app.app_context():
        first = journey.consent()
        consent = Consent(
            patient_id=second.id,
            therapist_id=first.therapist_id,
            version_id=first.version_id,
            text_id=first.text_id,
            content_hash=first.content_hash,
        )
        db.session.add(consent)
        db.session.flush()
        question = question_states(db.session, consent)[0].question
        wrong = next(c["id"] for c in question.choices if c["id"] != question.answer)
        answer(db.session, consent, question.key, wrong)
        answer(db.session, consent, question.key, wrong)  # the second raises a teach-back
        db.session.commit()

        def kept():
            questions = db.session.execute(
                select(
                    QuestionTally.version_id,
                    QuestionTally.question_key,
                    QuestionTally.patients,
                    QuestionTally.first_correct,
                    QuestionTally.attempts,
                    QuestionTally.teach_backs,
                ).order_by(QuestionTally.question_key)
            ).all()
            sections = db.session.execute(
                select(
                    SectionTally.version_id,
                    SectionTally.section_key,
                    SectionTally.visits,
                    SectionTally.seconds,
                ).order_by(SectionTally.section_key)
            ).all()
            return [tuple(row) for row in questions], [tuple(row) for row in sections]

        incremental = kept()
        recounted_questions = sorted(
            tuple(row) for row in db.session.execute(tallies.computed_question_tallies(db.session))
        )
        assert sorted(incremental[0]) == recounted_questions
        row = next(r for r in incremental[0] if r[1] == question.key)
        assert row[2:] == (2, 1, 3, 1)  # two patients, one right first time, 3 tries, 1 teach-back
        assert incremental[1]  # the reading times of the first patient
        tallies.rebuild(db.session)
        db.session.commit()
        assert kept() == incremental
