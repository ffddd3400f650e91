"""A concern in the browser: a patient reports it; the chair triages and puts the therapist on
hold; the therapist cannot countersign; notes and the therapist's response; the outcome; the
patient sees the status. Every page passes axe."""

from __future__ import annotations

import datetime as dt
import re

from portal.cli.demo import DEMO_ACCOUNTS, DEMO_CONSENTED_PATIENT
from portal.core.permissions import Role


def account(role: Role) -> tuple[str, str]:
    return next((email, pw) for r, email, _n, pw in DEMO_ACCOUNTS if r == role)


def click_link(portal_page, name) -> None:
    with portal_page.page.expect_navigation():
        portal_page.page.get_by_role("link", name=name).first.click()
    portal_page.check_accessibility()


def test_a_concern_from_report_to_outcome(portal_page):
    page = portal_page.page
    email, _name, password = DEMO_CONSENTED_PATIENT
    portal_page.sign_in(email, password)
    click_link(portal_page, "Report a concern about a therapist")
    portal_page.submit("Send to the ethics panel")  # empty: clear errors, axe on the error state
    summary = page.locator(".nhsuk-error-summary").inner_text()
    assert "Choose the therapist your concern is about" in summary
    page.get_by_label("Which therapist is your concern about?").select_option(
        label="Dr Rhian Evans"
    )
    page.get_by_label("Physical touch beyond what the study allows").check()
    today = dt.date.today()
    page.get_by_label("Day").fill(str(today.day))
    page.get_by_label("Month").fill(str(today.month))
    page.get_by_label("Year").fill(str(today.year))
    page.get_by_label("During a dosing session (when the medicine was taken)").check()
    page.get_by_label("What happened?").fill("They kept holding my hand after I said no.")
    page.get_by_label("I am not sure").last.check()
    portal_page.submit("Send to the ethics panel")
    assert page.get_by_role("heading", name="Your concern has been sent").is_visible()
    assert "116 123" in page.locator("main").inner_text()
    reference = re.search(r"C-\d{5}", page.locator("main").inner_text())[0]
    portal_page.submit("Sign out")

    # The chair triages it and places the therapist on hold.
    portal_page.sign_in(*account(Role.PANEL_CHAIR))
    click_link(portal_page, "Concerns")
    click_link(portal_page, reference)
    page.get_by_label("Serious", exact=True).check()
    page.get_by_label(re.compile("Place the therapist on hold")).check()
    portal_page.submit("Record the triage")
    assert "Therapist on hold" in page.locator("main").inner_text()
    page.get_by_label("Note").fill("Called the site lead; sessions paused.")
    page.get_by_label("Session recording reference (optional)").fill("Dosing session 2")
    portal_page.submit("Add to the timeline")
    assert "Called the site lead" in page.locator(".app-timeline").inner_text()
    portal_page.submit("Share the allegation and invite a response")
    portal_page.submit("Sign out")

    # The therapist cannot countersign while on hold, and responds to the allegation.
    portal_page.sign_in(*account(Role.THERAPIST))
    portal_page.goto("/consent/team")
    click_link(portal_page, re.compile("Countersign.*Jordan Lee"))
    page.get_by_label(re.compile("I discussed the study")).check()
    page.get_by_label("I checked the patient's identity").check()
    page.get_by_label("Your password").fill(account(Role.THERAPIST)[1])
    portal_page.submit("Countersign")
    assert "cannot take or countersign consent" in page.locator(".nhsuk-error-summary").inner_text()
    portal_page.goto(f"/concerns/{int(reference[2:])}")
    assert "They kept holding my hand" in page.locator("main").inner_text()
    assert "Alex Rivera" not in page.locator("main").inner_text()
    page.get_by_label("Your response").fill("I held their hand briefly when they were distressed.")
    portal_page.submit("Send my response")
    portal_page.submit("Sign out")

    # The chair records the outcome: retraining; the safeguard hold is lifted.
    portal_page.sign_in(*account(Role.PANEL_CHAIR))
    portal_page.goto(f"/concerns/{int(reference[2:])}")
    assert "I held their hand briefly" in page.locator("main").inner_text()
    page.get_by_label("Retraining or supervision required").check()
    page.get_by_label("Reasons").fill("Touch went beyond the protocol; retraining agreed.")
    portal_page.submit("Record the outcome")
    assert "Retraining or supervision required" in page.locator("main").inner_text()
    portal_page.submit("Sign out")

    # The patient sees the status in general terms.
    portal_page.sign_in(email, password)
    click_link(portal_page, "Your reports")
    assert (
        "the panel looked into your concern and has taken action"
        in page.locator("main").inner_text()
    )
