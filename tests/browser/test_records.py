"""The demo patient with a complete consent downloads their sealed record, and anyone checks it."""

from __future__ import annotations

import re

from portal.cli.demo import DEMO_CONSENTED_PATIENT


def test_download_the_record_and_check_it_on_the_public_page(portal_page, tmp_path):
    email, _name, password = DEMO_CONSENTED_PATIENT
    page = portal_page.page
    portal_page.sign_in(email, password)
    link = page.get_by_role("link", name=re.compile("Download your signed record"))
    with page.expect_download() as download_info:
        link.click()
    path = tmp_path / "record.pdf"
    download_info.value.save_as(path)
    assert path.read_bytes().startswith(b"%PDF-")
    portal_page.submit("Sign out")

    portal_page.goto("/records/verify")
    page.get_by_label("The PDF to check").set_input_files(str(path))
    portal_page.submit("Check the record")
    assert page.get_by_role("heading", name="Genuine and unaltered").is_visible()

    portal_page.submit("Check the record")  # nothing chosen: a clear error, focused
    assert "Choose a PDF file to check" in page.locator(".nhsuk-error-summary").inner_text()
