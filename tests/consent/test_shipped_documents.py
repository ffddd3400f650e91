"""The trial's own consent documents: valid, complete, plain, and v1.1 changes what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.consent import documents
from portal.consent.document_format import read_all
from portal.consent.elements import REQUIRED_ELEMENTS
from portal.consent.readability import PLAIN_LANGUAGE_TARGET, score
from portal.consent.redline import compare
from portal.extensions import db

ROOT = Path(__file__).parents[2] / "consent_docs"
DOCUMENT = "mdma-ptsd-trial"
# What the amendment changed: the new overheating and sleep finding, and the recording policy.
SECTIONS_CHANGED_IN_V1_1 = {"risks", "recordings"}

FOUND = read_all(ROOT)
FILES = {(f.version, f.language): f for f in FOUND.files if f.document == DOCUMENT}


def test_every_shipped_file_is_valid():
    assert [str(p) for p in FOUND.problems] == []
    assert set(FILES) == {("1.0", "en-GB"), ("1.0", "cy"), ("1.1", "en-GB"), ("1.1", "cy")}


@pytest.mark.parametrize("key", sorted(FILES), ids=lambda key: f"v{key[0]}-{key[1]}")
def test_questions_cover_every_required_element(key):
    parsed = FILES[key]
    assert len(parsed.questions) >= 12
    assert {q.element for q in parsed.questions} >= set(REQUIRED_ELEMENTS)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_every_english_section_is_plain_language(version):
    low = {
        section.id: score(section.body, "en-GB").reading_ease
        for section in FILES[(version, "en-GB")].sections
        if not score(section.body, "en-GB").meets_target
    }
    assert not low, f"sections below Flesch {PLAIN_LANGUAGE_TARGET}: {low}"


def test_the_optional_consents_and_withdrawal_options_the_portal_relies_on():
    parsed = FILES[("1.0", "en-GB")]
    assert [i.id for i in parsed.optional_consents] == [
        "recordings-training",
        "ai-analysis",
        "future-research",
        "future-contact",
    ]
    assert [(o.id, o.default) for o in parsed.withdrawal_options] == [
        ("keep", True),
        ("keep-no-further-use", False),
        ("destroy-recordings", False),
    ]


def test_import_twice_changes_nothing_and_the_redline_shows_the_amendment(make_app, database_url):
    app = make_app(database_url, CONSENT_DOCS_PATH=str(ROOT))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["docs", "import"])
    assert first.exit_code == 0, first.output
    assert "4 imported, 0 already up to date." in first.output
    second = runner.invoke(args=["docs", "import"])
    assert "0 imported, 4 already up to date." in second.output
    with app.app_context():
        for language in ("en-GB", "cy"):
            old = documents.find_version(db.session, DOCUMENT, "1.0").text_in(language)
            new = documents.find_version(db.session, DOCUMENT, "1.1").text_in(language)
            changed = {s.key for s in compare(old, new).changed_sections}
            assert changed == SECTIONS_CHANGED_IN_V1_1, language


def test_docs_stats_prints_each_sections_reading_ease(make_app, sqlite_url):
    app = make_app(sqlite_url, CONSENT_DOCS_PATH=str(ROOT))
    result = app.test_cli_runner().invoke(args=["docs", "stats"])
    assert result.exit_code == 0, result.output
    english = FILES[("1.0", "en-GB")]
    for section in english.sections:
        expected = f"reading ease {score(section.body, 'en-GB').reading_ease:5.1f}"
        assert any(section.id in line and expected in line for line in result.output.splitlines())
    assert "not scored (Flesch applies to English text)" in result.output
