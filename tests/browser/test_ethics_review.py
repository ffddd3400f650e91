"""Ethics review in the browser: an investigator submits a protocol with a consent document;
the chair assigns a reviewer; one member declares a conflict and is recused; the others vote;
the chair records a favourable opinion with a condition, then marks it met; the document can
then be offered to a patient. Every page passes axe."""

from __future__ import annotations

import re

from weasyprint import HTML

from portal.cli.demo import DEMO_ACCOUNTS, DEMO_PANEL
from portal.consent.document_format import read_all
from portal.consent.documents import import_documents
from portal.core import audit
from portal.core.permissions import Role
from portal.extensions import db
from tests.consent.doc_fixtures import write_example


def account(role: Role) -> tuple[str, str]:
    return next((email, pw) for r, email, _n, pw in DEMO_ACCOUNTS if r == role)


def click_link(portal_page, name) -> None:
    with portal_page.page.expect_navigation():
        portal_page.page.get_by_role("link", name=name).first.click()
    portal_page.check_accessibility()


def _member_accounts() -> list[tuple[str, str, str]]:
    """(email, password, name) of every panel member but the chair."""
    password = account(Role.PANEL_MEMBER)[1]
    first = next((e, n) for r, e, n, _p in DEMO_ACCOUNTS if r == Role.PANEL_MEMBER)
    return [(first[0], password, first[1])] + [(e, password, n) for _m, e, n in DEMO_PANEL]


def test_from_submission_to_a_document_patients_can_be_offered(portal_page, live_server, tmp_path):
    page = portal_page.page
    docs = tmp_path / "docs"
    write_example(docs, "1.0")
    with live_server.app.app_context():
        import_documents(db.session, read_all(docs), audit.SYSTEM)
        db.session.commit()
    protocol_pdf = tmp_path / "protocol.pdf"
    protocol_pdf.write_bytes(HTML(string="<h1>Sleep diary protocol</h1>").write_pdf())

    # The investigator submits, with a mistake first (no file): a clear error.
    portal_page.sign_in(*account(Role.INVESTIGATOR))
    click_link(portal_page, "Submit a new protocol")
    page.get_by_label("Title of the protocol").fill("The sleep diary study")
    page.get_by_label("Reference").fill("IRAS 340002")
    page.get_by_label("Chief investigator").fill("Prof Priya Shah")
    page.get_by_label("Trial locations").fill("Cardiff Trauma Clinic")
    page.get_by_label("Summary of the study").fill("Patients keep a sleep diary during therapy.")
    page.get_by_label("diary-study v1.0 (draft)").check()
    portal_page.submit("Submit for ethics review")
    assert "Attach the protocol document" in page.locator(".nhsuk-error-summary").inner_text()
    page.get_by_label("Protocol document").set_input_files(str(protocol_pdf))
    page.get_by_label("diary-study v1.0 (draft)").check()
    portal_page.submit("Submit for ethics review")
    assert "Day 0 of 60" in page.locator("main").inner_text()
    reference = re.search(r"S-\d{5}", page.locator("h1").inner_text())[0]
    portal_page.submit("Sign out")

    # The chair declares no interest and assigns a reviewer.
    portal_page.sign_in(*account(Role.PANEL_CHAIR))
    portal_page.goto("/review/panel")
    click_link(portal_page, reference)
    page.get_by_label("I have no conflict of interest in this submission").check()
    portal_page.submit("Record my declaration")
    page.get_by_label("Assign a reviewer").select_option(label="Mair Williams")
    portal_page.submit("Assign the reviewer")
    assert "Mair Williams" in page.locator(".nhsuk-summary-list").inner_text()
    page.get_by_label("For", exact=True).check()
    portal_page.submit("Cast my vote")
    submission_url = page.url
    portal_page.submit("Sign out")

    # One member declares a conflict and is recused; the six others vote.
    members = _member_accounts()
    conflicted = members[-1]
    portal_page.sign_in(conflicted[0], conflicted[1])
    portal_page.goto(submission_url.removeprefix(live_server.url))
    page.get_by_label("I have a conflict of interest: I will be recused").check()
    portal_page.submit("Record my declaration")  # no details: a clear error first
    assert "Describe the conflict" in page.locator(".nhsuk-error-summary").inner_text()
    page.get_by_label("I have a conflict of interest: I will be recused").check()
    page.get_by_label("Details of the interest").fill("I supervised the chief investigator.")
    portal_page.submit("Record my declaration")
    main = page.locator("main").inner_text()
    assert "You are recused" in main
    assert page.get_by_role("button", name="Cast my vote").count() == 0
    portal_page.submit("Sign out")

    for email, password, name in members[:-1]:
        portal_page.sign_in(email, password)
        portal_page.goto(submission_url.removeprefix(live_server.url))
        page.get_by_label("I have no conflict of interest in this submission").check()
        portal_page.submit("Record my declaration")
        if name == "Mair Williams":
            section = page.locator("#about option", has_text="diary-study v1.0: ").first
            page.get_by_label("What the comment is about").select_option(
                value=section.get_attribute("value")
            )
            page.get_by_label("Comment", exact=True).fill(
                "The diary section reads well for patients."
            )
            portal_page.submit("Add the comment")
        page.get_by_label("For", exact=True).check()
        portal_page.submit("Cast my vote")
        portal_page.submit("Sign out")

    # The chair records a favourable opinion with a condition; it is not yet offered.
    portal_page.sign_in(*account(Role.PANEL_CHAIR))
    portal_page.goto(submission_url.removeprefix(live_server.url))
    main = page.locator("main").inner_text()
    assert "Quorum met" in main
    assert "The diary section reads well" in main
    assert "Reading ease" in main
    page.get_by_label("Favourable opinion with additional conditions").check()
    page.get_by_label("Reasons").fill("A low-risk study with a clear information sheet.")
    page.get_by_label("Additional conditions", exact=True).fill("Send the final diary template.")
    portal_page.submit("Record the opinion")
    main = page.locator("main").inner_text()
    assert "Not yet met" in main and "Download the decision letter (PDF)" in main
    portal_page.goto("/consent/documents")
    diary = page.locator("table", has=page.get_by_text("Versions of diary-study"))
    assert "Approved" in diary.inner_text()  # approved, but not in use until the condition is met
    portal_page.goto(submission_url.removeprefix(live_server.url))
    page.get_by_label("Evidence that the condition is met").fill("Template received 26/11.")
    portal_page.submit("Mark as met")
    assert "Template received" in page.locator("main").inner_text()
    portal_page.submit("Sign out")

    # The therapist can now offer the document to a patient, who sees it.
    portal_page.sign_in(*account(Role.THERAPIST))
    portal_page.goto("/consent/team")
    portal_page.submit("Offer diary-study v1.0 to Sam Taylor")
    portal_page.submit("Sign out")
    portal_page.sign_in(*account(Role.PATIENT))
    assert "The sleep diary study" in page.locator("main").inner_text()
    portal_page.assert_all_pages_checked()
