"""The panel reads the shipped consent documents and the v1.0 → v1.1 redline; axe on each page."""

from __future__ import annotations

from portal.cli.demo import DEMO_ACCOUNTS
from portal.core.permissions import Role

PANEL_EMAIL, PANEL_PASSWORD = next(
    (email, password) for role, email, _name, password in DEMO_ACCOUNTS if role == Role.PANEL_MEMBER
)


def test_panel_member_reads_versions_and_the_redline(portal_page):
    portal_page.sign_in(PANEL_EMAIL, PANEL_PASSWORD)
    page = portal_page.page
    with page.expect_navigation():
        page.get_by_role("link", name="Consent documents").first.click()
    portal_page.check_accessibility()
    assert page.get_by_role("heading", name="mdma-ptsd-trial").is_visible()

    with page.expect_navigation():
        page.get_by_role("link", name="English version 1.0").click()
    portal_page.check_accessibility()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Taking part")

    portal_page.goto("/consent/documents")
    with page.expect_navigation():
        page.get_by_role("link", name="Compare with 1.0").click()
    portal_page.check_accessibility()
    assert page.get_by_role("heading", level=1).inner_text() == "Changes from version 1.0 to 1.1"
    assert page.locator("ins.app-redline__added").count() > 0

    with page.expect_navigation():
        page.get_by_role("link", name="Cymraeg").first.click()
    portal_page.check_accessibility()
    assert page.locator(".app-redline[lang=cy]").count() > 0
