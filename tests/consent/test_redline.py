"""Redlines between versions: exactly the changed sections, with word-level changes."""

from __future__ import annotations

from portal.consent import documents
from portal.consent.redline import Change, Piece, compare, word_diff
from portal.extensions import db
from tests.consent.doc_fixtures import example_source, welsh, write, write_example


def test_word_diff_marks_only_the_changed_words():
    pieces = word_diff("You can stop at any time.", "You can stop at any time, for any reason.")
    assert pieces == (
        Piece("same", "You can stop at any time"),
        Piece("added", ", for any reason"),
        Piece("same", "."),
    )


def _import(make_app, database_url, root):
    app = make_app(database_url, CONSENT_DOCS_PATH=str(root))
    result = app.test_cli_runner().invoke(args=["docs", "import"])
    assert result.exit_code == 0, result.output
    return app


def test_redline_shows_exactly_the_changed_section(make_app, database_url, tmp_path):
    root = tmp_path / "consent_docs"
    write_example(root, "1.0")
    write_example(root, "1.1", body_change="Writing about nightmares can be very upsetting.")
    app = _import(make_app, database_url, root)
    with app.app_context():
        old = documents.find_version(db.session, "diary-study", "1.0").text_in("en-GB")
        new = documents.find_version(db.session, "diary-study", "1.1").text_in("en-GB")
        redline = compare(old, new)
        assert [s.key for s in redline.changed_sections] == ["risks-and-benefits"]
        changed = redline.changed_sections[0]
        assert changed.change == Change.CHANGED
        assert [p for p in changed.body_pieces if p.kind != "same"] == [Piece("added", " very")]
        assert redline.other_changes == ()


def test_redline_shows_added_and_removed_sections_in_place(make_app, database_url, tmp_path):
    root = tmp_path / "consent_docs"
    write_example(root, "1.0")
    source = (
        example_source()
        .replace('version: "1.0"', 'version: "1.1"')
        .replace("  - id: your-data\n", "  - id: your-information\n")
        .replace("    answer: a\n", "    answer: b\n")
    )
    write(root, "diary-study", "1.1", "en-GB", source)
    write(root, "diary-study", "1.1", "cy", welsh(source))
    app = _import(make_app, database_url, root)
    with app.app_context():
        old = documents.find_version(db.session, "diary-study", "1.0").text_in("en-GB")
        new = documents.find_version(db.session, "diary-study", "1.1").text_in("en-GB")
        redline = compare(old, new)
        assert [(s.key, s.change) for s in redline.sections] == [
            ("about", Change.UNCHANGED),
            ("risks-and-benefits", Change.UNCHANGED),
            ("your-choice", Change.UNCHANGED),
            ("your-data", Change.REMOVED),
            ("your-information", Change.ADDED),
        ]
        assert [(c.part, c.key, c.change) for c in redline.other_changes] == [
            ("question", "q-stop", Change.CHANGED)
        ]
