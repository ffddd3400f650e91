"""Re-consent in the browser: v1.1 changes the risks and the recording policy materially, so the
demo patient, who consented to v1.0, is asked again and reads only what changed."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from portal.accounts.models import User
from portal.cli.demo import DEMO_ACCOUNTS
from portal.comprehension.services import answer
from portal.consent import journey
from portal.consent.documents import activate_version, approve_version, find_version
from portal.consent.journey_models import Consent, SignatureMethod
from portal.core.permissions import Role
from portal.extensions import db

ACCOUNTS = {role: (email, password) for role, email, _name, password in DEMO_ACCOUNTS}
assert ACCOUNTS[Role.PATIENT][0] == "patient@example.org"  # the patient still reading v1.0


def give_v1_0_consent(app) -> int:
    """The demo patient's v1.0 consent, completed through the real services."""
    with app.app_context():
        session = db.session
        patient = User.by_email(session, ACCOUNTS[Role.PATIENT][0])
        therapist = User.by_email(session, ACCOUNTS[Role.THERAPIST][0])
        consent = session.scalars(select(Consent).where(Consent.patient_id == patient.id)).one()
        for position in range(len(consent.sections)):
            visit = journey.open_section(session, consent, position)
            journey.leave_section(session, consent, visit, position, "next")
        for question in consent.questions:
            answer(session, consent, question.key, question.answer)
        journey.save_choices(
            session, consent, {i.key: False for i in consent.text.optional_consents}
        )
        consent.opened_at -= dt.timedelta(days=3)
        journey.sign(
            session,
            consent,
            patient,
            typed_name=patient.full_name,
            password=ACCOUNTS[Role.PATIENT][1],
            attested=True,
            method=SignatureMethod.TYPED,
            image=None,
        )
        journey.countersign(
            session,
            consent,
            therapist,
            password=ACCOUNTS[Role.THERAPIST][1],
            discussed=True,
            identity_checked=True,
            witnessed_typed=True,
        )
        admin = User.by_email(session, ACCOUNTS[Role.ADMINISTRATOR][0])
        v1_1 = find_version(session, "mdma-ptsd-trial", "1.1")
        approve_version(session, v1_1, admin, material_change=True, reference="REC letter")
        activate_version(session, v1_1, admin)
        session.commit()
        return consent.id


def test_reconsent_from_v1_0_to_v1_1(portal_page, live_server):
    old_id = give_v1_0_consent(live_server.app)
    page = portal_page.page
    portal_page.sign_in(*ACCOUNTS[Role.PATIENT])
    assert page.get_by_text("we need to ask for your consent again").is_visible()
    with page.expect_navigation():
        page.get_by_role("link", name="See what has changed").click()
    portal_page.check_accessibility()
    headings = page.get_by_role("heading", level=2).all_inner_texts()
    assert any("risks" in h.lower() for h in headings)
    assert any("record" in h.lower() for h in headings)
    assert page.locator("ins.app-redline__added").count() > 0

    portal_page.goto("/consent/")
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("^Start reading")).click()
    portal_page.check_accessibility()
    read = 0
    while "/read/" in page.url:
        if page.get_by_role("link", name="Read the section").count():
            with page.expect_navigation():
                page.get_by_role("link", name="Read the section").click()
            portal_page.check_accessibility()
        read += 1
        name = re.compile("I have read every section|Next section")
        with page.expect_navigation():
            page.get_by_role("button", name=name).click()
        portal_page.check_accessibility()
    assert read == 2  # only the two changed sections

    with live_server.app.app_context():
        new = db.session.scalars(select(Consent).where(Consent.replaces_id == old_id)).one()
        questions = [(q.answer, q.choices) for q in new.questions]
        new_id = new.id
    for correct, choices in questions:
        text = next(c["text"] for c in choices if c["id"] == correct)
        page.get_by_label(text, exact=True).check()
        portal_page.submit("Check my answer")
    for radio in page.get_by_label("No", exact=True).all():
        radio.check()
    portal_page.submit("Save my choices")
    with live_server.app.app_context():
        consent = db.session.get(Consent, new_id)
        consent.opened_at -= dt.timedelta(days=2)
        db.session.commit()
    portal_page.goto(f"/consent/{new_id}/sign")
    page.get_by_label(re.compile("I have read and understood")).check()
    page.get_by_label("Type your full name").fill("Sam Taylor")
    page.get_by_label(re.compile("Use my typed name")).check()
    page.get_by_label("Your password").fill(ACCOUNTS[Role.PATIENT][1])
    portal_page.submit("Sign my consent")
    portal_page.submit("Sign out")

    portal_page.sign_in(*ACCOUNTS[Role.THERAPIST])
    portal_page.goto(f"/consent/team/{new_id}/countersign")
    page.get_by_label(re.compile("I discussed the study")).check()
    page.get_by_label("I checked the patient's identity").check()
    page.get_by_label(re.compile("I witnessed the patient typing")).check()
    page.get_by_label("Your password").fill(ACCOUNTS[Role.THERAPIST][1])
    portal_page.submit("Countersign")
    with live_server.app.app_context():
        assert db.session.get(Consent, old_id).status == "replaced"
        assert db.session.get(Consent, new_id).status == "complete"
