"""Withdrawal in the browser: from one optional item, then from the whole study, and from the
middle of reading; what the therapist then sees. Every page and error state passes axe."""

from __future__ import annotations

import re

from portal.cli.demo import DEMO_ACCOUNTS, DEMO_CONSENTED_PATIENT
from portal.core.permissions import Role

THERAPIST_EMAIL, THERAPIST_PASSWORD = next(
    (email, password) for role, email, _name, password in DEMO_ACCOUNTS if role == Role.THERAPIST
)


def open_withdrawal(portal_page) -> None:
    """The "Withdraw" link in the header, as a patient finds it on any page."""
    page = portal_page.page
    with page.expect_navigation():
        page.get_by_role("link", name="Withdraw", exact=True).first.click()
    portal_page.check_accessibility()
    assert page.get_by_role("heading", name="Withdraw", exact=True).is_visible()


def confirm_with_password(portal_page, password: str) -> None:
    page = portal_page.page
    assert page.get_by_role("heading", name="Confirm your withdrawal").is_visible()
    page.get_by_label("Your password").fill(password)
    portal_page.submit("Confirm and withdraw")


def test_withdraw_from_one_item_then_from_the_study(portal_page):
    email, _name, password = DEMO_CONSENTED_PATIENT
    page = portal_page.page
    portal_page.sign_in(email, password)

    # Step one with nothing chosen: a clear error, and axe passes on the error state too.
    open_withdrawal(portal_page)
    portal_page.submit("Continue")
    assert "Choose one of the options shown" in page.locator(".nhsuk-error-summary").inner_text()

    # One optional item: the item question is revealed under the choice.
    page.get_by_label("Take back one of the optional choices you agreed to").check()
    page.get_by_label(re.compile("contact me about future studies")).check()
    portal_page.submit("Continue")
    assert "Nothing changes" not in page.content()  # now on the confirm page
    confirm_with_password(portal_page, password)
    assert page.get_by_role("heading", name="Optional item withdrawn").is_visible()
    assert page.get_by_role("link", name="Download the receipt (PDF)").is_visible()

    # Then the whole study: the document's default data option is already chosen.
    open_withdrawal(portal_page)
    page.get_by_label("Stop taking part in the study").check()
    assert page.get_by_label(re.compile("Keep and use what has been collected")).is_checked()
    portal_page.submit("Continue")
    page.get_by_label("Your password").fill("not my password")
    portal_page.submit("Confirm and withdraw")
    assert "Your password is not correct" in page.locator(".nhsuk-error-summary").inner_text()
    confirm_with_password(portal_page, password)
    assert page.get_by_role("heading", name="Withdrawn from the study").is_visible()
    portal_page.submit("Sign out")

    # The therapist sees both at once, and marks them dealt with.
    portal_page.sign_in(THERAPIST_EMAIL, THERAPIST_PASSWORD)
    portal_page.goto("/consent/team")
    callout = page.locator(".nhsuk-warning-callout", has_text="Withdrawals to act on")
    assert callout.get_by_role("link").count() == 2
    row = page.locator("tr", has_text="Alex Rivera")
    assert "Withdrawn" in row.inner_text()
    assert "Withdrew from: I agree that the study team may contact me" in row.inner_text()
    with page.expect_navigation():
        callout.get_by_role("link", name=re.compile("Stopped taking part")).click()
    portal_page.check_accessibility()
    portal_page.submit("Mark as dealt with: future sessions cancelled and the change passed on")
    assert callout.locator("li").count() == 1  # the other callouts list other work
    portal_page.goto("/notifications/")
    assert page.get_by_role("heading", name=re.compile("consent has changed")).count() == 2
    portal_page.submit("Sign out")


def test_withdraw_while_still_reading(portal_page):
    email, password = next(
        (email, password) for role, email, _n, password in DEMO_ACCOUNTS if role == Role.PATIENT
    )
    page = portal_page.page
    portal_page.sign_in(email, password)
    portal_page.goto("/consent/")
    open_withdrawal(portal_page)
    # Before consenting, only leaving applies, and no data question is asked.
    assert page.get_by_label("Stop the treatment sessions, but stay in the study").count() == 0
    page.get_by_label("Stop taking part in the study").check()
    page.get_by_label("If you want to, tell us why (optional)").fill("Not the right time for me.")
    portal_page.submit("Continue")
    confirm_with_password(portal_page, password)
    assert page.get_by_role("heading", name="Withdrawn from the study").is_visible()
    portal_page.goto("/consent/")
    assert page.get_by_role("link", name="Withdraw", exact=True).count() == 0
    assert "you withdrew" in page.locator("main").inner_text()


def test_help_for_a_patient_who_cannot_sign_in(portal_page):
    page = portal_page.page
    portal_page.goto("/account/sign-in")
    with page.expect_navigation():
        page.get_by_role("link", name="Want to withdraw from a study but cannot sign in?").click()
    portal_page.check_accessibility()
    assert page.get_by_role("heading", name="Withdraw without signing in").is_visible()
