"""Staff and the panel read every version, its elements and readability, and its redline."""

from __future__ import annotations

import pytest

from portal.core.permissions import Role
from tests.consent.doc_fixtures import write_example
from tests.factories import create_account
from tests.helpers import PortalClient


@pytest.fixture
def docs_app(make_app, sqlite_url, tmp_path):
    root = tmp_path / "consent_docs"
    write_example(root, "1.0")
    write_example(root, "1.1", body_change="Writing about nightmares can be very upsetting.")
    app = make_app(sqlite_url, CONSENT_DOCS_PATH=str(root))
    assert app.test_cli_runner().invoke(args=["docs", "import"]).exit_code == 0
    admin = create_account(app, Role.ADMINISTRATOR)
    runner = app.test_cli_runner()
    for step in ("submit", "approve", "activate"):
        args = ["docs", step, "diary-study", "1.0", "--by", admin.email]
        assert (
            runner.invoke(
                args=args + (["--reference", "R1"] if step == "approve" else [])
            ).exit_code
            == 0
        )
    runner.invoke(args=["docs", "submit", "diary-study", "1.1", "--by", admin.email])
    return app


def panel_client(app) -> PortalClient:
    member = create_account(app, Role.PANEL_MEMBER)
    client = PortalClient(app)
    client.login(member.email, member.password)
    return client


def test_document_list_shows_versions_and_status(docs_app):
    page = panel_client(docs_app).get("/consent/documents").text
    assert "diary-study" in page
    assert "In use" in page and "Submitted for review" in page
    assert "Compare with 1.0" in page


def test_version_page_shows_the_text_elements_readability_and_answers(docs_app):
    page = panel_client(docs_app).get("/consent/documents/diary-study/1.0/en-GB").text
    assert "The sleep diary study: information and consent" in page
    assert "Foreseeable risks and discomforts" in page  # element label
    assert "Reading ease" in page
    assert "This section mentions nightmares." in page  # content note
    assert "(correct)" in page
    assert "Keep what I have already written" in page


def test_welsh_version_is_marked_as_welsh(docs_app):
    page = panel_client(docs_app).get("/consent/documents/diary-study/1.0/cy").text
    assert '<h1 lang="cy">Astudiaeth y dyddiadur cwsg' in page
    assert "Reading ease" not in page  # Flesch is for English only


def test_redline_page_shows_the_changed_words(docs_app):
    response = panel_client(docs_app).get(
        "/consent/documents/diary-study/compare?from=1.0&to=1.1&language=en-GB"
    )
    assert response.status_code == 200
    assert "1 section changed." in response.text
    assert '<ins class="app-redline__added">' in response.text
    assert " very</ins>" in response.text.replace(
        '<span class="nhsuk-u-visually-hidden">]</span>', ""
    )


@pytest.mark.parametrize(
    "url",
    [
        "/consent/documents/diary-study/9.9/en-GB",
        "/consent/documents/diary-study/1.0/fr",
        "/consent/documents/nothing/1.0/en-GB",
        "/consent/documents/diary-study/compare?from=1.0&to=x",
        "/consent/documents/diary-study/compare?from=1.0&to=1.1&language=de",
    ],
)
def test_unknown_versions_and_languages_are_not_found(docs_app, url):
    assert panel_client(docs_app).get(url).status_code == 404


def test_patients_cannot_read_the_staff_document_pages(docs_app):
    patient = create_account(docs_app, Role.PATIENT)
    client = PortalClient(docs_app)
    client.login(patient.email, patient.password)
    assert client.get("/consent/documents/diary-study/1.0/en-GB").status_code == 403
