"""The main pages in Welsh pass the same accessibility checks (lang attributes included)."""

from __future__ import annotations

from portal.cli.demo import DEMO_ACCOUNTS, DEMO_CONSENTED_PATIENT
from portal.core.permissions import Role

ACCOUNTS = {role: (email, password) for role, email, _name, password in DEMO_ACCOUNTS}


def test_patient_pages_in_welsh(portal_page):
    page = portal_page.page
    portal_page.goto("/account/sign-in")
    portal_page.submit("Cymraeg")
    assert page.locator("html").get_attribute("lang") == "cy"
    email, _name, password = DEMO_CONSENTED_PATIENT
    page.get_by_label("Cyfeiriad e-bost").fill(email)
    page.get_by_label("Cyfrinair").fill(password)
    portal_page.submit("Mewngofnodi")
    assert page.locator("html").get_attribute("lang") == "cy"
    portal_page.goto("/account/sessions")
    portal_page.goto("/account/password")
    portal_page.goto("/records/verify")
    portal_page.goto("/withdraw/")  # the withdrawal form, with the document's Welsh options
    portal_page.submit("Parhau")  # nothing chosen: the error state in Welsh
    portal_page.goto("/concerns/new")
    portal_page.goto("/concerns/mine")
    portal_page.goto("/withdraw/help")
    portal_page.goto("/no/such/page")


def test_staff_pages_in_welsh(portal_page):
    page = portal_page.page
    portal_page.goto("/account/sign-in")
    portal_page.submit("Cymraeg")
    portal_page.sign_in(*ACCOUNTS[Role.PANEL_MEMBER])
    assert page.url.endswith("/oversight/")
    assert page.get_by_role("heading", level=1).inner_text() == "Goruchwyliaeth"
    portal_page.goto("/consent/documents")
    portal_page.goto("/consent/documents/mdma-ptsd-trial/1.0/cy")
    portal_page.goto("/consent/documents/mdma-ptsd-trial/compare?from=1.0&to=1.1&language=cy")
    portal_page.goto("/concerns/")
    portal_page.goto("/notifications/")


def test_therapist_and_administrator_pages_in_welsh(portal_page):
    page = portal_page.page
    portal_page.goto("/account/sign-in")
    portal_page.submit("Cymraeg")
    portal_page.sign_in(*ACCOUNTS[Role.THERAPIST])
    assert page.locator("html").get_attribute("lang") == "cy"
    portal_page.goto("/consent/team")
    record = page.locator("a[href^='/withdraw/record/']").first.get_attribute("href")
    portal_page.goto("/account/patients")
    portal_page.goto("/account/patients/invite")
    portal_page.goto(record)
    with page.expect_navigation():  # nothing chosen: the errors, in Welsh
        page.locator("main button.nhsuk-button").first.click()
    portal_page.check_accessibility()
    portal_page.goto("/notifications/")
    portal_page.submit("Allgofnodi")
    portal_page.sign_in(*ACCOUNTS[Role.ADMINISTRATOR])
    portal_page.goto("/account/staff")
    portal_page.goto("/notifications/outbox")


def test_ethics_review_pages_in_welsh(portal_page):
    page = portal_page.page

    def press_first_button() -> None:
        with page.expect_navigation():
            page.locator("main button.nhsuk-button").first.click()
        portal_page.check_accessibility()

    portal_page.goto("/account/sign-in")
    portal_page.submit("Cymraeg")
    portal_page.sign_in(*ACCOUNTS[Role.INVESTIGATOR])
    assert page.locator("html").get_attribute("lang") == "cy"
    portal_page.goto("/review/")
    portal_page.goto("/review/protocols/1")
    portal_page.goto("/review/submissions/1")
    portal_page.goto("/review/protocols/1/modify")
    portal_page.goto("/review/protocols/new")
    press_first_button()  # nothing filled in: the errors, in Welsh
    assert page.locator(".nhsuk-error-summary").count() == 1
    portal_page.submit("Allgofnodi")

    portal_page.sign_in(*ACCOUNTS[Role.PANEL_CHAIR])
    portal_page.goto("/review/panel")
    portal_page.goto("/review/panel/submissions/1")
    portal_page.goto("/review/panel/submissions/2")
    press_first_button()  # the declaration with nothing chosen: the error, in Welsh
    assert page.locator(".nhsuk-error-summary").count() == 1
    page.locator("#conflict").check()  # no conflict
    press_first_button()  # declared: the discussion, readability, votes and opinion forms
    assert page.locator("#category").count() == 1


def test_oversight_pages_in_welsh(portal_page):
    """The audit trail browser (with a filter error) and every dashboard, in Welsh; the charts'
    labels come from the server, so they are Welsh too."""
    page = portal_page.page
    portal_page.goto("/account/sign-in")
    portal_page.submit("Cymraeg")
    portal_page.sign_in(*ACCOUNTS[Role.PANEL_CHAIR])
    assert page.locator("html").get_attribute("lang") == "cy"
    portal_page.goto("/oversight/")
    portal_page.goto("/oversight/audit?patient=neb%40example.org&date_from=2026-13-40")
    assert page.locator(".nhsuk-error-summary").count() == 1
    assert "There is a problem" not in page.locator("main").inner_text()
    portal_page.goto("/oversight/audit")
    for path in ("", "/consent", "/comprehension", "/withdrawals", "/concerns", "/reviews"):
        portal_page.goto(f"/oversight/dashboards{path}")
        text = page.locator("main").inner_text()
        assert "Consent funnel" not in text and "Figures:" not in text
    portal_page.assert_all_pages_checked()
