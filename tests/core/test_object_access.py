"""Own object or another's, for every route that names an object (generated from the URL map).

A world with two of everything (therapists, patients, consents, records, withdrawals,
concerns, notifications, sessions, invitations) is built once. For each route with an object
in its address and each role its rule lets in, the role's own object must be served (never 403
or 404) and another person's must be refused (403 or 404) — and nothing may answer 500. A new
route that names an object fails `test_every_object_route_is_covered` until it is added here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from portal import create_app
from portal.accounts.models import Invitation, UserSession
from portal.comprehension.models import TeachBack
from portal.consent.journey_models import Withdrawal
from portal.core.permissions import Role, access_rule_for
from portal.extensions import db
from portal.incidents.models import Incident, IncidentConflict, IncidentEntry
from portal.notifications.models import OutboxMessage
from portal.notifications.services import queue
from portal.records.models import Record
from tests.conftest import TEST_CONFIG
from tests.consent.journey_helpers import Journey, complete, set_up_journey
from tests.factories import DEFAULT_PASSWORD, Account, create_account
from tests.helpers import PortalClient

# Routes whose address names no object of a person: nothing to own.
NOT_PERSONAL = {
    "static",
    "accounts.accept_invitation",
    "consent.document_version",
    "consent.compare",
    "consent.redline",
    # Panel meetings belong to the whole panel; only the chair changes them (role-checked).
    "review.meeting",
    "review.add_agenda_item",
    "review.add_attendance",
    "review.close_meeting",
    # Its argument is the file format; the panel-only export is covered in tests/oversight.
    "oversight.export_trail",
}


@dataclass
class World:
    app: object
    accounts: dict[str, Account] = field(default_factory=dict)
    ids: dict[str, object] = field(default_factory=dict)

    def client(self, who: str) -> PortalClient:
        client = PortalClient(self.app)
        account = self.accounts[who]
        client.login(account.email, account.password)
        return client


def _build_world(tmp_path_factory, sqlite_template) -> World:
    import shutil

    root = tmp_path_factory.mktemp("objects")
    target = root / "portal.db"
    shutil.copyfile(sqlite_template, target)

    def make_app(url, **overrides):
        return create_app({**TEST_CONFIG, "DATABASE_URL": url, **overrides})

    journey: Journey = complete(set_up_journey(make_app, f"sqlite:///{target}", root))
    app = journey.app
    world = World(app)
    world.accounts.update(t1=journey.therapist, p1=journey.patient)
    t2 = create_account(app, Role.THERAPIST, "t2@example.org", full_name="Other Therapist")
    # The journey helpers sign as "Sam Taylor": the second patient shares the name, not the account.
    p2 = create_account(app, Role.PATIENT, "p2@example.org", full_name="Sam Taylor")
    world.accounts.update(
        t2=t2,
        p2=p2,
        chair=create_account(app, Role.PANEL_CHAIR, "chair@example.org"),
        member=create_account(app, Role.PANEL_MEMBER, "member@example.org"),
        admin=Account(0, "administrator@example.org", DEFAULT_PASSWORD, Role.ADMINISTRATOR),
        investigator=create_account(app, Role.INVESTIGATOR, "investigator@example.org"),
    )
    with app.app_context():
        from portal.accounts.models import User

        db.session.get(User, p2.id).invited_by_id = t2.id
        db.session.commit()
        document_id = journey.consent().version.document_id
    # The second therapist takes the second patient's consent all the way, through the pages.
    t2_client = world.client("t2")
    assert (
        t2_client.post(f"/consent/team/offer/{p2.id}", {"document_id": document_id}).status_code
        == 302
    )
    with app.app_context():
        from portal.consent.journey_models import Consent

        c2 = db.session.scalars(select(Consent).where(Consent.patient_id == p2.id)).one().id
    complete(Journey(app, t2, p2, c2))
    for who, consent_id in (("p1", journey.consent_id), ("p2", c2)):
        response = world.client(who).post(
            f"/withdraw/{consent_id}/confirm",
            {
                "scope": "optional_item",
                "item": "future-contact",
                "password": world.accounts[who].password,
            },
        )
        assert response.status_code == 302, response.text
    # Concerns: one about each therapist; the member declares a conflict on the second.
    for who, about in (("p1", "t1"), ("p2", "t2")):
        response = world.client(who).post(
            "/concerns/new",
            {
                "therapist": str(world.accounts[about].id),
                "category": "other",
                "day": "1",
                "month": "1",
                "year": "2026",
                "session_kind": "not_sure",
                "what_happened": f"A concern from {who}.",
                "feels_safe": "yes",
            },
        )
        assert response.status_code == 302, response.text
    chair = world.client("chair")
    with app.app_context():
        i1, i2 = db.session.scalars(select(Incident.id).order_by(Incident.id)).all()
    for incident_id in (i1, i2):
        chair.post(f"/concerns/{incident_id}/triage", {"severity": "low"})
        chair.post(f"/concerns/{incident_id}/notes", {"text": "A note."})
    chair.post(f"/concerns/{i1}/share", {})  # the first therapist may now respond
    with app.app_context():
        for member in ("member", "chair"):  # nobody on the panel may act on the second concern
            db.session.add(IncidentConflict(incident_id=i2, member_id=world.accounts[member].id))
        for consent_id in (journey.consent_id, c2):
            db.session.add(TeachBack(consent_id=consent_id, question_key="q-stop"))
        from portal.accounts.models import User

        for who in ("p1", "p2"):
            queue(
                db.session, db.session.get(User, world.accounts[who].id), "reconsent", "/consent/"
            )
        db.session.commit()
        entries = db.session.scalars(
            select(IncidentEntry).where(IncidentEntry.kind == "note").order_by(IncidentEntry.id)
        ).all()
        world.ids.update(
            consent={"p1": journey.consent_id, "p2": c2, "t1": journey.consent_id, "t2": c2},
            incident=(i1, i2),
            entry=(entries[0].id, entries[1].id),
            records=dict(
                db.session.execute(
                    select(Record.consent_id, Record.uid).where(Record.kind == "consent")
                ).all()
            ),
            withdrawals=dict(
                db.session.execute(select(Withdrawal.consent_id, Withdrawal.id)).all()
            ),
            flags=dict(db.session.execute(select(TeachBack.consent_id, TeachBack.id)).all()),
            messages=dict(
                db.session.execute(
                    select(OutboxMessage.recipient_id, OutboxMessage.id).where(
                        OutboxMessage.kind == "reconsent"
                    )
                ).all()
            ),
        )
    _add_reviews(world)
    return world


def _add_reviews(world: World) -> None:
    """Two investigators with a protocol each. The member is named on the second (recused);
    the chair declared a conflict on it. The first has a decision letter and was on a meeting
    whose minutes (and the first's extract) are sealed."""
    import io

    from portal.review.models import PanelMeeting, PanelPaper, Protocol, Submission

    app = world.app
    app.config.update(QUORUM_MEMBERS=1, QUORUM_LAY=0, QUORUM_EXPERT=0)
    world.accounts["investigator2"] = create_account(
        app, Role.INVESTIGATOR, "investigator2@example.org"
    )
    for n, who in enumerate(("investigator", "investigator2"), start=1):
        response = world.client(who).post(
            "/review/protocols/new",
            {
                "title": f"Protocol {n}",
                "reference": f"IRAS {n}",
                "chief_investigator": "Dr Someone",
                "sites": "A clinic",
                "team_emails": "member@example.org" if n == 2 else "",
                "summary": "A study.",
                "protocol_file": (io.BytesIO(b"%PDF-1.4 protocol"), "protocol.pdf"),
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 302, response.text
    with app.app_context():
        p1, p2 = db.session.scalars(select(Protocol.id).order_by(Protocol.id)).all()
        s1, s2 = db.session.scalars(select(Submission.id).order_by(Submission.id)).all()
    member, chair = world.client("member"), world.client("chair")
    assert (
        member.post(f"/review/panel/submissions/{s1}/declare", {"conflict": "no"}).status_code
        == 302
    )
    assert member.post(f"/review/panel/submissions/{s1}/vote", {"choice": "for"}).status_code == 302
    assert (
        chair.post(f"/review/panel/submissions/{s1}/declare", {"conflict": "no"}).status_code == 302
    )
    response = chair.post(
        f"/review/panel/submissions/{s1}/opinion",
        {"category": "provisional", "reasons": "Tell us more."},
    )
    assert response.status_code == 302, response.text
    response = chair.post(
        f"/review/panel/submissions/{s2}/declare", {"conflict": "yes", "details": "A relative."}
    )
    assert response.status_code == 302
    chair.post("/review/meetings", {"title": "November", "day": "1", "month": "11", "year": "2026"})
    with app.app_context():
        meeting_id = db.session.scalar(select(PanelMeeting.id))
    chair.post(f"/review/meetings/{meeting_id}/agenda", {"submission_id": str(s1)})
    assert chair.post(f"/review/meetings/{meeting_id}/close", {}).status_code == 302
    with app.app_context():
        papers = dict(db.session.execute(select(PanelPaper.kind, PanelPaper.uid)).all())
    world.ids.update(protocols=(p1, p2), submissions=(s1, s2), meeting=meeting_id, papers=papers)


@pytest.fixture(scope="module")
def world(tmp_path_factory, sqlite_template) -> World:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path_factory.mktemp("instance")))
        built = _build_world(tmp_path_factory, sqlite_template)
        yield built


def _sessions(world: World, who: str) -> int:
    with world.app.app_context():
        return db.session.scalars(
            select(UserSession.id).where(UserSession.user_id == world.accounts[who].id)
        ).first()


def _invitation(world: World, who: str) -> int:
    client = world.client(who)
    client.post(
        "/account/patients/invite", {"full_name": "Someone New", "email": f"new-{who}@example.org"}
    )
    with world.app.app_context():
        return db.session.scalars(
            select(Invitation.id).where(Invitation.invited_by_id == world.accounts[who].id)
        ).first()


# For each endpoint: who is checked, and how to build the address of their own object and of
# someone else's (None: every object of this kind is theirs to see, such as the panel's).
Address = Callable[[World], str | None]
OBJECTS: dict[str, list[tuple[str, Address, Address]]] = {}


def _patient_consent(path: str) -> list[tuple[str, Address, Address]]:
    return [
        (
            "p1",
            lambda w: path.format(w.ids["consent"]["p1"]),
            lambda w: path.format(w.ids["consent"]["p2"]),
        )
    ]


def _therapist_consent(path: str) -> list[tuple[str, Address, Address]]:
    return [
        (
            "t1",
            lambda w: path.format(w.ids["consent"]["t1"]),
            lambda w: path.format(w.ids["consent"]["t2"]),
        )
    ]


for endpoint, path in {
    "consent.resume": "/consent/{}",
    "consent.ask": "/consent/{}/ask",
    "consent.choices": "/consent/{}/choices",
    "consent.read": "/consent/{}/read/0",
    "consent.sign": "/consent/{}/sign",
    "comprehension.question": "/comprehension/{}",
    "withdrawal.choose": "/withdraw/{}",
    "withdrawal.confirm": "/withdraw/{}/confirm",
}.items():
    OBJECTS[endpoint] = _patient_consent(path)
for endpoint, path in {
    "consent.countersign": "/consent/team/{}/countersign",
    "withdrawal.record_for_patient": "/withdraw/record/{}",
}.items():
    OBJECTS[endpoint] = _therapist_consent(path)
# What changed between versions: only another's is checked (one's own is a 404 until a newer
# version is in use).
OBJECTS["consent.changes"] = [
    ("p1", lambda w: None, lambda w: f"/consent/{w.ids['consent']['p2']}/changes")
]


def _c(w: World, who: str) -> int:
    return w.ids["consent"][who]


OBJECTS.update(
    {
        "consent.offer": [
            (
                "t1",
                lambda w: f"/consent/team/offer/{w.accounts['p1'].id}",
                lambda w: f"/consent/team/offer/{w.accounts['p2'].id}",
            )
        ],
        "comprehension.teach_back": [
            (
                "t1",
                lambda w: f"/comprehension/teach-back/{w.ids['flags'][_c(w, 't1')]}",
                lambda w: f"/comprehension/teach-back/{w.ids['flags'][_c(w, 't2')]}",
            )
        ],
        "records.download": [
            (
                who,
                lambda w, who=who: f"/records/{w.ids['records'][_c(w, who)]}.pdf",
                lambda w, who=who: (
                    f"/records/{w.ids['records'][_c(w, 'p2' if who in ('p1', 't1') else 'p1')]}.pdf"
                ),
            )
            for who in ("p1", "t1")
        ]
        + [("member", lambda w: f"/records/{w.ids['records'][_c(w, 'p1')]}.pdf", lambda w: None)],
        "withdrawal.receipt": [
            (
                who,
                lambda w, who=who: f"/withdraw/receipt/{w.ids['withdrawals'][_c(w, who)]}",
                lambda w, who=who: f"/withdraw/receipt/{w.ids['withdrawals'][_c(w, 'p2')]}",
            )
            for who in ("p1", "t1")
        ]
        + [
            (
                "chair",
                lambda w: f"/withdraw/receipt/{w.ids['withdrawals'][_c(w, 'p1')]}",
                lambda w: None,
            )
        ],
        "withdrawal.acknowledge": [
            (
                "t1",
                lambda w: None,
                lambda w: f"/withdraw/receipt/{w.ids['withdrawals'][_c(w, 'p2')]}/acknowledge",
            )
        ],
        "incidents.show": [
            (
                "p1",
                lambda w: f"/concerns/{w.ids['incident'][0]}",
                lambda w: f"/concerns/{w.ids['incident'][1]}",
            ),
            (
                "t1",
                lambda w: f"/concerns/{w.ids['incident'][0]}",
                lambda w: f"/concerns/{w.ids['incident'][1]}",
            ),
            (
                "member",
                lambda w: f"/concerns/{w.ids['incident'][0]}",
                lambda w: f"/concerns/{w.ids['incident'][1]}",
            ),
            ("investigator", lambda w: None, lambda w: f"/concerns/{w.ids['incident'][0]}"),
            ("admin", lambda w: None, lambda w: f"/concerns/{w.ids['incident'][0]}"),
        ],
        "incidents.reported": [
            (
                "p1",
                lambda w: f"/concerns/{w.ids['incident'][0]}/received",
                lambda w: f"/concerns/{w.ids['incident'][1]}/received",
            ),
            ("t1", lambda w: None, lambda w: f"/concerns/{w.ids['incident'][0]}/received"),
        ],
        "incidents.respond": [
            ("t1", lambda w: None, lambda w: f"/concerns/{w.ids['incident'][1]}/respond")
        ],
        "incidents.evidence": [
            (
                "member",
                lambda w: None,
                lambda w: f"/concerns/{w.ids['incident'][1]}/evidence/{w.ids['entry'][1]}",
            ),
            (
                "chair",
                lambda w: None,
                lambda w: f"/concerns/{w.ids['incident'][1]}/evidence/{w.ids['entry'][1]}",
            ),
        ],
        "incidents.therapist_history": [
            (
                "member",
                lambda w: f"/concerns/therapists/{w.accounts['t1'].id}",
                lambda w: f"/concerns/therapists/{w.accounts['p1'].id}",
            )
        ],
        "notifications.open_message": [
            (
                "p1",
                lambda w: None,
                lambda w: f"/notifications/{w.ids['messages'][w.accounts['p2'].id]}/open",
            )
        ],
        "accounts.end_session": [
            ("p1", lambda w: None, lambda w: f"/account/sessions/{_sessions(w, 'p2')}/end")
        ],
        "accounts.revoke_invitation": [
            (
                "t1",
                lambda w: None,
                lambda w: f"/account/invitations/{_invitation(w, 't2')}/withdraw",
            )
        ],
        "accounts.password_reset_link": [
            (
                "t1",
                lambda w: None,
                lambda w: f"/account/users/{w.accounts['p2'].id}/password-reset-link",
            )
        ],
        "accounts.manage_user": [
            ("admin", lambda w: f"/account/staff/{w.accounts['t1'].id}", lambda w: None)
        ],
        # A patient's consents as FHIR: their own; a therapist's patient's; for the panel any
        # patient (someone who is not a patient does not exist).
        "fhir.patient_consents": [
            (
                who,
                lambda w: f"/fhir/patients/{w.accounts['p1'].id}/consents.json",
                lambda w: f"/fhir/patients/{w.accounts['p2'].id}/consents.json",
            )
            for who in ("p1", "t1")
        ]
        + [
            (
                "member",
                lambda w: f"/fhir/patients/{w.accounts['p2'].id}/consents.json",
                lambda w: f"/fhir/patients/{w.accounts['t1'].id}/consents.json",
            )
        ],
    }
)


def _p(w: World, n: int) -> int:
    return w.ids["protocols"][n]


def _s(w: World, n: int) -> int:
    return w.ids["submissions"][n]


OBJECTS.update(
    {
        "review.protocol": [
            (
                "investigator",
                lambda w: f"/review/protocols/{_p(w, 0)}",
                lambda w: f"/review/protocols/{_p(w, 1)}",
            ),
            ("member", lambda w: f"/review/protocols/{_p(w, 1)}", lambda w: None),
        ],
        "review.modify": [
            (
                "investigator",
                lambda w: f"/review/protocols/{_p(w, 0)}/modify",
                lambda w: f"/review/protocols/{_p(w, 1)}/modify",
            ),
        ],
        "review.submission": [
            (
                "investigator",
                lambda w: f"/review/submissions/{_s(w, 0)}",
                lambda w: f"/review/submissions/{_s(w, 1)}",
            ),
        ],
        "review.respond": [
            ("investigator", lambda w: None, lambda w: f"/review/submissions/{_s(w, 1)}/respond"),
        ],
        "review.protocol_file": [
            (
                "investigator",
                lambda w: f"/review/submissions/{_s(w, 0)}/protocol.pdf",
                lambda w: f"/review/submissions/{_s(w, 1)}/protocol.pdf",
            ),
            ("member", lambda w: f"/review/submissions/{_s(w, 1)}/protocol.pdf", lambda w: None),
        ],
        # An investigator gets their own letters and minutes extracts, never another's, and
        # never the whole meeting's minutes (other studies are discussed there).
        "review.paper": [
            (
                "investigator",
                lambda w: f"/review/papers/{w.ids['papers']['decision_letter']}.pdf",
                lambda w: f"/review/papers/{w.ids['papers']['minutes']}.pdf",
            ),
            (
                "investigator",
                lambda w: f"/review/papers/{w.ids['papers']['minutes_extract']}.pdf",
                lambda w: None,
            ),
            (
                "investigator2",
                lambda w: None,
                lambda w: f"/review/papers/{w.ids['papers']['minutes_extract']}.pdf",
            ),
            (
                "investigator2",
                lambda w: None,
                lambda w: f"/review/papers/{w.ids['papers']['decision_letter']}.pdf",
            ),
        ],
        # Every panel member may read a submission; the recused see no discussion (tested in
        # tests/review). The investigator is refused the panel's pages.
        "review.panel_submission": [
            ("member", lambda w: f"/review/panel/submissions/{_s(w, 1)}", lambda w: None),
            ("investigator", lambda w: None, lambda w: f"/review/panel/submissions/{_s(w, 0)}"),
        ],
        "review.condition_met": [
            ("chair", lambda w: None, lambda w: "/review/panel/conditions/2147483000/met"),
        ],
        "review.protocol_status": [
            ("chair", lambda w: None, lambda w: f"/review/protocols/{_p(w, 1)}/status"),
        ],
    }
)
# Steps in a review: refused to the member named on the second protocol, and to the chair
# who declared a conflict in it.
for endpoint, suffix in {
    "review.declare": "declare",
    "review.comment": "comment",
    "review.vote": "vote",
    "review.assign": "assign",
    "review.opinion": "opinion",
}.items():
    who = "member" if endpoint in ("review.declare", "review.comment", "review.vote") else "chair"
    OBJECTS[endpoint] = [
        (
            who,
            lambda w: None,
            lambda w, suffix=suffix: f"/review/panel/submissions/{_s(w, 1)}/{suffix}",
        )
    ]


# Panel-only steps on a concern: the member with a conflict is refused on the second one.
for endpoint, suffix in {
    "incidents.triage": "triage",
    "incidents.assign": "assign",
    "incidents.share": "share",
    "incidents.outcome": "outcome",
    "incidents.breach_reported": "breach-reported",
    "incidents.add_note": "notes",
    "incidents.declare_conflict": "conflict",
}.items():
    who = "member" if endpoint in ("incidents.add_note",) else "chair"
    OBJECTS[endpoint] = [
        (who, lambda w: None, lambda w, suffix=suffix: f"/concerns/{w.ids['incident'][1]}/{suffix}")
    ]


def _methods(app, endpoint: str) -> set[str]:
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint]
    return set().union(*(rule.methods for rule in rules)) - {"HEAD", "OPTIONS"}


def test_every_object_route_is_covered():
    app = create_app({**TEST_CONFIG, "DATABASE_URL": "sqlite://"})
    named = {rule.endpoint for rule in app.url_map.iter_rules() if rule.arguments}
    missing = sorted(named - set(OBJECTS) - NOT_PERSONAL)
    assert not missing, f"routes naming an object without an own/other check: {missing}"


CASES = [
    (endpoint, who, n)
    for endpoint, checks in sorted(OBJECTS.items())
    for n, (who, _o, _x) in enumerate(checks)
]


@pytest.mark.parametrize(("endpoint", "who", "n"), CASES)
def test_own_object_served_and_another_refused(world, endpoint, who, n):
    _who, own, other = OBJECTS[endpoint][n]
    methods = _methods(world.app, endpoint)
    with world.app.test_request_context():
        allowed = access_rule_for(endpoint).allows(Role(world.accounts[who].role))
    client = world.client(who)
    own_url, other_url = own(world), other(world)
    if own_url and "GET" in methods and allowed:
        status = client.get(own_url).status_code
        assert status not in (403, 404) and status < 500, (own_url, status)
    if other_url:
        status = (
            client.get(other_url) if "GET" in methods else client.post(other_url, {})
        ).status_code
        assert status in (403, 404), (other_url, status)


def test_refusals_of_concerns_are_audited(world):
    from portal.core.audit import AuditEvent

    with world.app.app_context():
        refused = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "incident.access_refused")
        ).all()
    assert {event.actor_id for event in refused} >= {
        world.accounts["p1"].id,
        world.accounts["t1"].id,
    }
