"""The therapist's patient list in the browser: paging, a search and a search refused, each page
checked with axe."""

from __future__ import annotations

from portal.cli.demo import DEMO_ACCOUNTS
from portal.core.permissions import Role

THERAPIST = next((e, p) for r, e, _n, p in DEMO_ACCOUNTS if r == Role.THERAPIST)


def test_a_therapist_pages_through_and_searches_their_patients(
    portal_page, live_server, monkeypatch
):
    monkeypatch.setattr("portal.accounts.account_lists.ACCOUNTS_PER_PAGE", 2)
    page = portal_page.page
    portal_page.sign_in(*THERAPIST)
    portal_page.goto("/account/patients")
    table = page.locator("table", has_text="Email address").first
    assert "3 patients, A to Z by name: page 1 of 2" in table.inner_text()
    assert "Alex Rivera" in table.inner_text() and "Sam Taylor" not in table.inner_text()

    page.get_by_role("link", name="Next patients").click()
    page.wait_for_load_state()
    portal_page.check_accessibility()
    assert "Sam Taylor" in table.inner_text() and "Alex Rivera" not in table.inner_text()

    page.get_by_label("Search by name or email address").fill("  LEE ")
    portal_page.submit("Search")
    assert "1 patient matches “LEE”" in table.inner_text()
    assert "Jordan Lee" in table.inner_text() and "Sam Taylor" not in table.inner_text()
    assert page.get_by_label("Search by name or email address").input_value() == "LEE"

    page.get_by_label("Search by name or email address").fill("x" * 255)
    portal_page.submit("Search")
    summary = page.locator(".nhsuk-error-summary")
    assert "Your search must be 254 characters or fewer" in summary.inner_text()
    summary.get_by_role("link").click()
    assert page.evaluate("document.activeElement.id") == "search"

    portal_page.goto("/account/patients?search=lee")
    page.get_by_role("link", name="Show all your patients").click()
    page.wait_for_load_state()
    portal_page.check_accessibility()
    assert "3 patients" in table.inner_text()


ADMINISTRATOR = next((e, p) for r, e, _n, p in DEMO_ACCOUNTS if r == Role.ADMINISTRATOR)


def test_an_administrator_finds_a_patients_account(portal_page, live_server):
    page = portal_page.page
    portal_page.sign_in(*ADMINISTRATOR)
    portal_page.goto("/account/staff")
    table = page.locator("table", has_text="Role").first
    assert "Dr Rhian Evans" in table.inner_text() and "Sam Taylor" not in table.inner_text()

    page.get_by_label("Whose accounts to show").select_option(label="Patient")
    page.get_by_label("Search by name or email address").fill("taylor")
    portal_page.submit("Search")
    assert "1 account" in table.inner_text()
    assert "Sam Taylor" in table.inner_text() and "Dr Rhian Evans" not in table.inner_text()
    page.get_by_role("link", name="Sam Taylor").click()
    page.wait_for_load_state()
    portal_page.check_accessibility()
    assert "/account/staff/" in page.url and "Sam Taylor" in page.locator("h1").inner_text()
