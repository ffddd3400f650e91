"""A patient goes from invitation to a countersigned consent in the browser, twice: with the
mouse (a drawn signature, a wrong answer and a teach-back cycle) and with the keyboard alone."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from portal.accounts.models import User
from portal.cli.demo import DEMO_ACCOUNTS
from portal.consent.journey_models import Consent
from portal.core.permissions import Role
from portal.extensions import db

THERAPIST = next((e, p) for r, e, _n, p in DEMO_ACCOUNTS if r == Role.THERAPIST)
PASSWORD = "a calm and long password"


def invite_and_offer(portal_page, live_server, name: str, email: str) -> str:
    """The therapist invites a new patient, who accepts; the therapist offers the document."""
    page = portal_page.page
    portal_page.sign_in(*THERAPIST)
    portal_page.goto("/account/patients/invite")
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Email address").fill(email)
    portal_page.submit("Create invitation")
    link = re.search(r"http://[^\s<]+/account/invitation/[A-Za-z0-9_-]+", page.content())[0]
    portal_page.submit("Sign out")

    portal_page.goto("/" + link.split("/", 3)[3])
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm new password").fill(PASSWORD)
    portal_page.submit("Create my account")
    portal_page.submit("Sign out")

    portal_page.sign_in(*THERAPIST)
    portal_page.goto("/consent/team")
    portal_page.submit(f"Offer mdma-ptsd-trial v1.0 to {name}")
    portal_page.submit("Sign out")
    return email


def consent_of(live_server, email: str) -> Consent:
    with live_server.app.app_context():
        user = User.by_email(db.session, email)
        consent = db.session.scalars(select(Consent).where(Consent.patient_id == user.id)).one()
        questions = [(q.prompt, q.choices, q.answer, q.key) for q in consent.text.questions]
        return consent.id, questions


def pass_cooling_off(live_server, consent_id: int) -> None:
    """Time passes: the patient opened the document more than a day ago."""
    with live_server.app.app_context():
        consent = db.session.get(Consent, consent_id)
        consent.opened_at -= dt.timedelta(hours=25)
        db.session.commit()


def read_all_sections(portal_page, press) -> None:
    page = portal_page.page
    while True:
        if page.get_by_role("link", name="Read the section").count():
            link = page.get_by_role("link", name="Read the section")
            with page.expect_navigation():
                press(link)
            portal_page.check_accessibility()
        last = page.get_by_role("button", name="I have read every section")
        button = last if last.count() else page.get_by_role("button", name="Next section")
        with page.expect_navigation():
            press(button)
        portal_page.check_accessibility()
        if last.count() == 0 and "/read/" not in page.url:
            return
        if "/comprehension/" in page.url:
            return


def answer(portal_page, press, questions, wrong_first: bool = False) -> None:
    page = portal_page.page
    for prompt, choices, correct, _key in questions:
        wanted = next(c["text"] for c in choices if c["id"] == correct)
        if wrong_first:
            wrong = next(c["text"] for c in choices if c["id"] != correct)
            for _attempt in range(2):
                press(page.get_by_label(wrong, exact=True), check=True)
                with page.expect_navigation():
                    press(page.get_by_role("button", name="Check my answer"))
                portal_page.check_accessibility()
                assert page.get_by_role("heading", name="Not quite").is_visible()
                with page.expect_navigation():
                    press(
                        page.get_by_role("link", name=re.compile("Try the question again|Carry on"))
                    )
                portal_page.check_accessibility()
            wrong_first = False
            continue
        press(page.get_by_label(wanted, exact=True), check=True)
        with page.expect_navigation():
            press(page.get_by_role("button", name="Check my answer"))
        portal_page.check_accessibility()


def test_patient_journey_with_the_mouse_and_a_teach_back(portal_page, live_server):
    page = portal_page.page
    email = invite_and_offer(portal_page, live_server, "Nia Williams", "nia@example.org")
    consent_id, questions = consent_of(live_server, email)

    def click(locator, check=False):
        locator.check() if check else locator.click()

    portal_page.sign_in(email, PASSWORD)
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("Start reading")).click()
    portal_page.check_accessibility()
    read_all_sections(portal_page, click)

    # The first question: wrong twice, which asks the therapist for a teach-back.
    answer(portal_page, click, questions[:1], wrong_first=True)
    answer(portal_page, click, questions[1:])
    assert page.get_by_role("heading", level=1).inner_text().startswith("Talking it through")
    portal_page.submit("Sign out")

    portal_page.sign_in(*THERAPIST)
    portal_page.goto("/consent/team")
    with page.expect_navigation():
        page.get_by_role("link", name="Talk a question through with Nia Williams").click()
    portal_page.check_accessibility()
    page.get_by_label("What you discussed").fill("We talked about what the study is for.")
    portal_page.submit("Record and unlock the question")
    portal_page.submit("Sign out")

    portal_page.sign_in(email, PASSWORD)
    portal_page.goto(f"/consent/{consent_id}")
    answer(portal_page, click, questions[:1])
    for label in page.get_by_label("No", exact=True).all():
        label.check()
    portal_page.submit("Save my choices")
    pass_cooling_off(live_server, consent_id)
    portal_page.goto(f"/consent/{consent_id}/sign")
    page.get_by_label(re.compile("I have read and understood")).check()
    page.get_by_label("Type your full name").fill("Nia Williams")
    page.get_by_label("Draw my signature").check()
    canvas = page.get_by_role("img", name=re.compile("sign in the box"))
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 100)
    page.mouse.down()
    for step in range(1, 12):
        page.mouse.move(box["x"] + 20 + step * 25, box["y"] + 100 + (-1) ** step * 30)
    page.mouse.up()
    page.get_by_label("Your password").fill(PASSWORD)
    portal_page.submit("Sign my consent")
    assert page.get_by_text("Thank you. You have signed.").is_visible(), page.locator(
        "main"
    ).inner_text()[:600]
    portal_page.submit("Sign out")

    portal_page.sign_in(*THERAPIST)
    portal_page.goto(f"/consent/team/{consent_id}/countersign")
    page.get_by_label(re.compile("I discussed the study")).check()
    page.get_by_label("I checked the patient's identity").check()
    page.get_by_label("Your password").fill(THERAPIST[1])
    portal_page.submit("Countersign")
    assert page.get_by_text("Nia Williams's consent is complete").is_visible()
    with live_server.app.app_context():
        consent = db.session.get(Consent, consent_id)
        assert consent.status == "complete"
        assert consent.signatures[0].method == "drawn"
        assert consent.signatures[0].image_png.startswith(b"\x89PNG")


def test_patient_journey_with_the_keyboard_alone(portal_page, live_server):
    page = portal_page.page
    email = invite_and_offer(portal_page, live_server, "Owain Hughes", "owain@example.org")
    consent_id, questions = consent_of(live_server, email)

    def keyboard(locator, check=False):
        locator.focus()
        page.keyboard.press("Space" if check else "Enter")

    def fits_the_screen() -> None:
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"

    page.set_viewport_size({"width": 360, "height": 740})  # a small phone

    portal_page.sign_in(email, PASSWORD)
    portal_page.goto(f"/consent/{consent_id}")
    fits_the_screen()
    read_all_sections(portal_page, keyboard)
    fits_the_screen()
    answer(portal_page, keyboard, questions)
    for radio in page.get_by_label("No", exact=True).all():
        radio.focus()
        page.keyboard.press("Space")
    with page.expect_navigation():
        keyboard(page.get_by_role("button", name="Save my choices"))
    portal_page.check_accessibility()
    pass_cooling_off(live_server, consent_id)
    portal_page.goto(f"/consent/{consent_id}/sign")
    fits_the_screen()
    keyboard(page.get_by_label(re.compile("I have read and understood")), check=True)
    page.get_by_label("Type your full name").focus()
    page.keyboard.type("Owain Hughes")
    keyboard(page.get_by_label(re.compile("Use my typed name as my signature")), check=True)
    page.get_by_label("Your password").focus()
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    portal_page.check_accessibility()
    assert page.get_by_text("Thank you. You have signed.").is_visible()
    with page.expect_navigation():
        keyboard(page.get_by_role("button", name="Sign out"))
    portal_page.check_accessibility()

    # The therapist witnesses the typed name and countersigns, by keyboard too.
    portal_page.sign_in(*THERAPIST)
    portal_page.goto(f"/consent/team/{consent_id}/countersign")
    fits_the_screen()
    keyboard(page.get_by_label(re.compile("I discussed the study")), check=True)
    keyboard(page.get_by_label("I checked the patient's identity"), check=True)
    keyboard(page.get_by_label(re.compile("I witnessed the patient typing")), check=True)
    page.get_by_label("Your password").focus()
    page.keyboard.type(THERAPIST[1])
    with page.expect_navigation():
        page.keyboard.press("Enter")
    portal_page.check_accessibility()
    with live_server.app.app_context():
        consent = db.session.get(Consent, consent_id)
        assert consent.status == "complete"
        assert consent.signatures[0].method == "typed"
