"""The audit trail browser: links, filters, keyset pages, exports that round-trip, verification."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from portal.core import audit
from portal.core.audit_links import AuditLink
from portal.core.permissions import Role
from portal.extensions import db
from portal.oversight import trail
from portal.oversight.models import ChainVerification
from tests.consent.journey_helpers import complete, set_up_journey
from tests.factories import create_account
from tests.helpers import PortalClient


@pytest.fixture
def journey(make_app, database_url, tmp_path):
    return complete(set_up_journey(make_app, database_url, tmp_path))


def _panel(app) -> PortalClient:
    member = create_account(app, Role.PANEL_MEMBER, email="auditor@example.org")
    client = PortalClient(app)
    client.login(member.email, member.password)
    return client


def _events(page: str) -> str:
    """The results part of the page (the filter form lists every action too)."""
    return page.split('<h2 id="events">')[1]


def _pagination_link(page: str, which: str) -> str | None:
    found = re.search(rf'href="([^"]+)" rel="{which}"', page)
    return found[1].replace("&amp;", "&").split("#")[0] if found else None


def _seqs(page: str) -> list[int]:
    return [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", page)]


def test_every_event_about_a_consent_is_linked_to_its_patient_and_version(journey):
    with journey.app.app_context():
        consent = journey.consent()
        consent_events = db.session.scalars(
            select(audit.AuditEvent.seq).where(
                audit.AuditEvent.object_type == "consent",
                audit.AuditEvent.object_id == str(consent.id),
            )
        ).all()
        assert len(consent_events) >= 6
        for kind, ref in (("patient", journey.patient.id), ("version", consent.version_id)):
            linked = set(
                db.session.scalars(
                    select(AuditLink.event_seq).where(AuditLink.kind == kind, AuditLink.ref == ref)
                )
            )
            assert set(consent_events) <= linked
        # The patient's own account events are theirs too; the therapist's are not.
        patient_created = db.session.scalar(
            select(audit.AuditEvent.seq).where(
                audit.AuditEvent.action == "account.created",
                audit.AuditEvent.object_id == str(journey.patient.id),
            )
        )
        therapist_created = db.session.scalar(
            select(audit.AuditEvent.seq).where(
                audit.AuditEvent.action == "account.created",
                audit.AuditEvent.object_id == str(journey.therapist.id),
            )
        )
        links = db.session.execute(select(AuditLink.kind, AuditLink.event_seq)).all()
        assert ("patient", patient_created) in links
        assert all(seq != therapist_created for _kind, seq in links)


def test_filters_narrow_the_trail(journey):
    app = journey.app
    other = create_account(app, Role.PATIENT, email="other@example.org")
    client = _panel(app)

    page = client.get(f"/oversight/audit?patient={journey.patient.email}")
    assert page.status_code == 200
    assert "consent.countersigned" in page.text and "record.created" in page.text
    with app.app_context():
        expected = db.session.scalar(
            select(func.count()).where(
                AuditLink.kind == "patient", AuditLink.ref == journey.patient.id
            )
        )
    assert len(_seqs(page.text)) == min(expected, trail.PAGE_SIZE)

    by_number = _events(client.get(f"/oversight/audit?patient={other.id}").text)
    assert "account.created" in by_number  # their account was created
    assert "consent.signed" not in by_number

    signed = client.get("/oversight/audit?action=consent.signed").text
    assert _seqs(signed) and "consent.countersigned" not in _events(signed)

    by_actor = client.get(f"/oversight/audit?actor={journey.therapist.email}").text
    with app.app_context():
        therapist_events = db.session.scalar(
            select(func.count()).where(audit.AuditEvent.actor_id == journey.therapist.id)
        )
    assert len(_seqs(by_actor)) == min(therapist_events, trail.PAGE_SIZE)

    today = dt.datetime.now(dt.UTC).date()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert _seqs(client.get(f"/oversight/audit?date_from={today.isoformat()}").text)
    assert (
        "No events match these filters."
        in client.get(f"/oversight/audit?date_from={tomorrow}").text
    )
    assert (
        "No events match these filters."
        in client.get(f"/oversight/audit?date_to={(today - dt.timedelta(days=1)).isoformat()}").text
    )
    with app.app_context():
        version_id = journey.consent().version_id
    by_version = _events(client.get(f"/oversight/audit?version={version_id}").text)
    assert "consent.offered" in by_version and "account.created" not in by_version


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("patient=nobody@example.org", "No patient has this email address or account number"),
        ("patient=therapist@example.org", "No patient has this email address or account number"),
        ("patient=%3Cscript%3E", "Enter an email address or an account number"),
        ("actor=99999", "No account has this email address or account number"),
        ("protocol=999", "Choose a protocol from the list"),
        ("version=abc", "Choose a consent document version from the list"),
        ("action=nothing.happened", "Choose an action from the list"),
        ("incident=C-99999", "No concern has this reference"),
        ("date_from=2026-13-01", "Enter a real date, for example 2026-11-01"),
        ("date_from=2026-11-10&date_to=2026-11-01", "The end date must be the same as or after"),
    ],
)
def test_a_bad_filter_is_explained_not_a_server_error(journey, query, message):
    client = _panel(journey.app)
    response = client.get(f"/oversight/audit?{query}")
    assert response.status_code == 400
    assert "There is a problem" in response.text and message in response.text
    assert client.get(f"/oversight/audit/export.csv?{query}").status_code == 400


def test_keyset_pages_cover_every_event_once(journey):
    app = journey.app
    with app.app_context():
        for number in range(130):
            audit.record(db.session, "test.filler", actor=audit.SYSTEM, after={"n": number})
        db.session.commit()
        total = db.session.scalar(select(func.count()).select_from(audit.AuditEvent))
    client = _panel(app)
    seen: list[int] = []
    url = "/oversight/audit"
    pages = []
    while url and len(pages) < 10:
        page = client.get(url).text
        pages.append(page)
        seen.extend(_seqs(page))
        url = _pagination_link(page, "next")
    assert len(seen) >= total and len(seen) == len(set(seen))  # sign-ins add a few more
    assert seen == sorted(seen, reverse=True)
    # And back again: the page of newer events from the second page is the first page.
    second = pages[1]
    assert (
        _seqs(client.get(_pagination_link(second, "prev")).text)
        == _seqs(pages[0])[: trail.PAGE_SIZE]
    )


def test_exports_round_trip_and_are_audited(journey):
    app = journey.app
    client = _panel(app)
    query = f"patient={journey.patient.email}"
    with app.app_context():
        stored = {
            event.seq: event
            for event in db.session.scalars(
                select(audit.AuditEvent)
                .join(AuditLink, AuditLink.event_seq == audit.AuditEvent.seq)
                .where(AuditLink.kind == "patient", AuditLink.ref == journey.patient.id)
            )
        }

    response = client.get(f"/oversight/audit/export.csv?{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(row["seq"]) for row in rows] == sorted(stored)
    for row in rows:
        fields = trail.event_from_export(row)
        assert audit.event_hash(**fields) == row["hash"] == stored[fields["seq"]].hash
        assert fields["after_json"] == stored[fields["seq"]].after_json

    objects = json.loads(client.get(f"/oversight/audit/export.json?{query}").text)
    assert [int(item["seq"]) for item in objects] == sorted(stored)
    for item in objects:
        assert audit.event_hash(**trail.event_from_export(item)) == item["hash"]

    with app.app_context():
        exports = db.session.scalars(
            select(audit.AuditEvent).where(audit.AuditEvent.action == "audit.exported")
        ).all()
    assert [event.after["format"] for event in exports] == ["csv", "json"]
    assert exports[0].after["filter"] == {"patient_id": str(journey.patient.id)}
    assert client.get(f"/oversight/audit/export.xml?{query}").status_code == 404


def test_verification_is_kept_shown_and_names_a_break(journey, request):
    app = journey.app
    client = _panel(app)
    assert "Not verified yet" in client.get("/oversight/audit").text
    response = client.post("/oversight/audit/verify")
    assert response.status_code == 302
    page = client.get("/oversight/audit").text
    assert "Intact" in page and "events verified" in page
    with app.app_context():
        run = db.session.scalar(select(ChainVerification))
        assert run.intact and run.events_verified > 20 and run.verified_by_id is not None
        event = db.session.scalar(
            select(audit.AuditEvent).where(audit.AuditEvent.action == "audit.verified")
        )
        assert event.after["intact"] is True
        victim = run.events_verified // 2
        if db.engine.dialect.name != "sqlite":
            pytest.skip("altering an event needs the triggers dropped; shown on SQLite")
        db.session.execute(text("DROP TRIGGER audit_event_no_update"))
        db.session.execute(
            text("UPDATE audit_event SET reason = 'edited' WHERE seq = :seq"), {"seq": victim}
        )
        db.session.commit()
    client.post("/oversight/audit/verify")
    page = client.get("/oversight/audit").text
    assert "The audit trail has been tampered with" in page
    assert f"The first event that does not verify is number {victim}." in page
    assert "was altered" in page


@pytest.mark.parametrize("role", [Role.PATIENT, Role.THERAPIST, Role.INVESTIGATOR])
def test_only_the_panel_browses_the_trail(journey, role):
    account = create_account(journey.app, role, email=f"x-{role.value}@example.org")
    client = PortalClient(journey.app)
    client.login(account.email, account.password)
    assert client.get("/oversight/audit").status_code == 403
    assert client.get("/oversight/audit/export.csv").status_code == 403
    assert client.post("/oversight/audit/verify").status_code == 403


FILTER_NAMES = ["patient", "protocol", "version", "incident", "actor", "action", "date_from",
                "date_to", "older_than", "newer_than", "other"]  # fmt: skip


@pytest.fixture
def panel_client(make_app, sqlite_url):
    return _panel(make_app(sqlite_url))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(FILTER_NAMES),
        st.one_of(st.text(max_size=40), st.integers().map(str), st.just("\x00"), st.just("9" * 30)),
        max_size=5,
    )
)
def test_any_query_string_gets_a_page_or_a_clear_400(panel_client, params):
    for url in ("/oversight/audit", "/oversight/audit/export.csv"):
        response = panel_client.get(url, query_string=params)
        assert response.status_code in (200, 400), (params, response.status_code)
        if response.status_code == 400:
            assert "There is a problem" in response.text


def test_the_command_line_verification_is_recorded_for_the_panel(journey):
    app = journey.app
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        run = db.session.scalar(select(ChainVerification))
        assert run.intact and run.verified_by_id is None
        assert f"{run.events_verified} events verified" in result.output
    page = _panel(app).get("/oversight/audit").text
    assert "Intact" in page
