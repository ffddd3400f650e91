"""Importing document versions, their lifecycle, immutability and what patients are offered."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from portal.consent import documents
from portal.consent.models import (
    ConsentDocument,
    DocumentError,
    DocumentText,
    DocumentVersion,
    VersionStatus,
)
from portal.core.audit import AuditEvent, verify_chain
from portal.core.permissions import Role
from portal.extensions import db
from tests.consent.doc_fixtures import write_example
from tests.factories import create_account


@pytest.fixture
def docs_root(tmp_path):
    root = tmp_path / "consent_docs"
    write_example(root, "1.0")
    return root


@pytest.fixture
def docs_app(make_app, database_url, docs_root):
    return make_app(database_url, CONSENT_DOCS_PATH=str(docs_root))


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_import_creates_a_draft_version_in_both_languages(docs_app):
    result = run(docs_app, "docs", "import")
    assert result.exit_code == 0, result.output
    assert "2 imported, 0 already up to date." in result.output
    with docs_app.app_context():
        version = documents.find_version(db.session, "diary-study", "1.0")
        assert version.status == VersionStatus.DRAFT
        assert version.languages == ["cy", "en-GB"]
        english = version.text_in("en-GB")
        assert [s.key for s in english.sections][:2] == ["about", "risks-and-benefits"]
        assert english.sections[0].elements == [
            "purpose",
            "experimental",
            "participant_count",
            "duration",
            "procedures",
        ]
        assert english.questions[0].choices[0]["id"] == "a"
        assert [o.key for o in english.withdrawal_options if o.is_default] == ["keep"]
        assert version.signatures["impartial_witness"] == "when_needed"
        actions = list(db.session.scalars(select(AuditEvent.action)))
        assert actions.count("document_text.imported") == 2
        imported = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "document_text.imported")
        ).first()
        assert imported.after["content_hash"] in {t.content_hash for t in version.texts}


def test_importing_twice_changes_nothing(docs_app):
    run(docs_app, "docs", "import")
    events = count(docs_app, AuditEvent)
    result = run(docs_app, "docs", "import")
    assert result.exit_code == 0
    assert "0 imported, 2 already up to date." in result.output
    assert count(docs_app, AuditEvent) == events
    assert count(docs_app, DocumentText) == 2


def test_a_changed_published_file_is_refused(docs_app, docs_root):
    run(docs_app, "docs", "import")
    path = docs_root / "diary-study" / "v1.0.en-GB.md"
    path.write_text(
        path.read_text()
        .replace("about 40 people", "about 50 people")
        .replace("About 40 people", "About 50 people")
    )
    result = run(docs_app, "docs", "import")
    assert result.exit_code == 1
    assert (
        "consent_docs/diary-study/v1.0.en-GB.md: version 1.0 (en-GB) was imported with content "
        "hash " in result.output
    )
    assert (
        "and this file now differs; published text never changes, so save the change as a "
        "new version number (e.g. v1.1)"
    ) in result.output
    assert "Nothing imported: 1 problem(s)." in result.output


def test_nothing_is_imported_when_any_file_is_bad(docs_app, docs_root):
    write_example(docs_root, "1.1")
    bad = docs_root / "diary-study" / "v1.1.cy.md"
    bad.write_text(bad.read_text().replace("answer: a", "answer: z"))
    result = run(docs_app, "docs", "import")
    assert result.exit_code == 1
    assert "questions[0].answer: 'z' is not among the choices (a, b)" in result.output
    assert count(docs_app, DocumentText) == 0
    assert count(docs_app, ConsentDocument) == 0


def lifecycle(app, *steps: str, admin_email: str):
    outputs = []
    for step in steps:
        args = ["docs", step, "diary-study", "1.0", "--by", admin_email]
        if step == "approve":
            args += ["--reference", "REC 26/WA/0001"]
        result = run(app, *args)
        outputs.append(result)
        assert result.exit_code == 0, result.output
    return outputs


def test_lifecycle_from_draft_to_active_is_audited(docs_app):
    admin = create_account(docs_app, Role.ADMINISTRATOR)
    run(docs_app, "docs", "import")
    lifecycle(docs_app, "submit", "approve", "activate", admin_email=admin.email)
    with docs_app.app_context():
        version = documents.find_version(db.session, "diary-study", "1.0")
        assert version.status == VersionStatus.ACTIVE
        assert version.approved_by_id == admin.id
        assert version.material_change is False  # a first version changes nothing
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.like("document_version.%"))
            .order_by(AuditEvent.seq)
        ).all()
        assert [e.action for e in events][-3:] == [
            "document_version.submitted",
            "document_version.approved",
            "document_version.active",
        ]
        assert events[-2].reason == "REC 26/WA/0001"
        assert events[-2].actor_id == admin.id
        assert events[-2].before["status"] == "submitted"
        assert verify_chain(db.session).intact


def test_illegal_moves_are_refused_with_a_clear_message(docs_app):
    admin = create_account(docs_app, Role.ADMINISTRATOR)
    run(docs_app, "docs", "import")
    result = run(docs_app, "docs", "activate", "diary-study", "1.0", "--by", admin.email)
    assert result.exit_code != 0
    assert "diary-study v1.0 is draft and cannot become active" in result.output
    therapist = create_account(docs_app, Role.THERAPIST)
    result = run(docs_app, "docs", "submit", "diary-study", "1.0", "--by", therapist.email)
    assert f"{therapist.email} is not an active administrator" in result.output
    result = run(docs_app, "docs", "submit", "diary-study", "9.9", "--by", admin.email)
    assert "there is no version 9.9 of document 'diary-study'" in result.output


def test_a_version_must_exist_in_every_language_to_be_submitted(make_app, database_url, tmp_path):
    root = tmp_path / "docs_en_only"
    write_example(root, "1.0", languages=("en-GB",))
    app = make_app(database_url, CONSENT_DOCS_PATH=str(root))
    admin = create_account(app, Role.ADMINISTRATOR)
    run(app, "docs", "import")
    result = run(app, "docs", "submit", "diary-study", "1.0", "--by", admin.email)
    assert result.exit_code != 0
    assert "diary-study v1.0 has no text in cy yet" in result.output


def test_a_new_version_needs_the_material_change_flag_and_supersedes(docs_app, docs_root):
    admin = create_account(docs_app, Role.ADMINISTRATOR)
    run(docs_app, "docs", "import")
    lifecycle(docs_app, "submit", "approve", "activate", admin_email=admin.email)
    write_example(docs_root, "1.1", body_change="Writing about nightmares can be very upsetting.")
    assert "2 imported" in run(docs_app, "docs", "import").output
    by = ["--by", admin.email]
    run(docs_app, "docs", "submit", "diary-study", "1.1", *by)
    result = run(docs_app, "docs", "approve", "diary-study", "1.1", *by, "--reference", "R2")
    assert result.exit_code != 0
    assert "say whether diary-study v1.1 is a material change from v1.0" in result.output
    result = run(
        docs_app,
        "docs",
        "approve",
        "diary-study",
        "1.1",
        *by,
        "--reference",
        "R2",
        "--material-change",
    )
    assert result.exit_code == 0, result.output
    run(docs_app, "docs", "activate", "diary-study", "1.1", *by)
    with docs_app.app_context():
        old = documents.find_version(db.session, "diary-study", "1.0")
        new = documents.find_version(db.session, "diary-study", "1.1")
        assert (old.status, new.status) == (VersionStatus.SUPERSEDED, VersionStatus.ACTIVE)
        assert new.material_change is True


def test_patients_are_offered_only_the_active_version_in_their_language(docs_app):
    admin = create_account(docs_app, Role.ADMINISTRATOR)
    run(docs_app, "docs", "import")
    with docs_app.app_context():
        assert documents.offered_text(db.session, "diary-study", "en_GB") is None  # a draft
    lifecycle(docs_app, "submit", "approve", admin_email=admin.email)
    with docs_app.app_context():
        assert documents.offered_text(db.session, "diary-study", "cy") is None  # not yet active
    lifecycle(docs_app, "activate", admin_email=admin.email)
    with docs_app.app_context():
        welsh = documents.offered_text(db.session, "diary-study", "cy")
        english = documents.offered_text(db.session, "diary-study", "en_GB")
        assert welsh.language == "cy" and english.language == "en-GB"
        assert welsh.title.startswith("Astudiaeth")
        assert welsh.version.version == "1.0"
        assert documents.offered_text(db.session, "diary-study", "fr") is None


def test_published_text_cannot_be_edited_or_deleted_in_sql(docs_app):
    run(docs_app, "docs", "import")
    statements = [
        "UPDATE document_section SET body = 'changed'",
        "DELETE FROM comprehension_question",
        "UPDATE document_text SET title = 'changed'",
        "UPDATE document_version SET protocol = 'other'",
        "DELETE FROM document_version",
    ]
    for statement in statements:
        with docs_app.app_context():
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
    with docs_app.app_context():  # the lifecycle columns stay movable
        db.session.execute(text("UPDATE document_version SET status = 'submitted'"))
        db.session.rollback()


def test_docs_list_shows_status_and_hashes(docs_app):
    run(docs_app, "docs", "import")
    result = run(docs_app, "docs", "list")
    assert "diary-study" in result.output
    assert "v1.0  draft" in result.output
    with docs_app.app_context():
        for text_row in db.session.scalars(select(DocumentText)):
            assert text_row.content_hash in result.output


def test_withdrawn_version_needs_a_reason_and_is_final(docs_app):
    admin = create_account(docs_app, Role.ADMINISTRATOR)
    run(docs_app, "docs", "import")
    result = run(
        docs_app,
        "docs",
        "withdraw",
        "diary-study",
        "1.0",
        "--by",
        admin.email,
        "--reason",
        "superseded before use",
    )
    assert result.exit_code == 0
    with docs_app.app_context():
        version = documents.find_version(db.session, "diary-study", "1.0")
        with pytest.raises(DocumentError, match="is withdrawn and cannot become submitted"):
            version.move_to(VersionStatus.SUBMITTED)
        assert db.session.scalar(select(DocumentVersion.status)) == "withdrawn"


def test_a_texts_section_keys_are_read_once_and_match_its_sections(docs_app):
    """Section pages learn a text's reading order from a per-process cache; it must equal the
    sections in the database, and a second asking must not query again."""
    from sqlalchemy import event

    run(docs_app, "docs", "import")
    with docs_app.app_context():
        version = documents.find_version(db.session, "diary-study", "1.0")
        english, welsh = version.text_in("en-GB"), version.text_in("cy")
        statements = []

        def _count(*_args):
            statements.append(1)

        event.listen(db.engine, "before_cursor_execute", _count)
        try:
            keys = documents.section_keys(db.session, english)
            assert len(statements) == 1
            assert documents.section_keys(db.session, english) is keys
            assert len(statements) == 1
        finally:
            event.remove(db.engine, "before_cursor_execute", _count)
        assert list(keys) == [s.key for s in english.sections]
        assert list(documents.section_keys(db.session, welsh)) == [s.key for s in welsh.sections]
