"""The panel's oversight in the browser: the audit trail browser (verify, filter, a bad filter,
pages, exports) and every dashboard with its chart drawn and its table. Every page passes axe."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from portal.cli.demo import DEMO_ACCOUNTS, DEMO_CONSENTED_PATIENT
from portal.core import audit
from portal.core.permissions import Role
from portal.oversight import trail


def account(role: Role) -> tuple[str, str]:
    return next((email, pw) for r, email, _n, pw in DEMO_ACCOUNTS if r == role)


def click_link(portal_page, name) -> None:
    with portal_page.page.expect_navigation():
        portal_page.page.get_by_role("link", name=name).first.click()
    portal_page.check_accessibility()


def download(page, link_name: str) -> str:
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name, exact=True).click()
    return Path(info.value.path()).read_text(encoding="utf-8")


def test_the_audit_trail_browser(portal_page):
    page = portal_page.page
    portal_page.sign_in(*account(Role.PANEL_CHAIR))
    click_link(portal_page, "Oversight")
    click_link(portal_page, "Audit trail: browse, filter, verify and export")
    portal_page.submit("Verify the whole trail now")
    status = page.locator("main").inner_text()
    assert "Intact" in status and "events verified" in status

    # A filter that cannot be met is explained, next to the field.
    page.get_by_label("Patient").fill("nobody@example.org")
    portal_page.submit("Show events")
    summary = page.locator(".nhsuk-error-summary").inner_text()
    assert "No patient has this email address or account number" in summary

    patient_email = DEMO_CONSENTED_PATIENT[0]
    page.get_by_label("Patient").fill(patient_email)
    page.get_by_label("Action").select_option("consent.countersigned")
    portal_page.submit("Show events")
    rows = page.locator(".app-audit-table > tbody > tr")
    assert rows.count() == 1
    assert "consent.countersigned" in rows.first.inner_text()
    # What changed, field by field.
    rows.first.locator("summary").click()
    assert "status" in rows.first.locator(".app-diff-table").inner_text()

    # The whole of the patient's trail, exported and checked hash by hash.
    page.get_by_label("Action").select_option("")
    portal_page.submit("Show events")
    shown = page.locator(".app-audit-table > tbody > tr").count()
    assert shown > 5
    exported = list(csv.DictReader(io.StringIO(download(page, "CSV"))))
    assert len(exported) == shown  # fewer than a page
    for row in exported:
        assert audit.event_hash(**trail.event_from_export(row)) == row["hash"]
    as_json = json.loads(download(page, "JSON"))
    assert [item["hash"] for item in as_json] == [row["hash"] for row in exported]

    # Pages: the whole trail has more than one.
    click_link(portal_page, "Clear the filters")
    click_link(portal_page, "Older events")
    click_link(portal_page, "Newer events")
    portal_page.assert_all_pages_checked()


def test_every_dashboard_draws_its_chart_and_shows_its_figures(portal_page):
    page = portal_page.page
    portal_page.sign_in(*account(Role.PANEL_MEMBER))
    click_link(portal_page, "Oversight")
    click_link(portal_page, "Dashboards: consent funnel")
    for card in (
        "Consent funnel",
        "Understanding and readability",
        "Withdrawals",
        "Concerns",
        "Review timelines",
    ):
        portal_page.goto("/oversight/dashboards")
        with page.expect_navigation():
            page.locator("main").get_by_role("link", name=card, exact=True).click()
        portal_page.check_accessibility()
        assert page.get_by_role("heading", level=1).inner_text() == card
        figures = page.locator("figure.app-chart")
        for index in range(figures.count()):
            figure = figures.nth(index)
            if figure.locator("canvas").count():
                drawn = figure.locator("canvas").evaluate(
                    "c => window.Chart.getChart(c) !== undefined"
                )
                assert drawn, card
                assert figure.locator("table tbody tr").count() >= 1
    # Understanding: the version chooser and the readability of each section.
    portal_page.goto("/oversight/dashboards/comprehension")
    portal_page.submit("Show")
    assert "Sections: readability and reading time" in page.locator("main").inner_text()
    assert page.locator("#sections-caption").is_visible()
    portal_page.assert_all_pages_checked()
