"""The therapist's dashboard in the browser: its consents a page at a time, each page checked
with axe, with what needs the therapist listed above them."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.accounts.models import User
from portal.cli.demo import DEMO_ACCOUNTS
from portal.consent.journey_models import Consent
from portal.core.permissions import Role
from portal.extensions import db

THERAPIST = next((e, p) for r, e, _n, p in DEMO_ACCOUNTS if r == Role.THERAPIST)


def test_a_therapist_pages_through_their_consents(portal_page, live_server, monkeypatch):
    monkeypatch.setattr("portal.consent.team_overview.CONSENTS_PER_PAGE", 1)
    with live_server.app.app_context():
        therapist = User.by_email(db.session, THERAPIST[0])
        total = db.session.scalar(
            select(func.count(Consent.id)).where(Consent.therapist_id == therapist.id)
        )
    assert total >= 2, "the demo gives the therapist more than one consent"
    page = portal_page.page
    portal_page.sign_in(*THERAPIST)
    portal_page.goto("/consent/team")
    assert f"Newest first: page 1 of {total}, {total} consents" in page.content()
    assert page.get_by_role("link", name="Newer consents").count() == 0

    page.get_by_role("link", name="Older consents").click()
    page.wait_for_load_state()
    portal_page.check_accessibility()
    assert f"page 2 of {total}" in page.content()
    assert page.url.endswith("/consent/team?page=2#consents")

    page.get_by_role("link", name="Newer consents").click()
    page.wait_for_load_state()
    portal_page.check_accessibility()
    assert f"page 1 of {total}" in page.content()
