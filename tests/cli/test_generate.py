"""`flask demo generate`: a synthetic dataset at scale, shaped as the real services write it."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from portal import create_app
from portal.accounts.models import User
from portal.cli.generate import GENERATED_ACTION, SYNTHETIC_DOMAIN
from portal.comprehension.models import ComprehensionAttempt, TeachBack
from portal.comprehension.services import question_states
from portal.consent.journey_models import Consent, Signature, Withdrawal
from portal.core import audit, audit_links
from portal.core.audit import AuditEvent
from portal.core.audit_links import AuditLink
from portal.extensions import db
from portal.incidents.models import Incident
from portal.review.models import Opinion, Submission
from tests.conftest import TEST_CONFIG, _admin_execute
from tests.helpers import PortalClient

LONDON = ZoneInfo("Europe/London")
CONSENT_DOCS = Path(__file__).parents[2] / "consent_docs"
PATIENTS = 200
SYNTHETIC = f"%@{SYNTHETIC_DOMAIN}"
PORTAL_SOURCE = Path(__file__).parents[2] / "portal"
_copies = itertools.count(1)  # names for the PostgreSQL copies


def _demo_app(make_app, url: str):
    app = make_app(url, CONSENT_DOCS_PATH=str(CONSENT_DOCS))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["docs", "import"]).exit_code == 0
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    return app, runner


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def generated_source(request, tmp_path_factory):
    """Per backend, once per module: the demo data and 200 synthetic patients on top, as
    (backend, where the database is, the command's output). Each test gets a copy."""
    if request.param == "sqlite":
        source = tmp_path_factory.mktemp("generated") / "generated.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), source)
        url = location = f"sqlite:///{source}"
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        template = request.getfixturevalue("postgres_template")
        location = f"generated_{os.getpid()}"
        _admin_execute(cluster, f"CREATE DATABASE {location} TEMPLATE {template}")
        url = cluster.url(location)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path_factory.mktemp("instance")))
        app = create_app(
            {**TEST_CONFIG, "DATABASE_URL": url, "CONSENT_DOCS_PATH": str(CONSENT_DOCS)}
        )
        runner = app.test_cli_runner()
        assert runner.invoke(args=["docs", "import"]).exit_code == 0
        assert runner.invoke(args=["demo", "load"]).exit_code == 0
        result = runner.invoke(
            args=["demo", "generate", "--patients", str(PATIENTS), "--seed", "1"]
        )
        app.extensions["portal.database"][0].dispose()  # a template must have no connections
    assert result.exit_code == 0, result.output
    yield request.param, location, result.output
    if request.param == "postgresql":
        _admin_execute(cluster, f"DROP DATABASE {location} WITH (FORCE)")


@pytest.fixture
def generated(make_app, generated_source, request, tmp_path):
    """A copy of the generated database for one test: (app, runner, the command's output)."""
    backend, location, output = generated_source
    if backend == "sqlite":
        target = tmp_path / "portal.db"
        shutil.copyfile(location.removeprefix("sqlite:///"), target)
        url = f"sqlite:///{target}"
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        name = f"{location}_{next(_copies)}"
        _admin_execute(cluster, f"CREATE DATABASE {name} TEMPLATE {location}")
        request.addfinalizer(lambda: _admin_execute(cluster, f"DROP DATABASE {name} WITH (FORCE)"))
        url = cluster.url(name)
    app = make_app(url, CONSENT_DOCS_PATH=str(CONSENT_DOCS))
    return app, app.test_cli_runner(), output


def _written_by_the_services(action: str) -> bool:
    """Whether the portal's own code (not the generator) names this audit action."""
    quoted = f'"{action}"'
    return any(
        quoted in path.read_text(encoding="utf-8")
        for path in PORTAL_SOURCE.rglob("*.py")
        if path.name != "generate.py"
    )


def _synthetic_consents(session):
    return session.scalars(
        select(Consent).join(User, User.id == Consent.patient_id).where(User.email.like(SYNTHETIC))
    ).all()


def _synthetic_range(session) -> tuple[int, int]:
    after = session.scalar(
        select(AuditEvent.after_json).where(AuditEvent.action == GENERATED_ACTION)
    )
    figures = json.loads(after)
    return figures["first_seq"], figures["last_seq"]


def test_patients_follow_the_consent_funnel(generated):
    app, _runner, output = generated
    assert f"Generated {PATIENTS} patients" in output
    with app.app_context():
        session = db.session
        patients = session.scalars(
            select(User).where(User.email.like(SYNTHETIC), User.role == "patient")
        ).all()
        assert len(patients) == PATIENTS
        assert all(p.email.startswith("patient") and p.invited_by_id for p in patients)
        consents = _synthetic_consents(session)
        assert len(consents) == PATIENTS  # one document version in use: one consent each
        share = {status: n / PATIENTS for status, n in Counter(c.status for c in consents).items()}
        # Roughly: 90% open it, 80% understand, 75% sign, 70% are countersigned, some withdraw.
        assert 0.55 <= share.get("complete", 0) <= 0.8
        assert 0.02 <= share.get("offered", 0) <= 0.2
        assert 0.05 <= share.get("in_progress", 0) <= 0.25
        assert 0.01 <= share.get("withdrawn", 0) <= 0.15
        opened = sum(c.opened_at is not None for c in consents)
        understood = sum(c.comprehension_completed_at is not None for c in consents)
        signed = sum(c.signed_at is not None for c in consents)
        countersigned = sum(c.completed_at is not None for c in consents)
        assert PATIENTS > opened > understood > signed > countersigned > 0.55 * PATIENTS
        for consent in consents:
            if consent.signed_at is not None:  # the cooling-off period was respected
                cooling_off = consent.version.cooling_off_hours * 3600
                assert (consent.signed_at - consent.opened_at).total_seconds() >= cooling_off


def test_signed_consents_passed_comprehension_and_their_signatures_bind(generated):
    app, _runner, _output = generated
    with app.app_context():
        session = db.session
        attempts = session.scalar(select(func.count(ComprehensionAttempt.id)))
        assert attempts > 15 * PATIENTS * 0.8
        flags = session.scalars(select(TeachBack)).all()
        assert flags, "two wrong answers to a question raise a teach-back"
        assert sum(f.resolved_at is not None for f in flags) > 0.8 * len(flags)
        first_tries = session.execute(
            text(
                "SELECT question_key, AVG(CASE WHEN correct THEN 1.0 ELSE 0.0 END) "
                "FROM comprehension_attempt a WHERE id = (SELECT MIN(id) FROM "
                "comprehension_attempt b WHERE b.consent_id = a.consent_id "
                "AND b.question_key = a.question_key) GROUP BY question_key"
            )
        ).all()
        rates = sorted(float(rate) for _key, rate in first_tries)
        assert rates[0] < 0.75 < rates[-1]  # some questions are notably harder
        for consent in _synthetic_consents(session):
            if consent.signed_at is None:
                continue
            states = question_states(session, consent)
            assert all(s.passed and s.open_teach_back is None for s in states)
            assert {c.item_key for c in consent.choices} == {
                i.key for i in consent.text.optional_consents
            }
            roles = {s.role for s in consent.signatures}
            assert "participant" in roles
            assert ("person_taking_consent" in roles) == (consent.completed_at is not None)
            for signature in consent.signatures:
                bound = json.loads(signature.bound_json)
                assert audit.canonical_json(bound) == signature.bound_json
                assert hashlib.sha256(signature.bound_json.encode()).hexdigest() == (
                    signature.binding_hash
                )
                assert bound["consent_id"] == consent.id
                assert bound["choices"] == consent.choice_map
                assert bound["answers"] == {q.key: q.answer for q in consent.questions}
        assert (
            session.scalar(select(func.count(Signature.id)).where(Signature.image_png.is_not(None)))
            == 0
        )


def test_withdrawals_have_valid_scopes_and_close_the_consent(generated):
    app, _runner, _output = generated
    with app.app_context():
        session = db.session
        withdrawals = session.scalars(
            select(Withdrawal)
            .join(Consent)
            .join(User, User.id == Consent.patient_id)
            .where(User.email.like(SYNTHETIC))
        ).all()
        assert 0.03 * PATIENTS <= len(withdrawals) <= 0.15 * PATIENTS
        for withdrawal in withdrawals:
            consent = withdrawal.consent
            assert withdrawal.scope in ("study", "treatment", "optional_item")
            if withdrawal.scope == "study":
                assert consent.status == "withdrawn"
            else:
                assert consent.status in ("signed", "complete")
            if withdrawal.scope == "optional_item":
                assert consent.choice_map[withdrawal.item_key] is True
            if withdrawal.data_option_key is not None:
                assert withdrawal.scope == "study"
                assert withdrawal.data_option_key in {
                    o.key for o in consent.text.withdrawal_options
                }
            assert withdrawal.recorded_by_staff == (withdrawal.attestation is not None)
            assert withdrawal.communicated_on >= consent.offered_at.astimezone(LONDON).date()
        assert "study" in {w.scope for w in withdrawals}


def test_incidents_and_reviews_cover_every_stage(generated):
    app, _runner, _output = generated
    with app.app_context():
        session = db.session
        incidents = session.scalars(select(Incident)).all()
        assert len(incidents) >= 10
        assert {i.status for i in incidents} >= {"closed"}
        assert all(i.what_happened for i in incidents)  # encrypted at rest, readable here
        submissions = session.scalars(select(Submission)).all()
        assert len(submissions) >= 15
        decided = [s for s in submissions if s.decided_at is not None]
        assert decided and any(s.status != "decided" for s in submissions)
        for submission in decided:
            opinion = submission.latest_opinion
            assert opinion is not None and opinion.round == submission.round
        days = [(s.decided_at - s.submitted_at).days for s in decided if s.id > 2]
        assert min(days) < 60 < max(days)  # the 60-day target is met and missed
        assert session.scalar(select(func.count(Opinion.id))) >= len(decided)


def test_every_change_has_a_chained_linked_audit_event(generated):
    app, runner, _output = generated
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "Audit chain intact" in result.output
    with app.app_context():
        session = db.session
        first, last = _synthetic_range(session)
        assert last - first + 1 >= 8 * PATIENTS
        actions = set(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.seq.between(first, last)).distinct()
            )
        )
        assert all(_written_by_the_services(action) for action in actions), actions
        backwards = session.scalar(
            text(
                "SELECT COUNT(*) FROM audit_event a JOIN audit_event b ON b.seq = a.seq + 1 "
                "WHERE b.occurred_at < a.occurred_at"
            )
        )
        assert backwards == 0  # occurred_at never goes back as seq grows
        head = session.get(audit.AuditChainHead, 1)
        generated_event = session.scalar(
            select(AuditEvent).where(AuditEvent.action == GENERATED_ACTION)
        )
        after_it = session.scalars(
            select(AuditEvent.action).where(AuditEvent.seq > generated_event.seq)
        ).all()
        assert set(after_it) <= {"audit.verified"}  # `flask audit verify` records its runs
        assert head.last_seq == generated_event.seq + len(after_it)
        assert generated_event.actor_role == "system"
        assert generated_event.after["patients"] == PATIENTS
        assert generated_event.after["seed"] == 1
        # Every event about a synthetic consent is linked to its patient, version and protocol.
        consents = {str(c.id): (c.patient_id, c.version_id) for c in _synthetic_consents(session)}
        consent_events = session.execute(
            select(AuditEvent.seq, AuditEvent.object_id).where(
                AuditEvent.object_type == "consent", AuditEvent.seq.between(first, last)
            )
        ).all()
        assert len(consent_events) > 5 * PATIENTS
        links = set(
            session.execute(
                select(AuditLink.kind, AuditLink.ref, AuditLink.event_seq).where(
                    AuditLink.event_seq.between(first, last)
                )
            ).all()
        )
        for seq, consent_id in consent_events:
            patient_id, version_id = consents[consent_id]
            assert {
                ("patient", patient_id, seq),
                ("version", version_id, seq),
                ("protocol", 1, seq),
            } <= links
        # And every kind of event has the links the real resolvers give (a sample of them).
        linked: dict[int, set] = {}
        for kind, ref, seq in links:
            linked.setdefault(seq, set()).add((kind, ref))
        sample = session.execute(
            select(
                AuditEvent.seq, AuditEvent.action, AuditEvent.object_type, AuditEvent.object_id
            ).where(AuditEvent.seq.between(first, last), AuditEvent.seq % 7 == 0)
        ).all()
        for seq, action, object_type, object_id in sample:
            found = audit_links.links_for(session, object_type, object_id)
            wanted = {(kind.value, ref) for kind, ref in found}
            if action == "invitation.created":  # written before the account existed
                wanted = set()
            assert linked.get(seq, set()) == wanted, (seq, action)


def test_synthetic_data_shows_on_the_panels_pages(generated):
    from portal.oversight import tallies
    from portal.oversight.models import QuestionTally, SectionTally

    app, _runner, _output = generated
    with app.app_context():
        session = db.session
        # The dashboards' running totals agree with the rows (rebuilt after the bulk load).
        stored = session.execute(
            select(
                QuestionTally.version_id,
                QuestionTally.question_key,
                QuestionTally.patients,
                QuestionTally.first_correct,
                QuestionTally.attempts,
                QuestionTally.teach_backs,
            )
        ).all()
        assert sorted(stored) == sorted(session.execute(tallies.computed_question_tallies(session)))
        stored = session.execute(
            select(
                SectionTally.version_id,
                SectionTally.section_key,
                SectionTally.visits,
                SectionTally.seconds,
            )
        ).all()
        assert sorted(stored) == sorted(session.execute(tallies.computed_section_tallies(session)))
        patient = session.scalar(
            select(User.email).where(User.email.like(SYNTHETIC), User.role == "patient")
        )
        incident_id = session.scalar(select(Incident.id))
        submission_ids = session.scalars(
            select(Submission.id).where(Submission.protocol_id > 1).order_by(Submission.id)
        ).all()
        protocol_id = session.scalar(select(func.max(Submission.protocol_id)))
    client = PortalClient(app)
    client.login("chair@example.org", "demo-chair-pass")
    for url in (
        "/oversight/",
        f"/oversight/audit?patient={patient}",
        "/oversight/audit?action=comprehension.answered",
        "/oversight/dashboards/consent",
        "/oversight/dashboards/comprehension",
        "/oversight/dashboards/withdrawals",
        "/oversight/dashboards/concerns",
        "/oversight/dashboards/reviews",
        f"/concerns/{incident_id}",
        "/review/panel",
        f"/review/panel/submissions/{submission_ids[0]}",
        f"/review/panel/submissions/{submission_ids[-1]}",
        f"/review/protocols/{protocol_id}",
    ):
        assert client.get(url).status_code == 200, url


def test_the_real_services_carry_on_from_the_synthetic_data(generated):
    from portal.accounts.services import create_user
    from portal.consent.journey import offer
    from portal.consent.models import ConsentDocument
    from portal.core.permissions import Role

    app, runner, _output = generated
    with app.app_context():
        session = db.session
        newest = session.scalar(select(func.max(User.id)))
        user = create_user(
            session,
            email="after@example.org",
            full_name="After Generation",
            role=Role.THERAPIST,
            password="a long enough password",
            actor=audit.SYSTEM,
        )
        assert user.id == newest + 1  # the id sequences were moved past the synthetic ids
        withdrawn = session.scalars(
            select(Consent).where(Consent.status == "withdrawn").order_by(Consent.id)
        ).first()
        document = session.scalar(select(ConsentDocument))
        rejoined = offer(session, withdrawn.therapist, withdrawn.patient, document)
        assert rejoined.id > withdrawn.id
        session.commit()
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


def test_a_second_run_is_refused_and_changes_nothing(generated):
    app, runner, _output = generated
    with app.app_context():
        before = db.session.scalar(select(func.count(AuditEvent.seq)))
    result = runner.invoke(args=["demo", "generate", "--patients", "10"])
    assert result.exit_code == 1
    assert "already generated" in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEvent.seq))) == before


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--patients", "0"], "0 is not in the range x>=1"),
        (["--patients", "abc"], "'abc' is not a valid integer"),
        ([], "Missing option '--patients'"),
        (["--patients", "5", "--seed", "x"], "'x' is not a valid integer"),
    ],
)
def test_bad_arguments_are_refused_clearly(make_app, sqlite_url, arguments, message):
    runner = make_app(sqlite_url).test_cli_runner()
    result = runner.invoke(args=["demo", "generate", *arguments])
    assert result.exit_code == 2
    assert message in result.output


def test_a_database_without_the_demo_is_refused(app, runner):
    result = runner.invoke(args=["demo", "generate", "--patients", "5"])
    assert result.exit_code == 1
    assert "flask docs import" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0
        assert db.session.scalar(select(func.count(AuditEvent.seq))) == 0


def _fingerprint(app) -> tuple:
    with app.app_context():
        session = db.session
        return (
            sorted((c.id, c.status, c.therapist_id) for c in _synthetic_consents(session)),
            session.scalar(select(func.count(ComprehensionAttempt.id))),
            session.scalar(select(func.count(TeachBack.id))),
            sorted(session.execute(select(Withdrawal.scope, Withdrawal.channel)).all()),
            session.scalar(select(func.count(AuditEvent.seq))),
        )


def test_the_same_seed_gives_the_same_dataset_and_records_can_be_sealed(
    make_app, sqlite_template, tmp_path
):
    fingerprints = []
    for name, extra in (("one", ["--records", "1"]), ("two", [])):
        target = tmp_path / f"{name}.db"
        shutil.copyfile(sqlite_template, target)
        app, runner = _demo_app(make_app, f"sqlite:///{target}")
        arguments = ["demo", "generate", "--patients", "60", "--seed", "7", *extra]
        result = runner.invoke(args=arguments)
        assert result.exit_code == 0, result.output
        fingerprints.append(_fingerprint(app))
        if extra:  # a real sealed PDF for the latest completed synthetic consent
            uid = runner.invoke(args=["records", "list"]).output.splitlines()[-1].split()[0]
            exported = tmp_path / "synthetic.pdf"
            assert runner.invoke(args=["records", "export", uid, str(exported)]).exit_code == 0
            verdict = runner.invoke(args=["records", "verify", str(exported)])
            assert verdict.exit_code == 0, verdict.output
    first, second = fingerprints
    assert first[:4] == second[:4]
    assert first[4] == second[4] + 1  # the one sealed record's own audit event
