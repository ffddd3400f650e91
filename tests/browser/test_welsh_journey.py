"""The patient journey in Welsh, by keyboard alone, on a 360 px phone; the main pages at 200 %
zoom; every page and error state passes axe, and a failed submit moves focus to the error
summary."""

from __future__ import annotations

import re

from flask_babel import force_locale, gettext
from sqlalchemy import select

from portal.accounts.models import User
from portal.cli.demo import DEMO_ACCOUNTS
from portal.consent.journey_models import Consent
from portal.core.permissions import Role
from portal.extensions import db

PATIENT = next((e, p) for r, e, _n, p in DEMO_ACCOUNTS if r == Role.PATIENT)


def welsh(live_server, text: str, **values) -> str:
    """The Welsh the portal shows for an English message."""
    with live_server.app.test_request_context(), force_locale("cy"):
        return gettext(text, **values)


def fits_the_screen(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at {page.viewport_size}"


def press(page, locator, key: str = "Enter") -> None:
    """Reach a control with the Tab key alone, then press it."""
    for _step in range(200):
        if locator.evaluate("element => element === document.activeElement"):
            page.keyboard.press(key)
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {locator}")


def choose(page, radio) -> None:
    """Tab into the radio group, then move to the choice with the arrow keys (which select)."""
    name = radio.get_attribute("name")
    for _step in range(200):
        if page.evaluate("document.activeElement && document.activeElement.name") == name:
            break
        page.keyboard.press("Tab")
    for _step in range(20):
        if radio.evaluate("element => element === document.activeElement"):
            page.keyboard.press("Space")
            return
        page.keyboard.press("ArrowDown")
    raise AssertionError(f"the arrow keys never reached {radio}")


def submit(portal_page, locator) -> None:
    with portal_page.page.expect_navigation():
        press(portal_page.page, locator)
    portal_page.check_accessibility()
    fits_the_screen(portal_page.page)


def error_summary_has_focus(page) -> bool:
    return page.evaluate(
        "document.activeElement && document.activeElement.classList.contains('nhsuk-error-summary')"
    )


def test_the_journey_in_welsh_by_keyboard_on_a_small_phone(portal_page, live_server):
    page = portal_page.page
    page.set_viewport_size({"width": 360, "height": 740})
    cy = lambda text, **values: welsh(live_server, text, **values)  # noqa: E731
    portal_page.goto("/account/sign-in")
    submit(portal_page, page.get_by_role("button", name="Cymraeg"))
    portal_page.sign_in(*PATIENT)
    assert page.locator("html").get_attribute("lang") == "cy"
    with live_server.app.app_context():
        patient = User.by_email(db.session, PATIENT[0])
        consent = db.session.scalars(select(Consent).where(Consent.patient_id == patient.id)).one()
        consent_id = consent.id
        answers = {
            q.prompt: next(c["text"] for c in q.choices if c["id"] == q.answer)
            for q in consent.questions
        }

    # Read every section, pressing the buttons with the keyboard.
    portal_page.goto(f"/consent/{consent_id}")
    fits_the_screen(page)
    while "/read/" in page.url:
        read = page.get_by_role("link", name=cy("Read the section"))
        if read.count():
            submit(portal_page, read)
        last = page.get_by_role("button", name=cy("I have read every section"))
        submit(
            portal_page,
            last if last.count() else page.get_by_role("button", name=cy("Next section")),
        )

    # A failed submit: the error summary takes the focus, in Welsh, and axe passes.
    assert "/comprehension/" in page.url
    submit(portal_page, page.get_by_role("button", name=cy("Check my answer")))
    assert error_summary_has_focus(page)
    while "/comprehension/" in page.url:
        prompt = page.locator("legend").first.inner_text().strip()
        choose(page, page.get_by_label(answers[prompt], exact=True))
        submit(portal_page, page.get_by_role("button", name=cy("Check my answer")))
        if page.get_by_role("link", name=re.compile(re.escape(cy("Carry on")))).count():
            submit(
                portal_page, page.get_by_role("link", name=re.compile(re.escape(cy("Carry on"))))
            )

    # Choices: no to each, with the space bar.
    assert "/choices" in page.url
    for radio in page.get_by_label(cy("No"), exact=True).all():
        choose(page, radio)
    submit(portal_page, page.get_by_role("button", name=cy("Save my choices")))

    # Sign: first with nothing filled in (errors, focused), then properly, typed not drawn.
    assert "/sign" in page.url
    sign = page.get_by_role("button", name=cy("Sign my consent"))
    submit(portal_page, sign)
    assert error_summary_has_focus(page)
    press(page, page.locator("#attest"), key="Space")
    press(page, page.locator("#typed_name"), key="Home")
    page.keyboard.type("Sam Taylor")
    choose(page, page.locator("input[name=method][value=typed]"))
    press(page, page.locator("#password"), key="Home")
    page.keyboard.type(PATIENT[1])
    submit(portal_page, page.get_by_role("button", name=cy("Sign my consent")))
    thanks = (
        "Thank you. You have signed. Your therapist will now countersign, and you will get a copy."
    )
    assert cy(thanks) in page.content()
    with live_server.app.app_context():
        assert db.session.get(Consent, consent_id).status == "signed"


def test_the_main_pages_at_200_percent_zoom(portal_page, live_server):
    """A 1280 px screen at 200 % zoom shows 640 CSS pixels: nothing may scroll sideways."""
    page = portal_page.page
    page.set_viewport_size({"width": 640, "height": 800})
    from portal.cli.demo import DEMO_CONSENTED_PATIENT

    email, _name, password = DEMO_CONSENTED_PATIENT
    portal_page.sign_in(email, password)
    for path in (
        "/consent/",
        "/withdraw/",
        "/concerns/new",
        "/concerns/mine",
        "/records/verify",
        "/account/sessions",
    ):
        portal_page.goto(path)
        fits_the_screen(page)
    portal_page.goto("/concerns/new")
    with page.expect_navigation():
        page.locator("main button.nhsuk-button").first.click()
    portal_page.check_accessibility()
    assert error_summary_has_focus(page)
    fits_the_screen(page)
