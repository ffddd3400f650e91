"""Each role signs in through the browser and lands on its own page; every page passes axe."""

from __future__ import annotations

import re

import pytest

from portal.cli.demo import DEMO_ACCOUNTS
from portal.core.permissions import Role

LANDINGS = {
    # A patient who has been offered a document can withdraw from every page.
    Role.PATIENT: ("/consent/", "Your consent", ["Your consent", "Withdraw"]),
    Role.THERAPIST: (
        "/consent/team",
        "Consent",
        ["Consent", "Patients", "Invite a patient", "Consent documents", "Notifications"],
    ),
    Role.INVESTIGATOR: (
        "/review/",
        "Submissions",
        ["Submissions", "Consent documents", "Notifications"],
    ),
    Role.PANEL_MEMBER: (
        "/oversight/",
        "Oversight",
        ["Oversight", "Ethics review", "Concerns", "Consent documents", "Notifications"],
    ),
    Role.PANEL_CHAIR: (
        "/oversight/",
        "Oversight",
        ["Oversight", "Ethics review", "Concerns", "Consent documents", "Notifications"],
    ),
    Role.ADMINISTRATOR: (
        "/account/staff",
        "Accounts",
        ["Staff accounts", "Invite staff", "Consent documents", "Outbox", "Notifications"],
    ),
}


@pytest.mark.parametrize(
    ("role", "email", "name", "password"),
    DEMO_ACCOUNTS,
    ids=[str(account[0]) for account in DEMO_ACCOUNTS],
)
def test_each_role_lands_on_its_own_page(portal_page, role, email, name, password):
    portal_page.sign_in(email, password)
    path, heading, menu = LANDINGS[role]
    page = portal_page.page
    assert page.url.endswith(path)
    assert page.get_by_role("heading", level=1).inner_text() == heading
    navigation = page.get_by_role("navigation", name="Main menu")
    links = navigation.get_by_role("link").all_inner_texts()
    # The demo leaves some staff with news (a decision letter, a submission to review).
    assert [re.sub(r" \(\d+ new\)$", "", text) for text in links] == menu
    assert page.get_by_text(name).first.is_visible()

    portal_page.submit("Sign out")
    assert page.url.endswith("/account/sign-in")
    assert page.get_by_text("You have signed out.").is_visible()


def test_sign_in_error_summary_is_focused_and_accessible(portal_page):
    portal_page.goto("/account/sign-in")
    portal_page.submit("Sign in")
    page = portal_page.page
    summary = page.locator(".nhsuk-error-summary")
    assert summary.is_visible()
    assert "Enter your email address" in summary.inner_text()
    page.wait_for_function("document.activeElement.classList.contains('nhsuk-error-summary')")


def test_error_page_is_accessible(portal_page):
    response = portal_page.goto("/no/such/page")
    assert response.status == 404
    assert portal_page.page.get_by_role("heading", level=1).inner_text() == "Page not found"


def test_language_switch_is_on_every_page(portal_page):
    portal_page.goto("/account/sign-in")
    portal_page.submit("Cymraeg")
    page = portal_page.page
    assert page.locator("html").get_attribute("lang") == "cy"
    portal_page.submit("English")
    assert page.locator("html").get_attribute("lang") == "en-GB"


def test_the_accessibility_check_catches_a_violation(portal_page):
    """Guard against a vacuous check: an unlabelled field must fail it."""
    portal_page.goto("/account/sign-in")
    portal_page.page.evaluate(
        "document.querySelector('main').insertAdjacentHTML('beforeend', '<input type=text>')"
    )
    with pytest.raises(AssertionError, match="accessibility violations"):
        portal_page.check_accessibility()


def test_two_step_verification_set_up_page_is_accessible(portal_page, live_server):
    """A new staff member's first sign-in: the set-up page with its QR code, then the codes."""
    from portal.accounts.services import create_user
    from portal.core import audit
    from portal.extensions import db

    with live_server.app.app_context():
        create_user(
            db.session,
            email="new.staff@example.org",
            full_name="New Staff",
            role=Role.INVESTIGATOR,
            password="a long enough password",
            actor=audit.SYSTEM,
        )
        db.session.commit()
    portal_page.goto("/account/sign-in")
    page = portal_page.page
    page.get_by_label("Email address").fill("new.staff@example.org")
    page.get_by_label("Password").fill("a long enough password")
    portal_page.submit("Sign in")
    assert page.get_by_role("heading", level=1).inner_text() == "Set up two-step verification"
    assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
    secret = page.locator(".app-totp-key").inner_text()
    import pyotp

    page.get_by_label("Code from your app").fill(pyotp.TOTP(secret).now())
    portal_page.submit("Turn on two-step verification")
    assert page.get_by_role("heading", name="Your recovery codes").is_visible()
    assert page.locator(".app-recovery-codes li").count() == 10
