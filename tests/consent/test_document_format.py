"""Validation of consent document files: each kind of problem has its own exact message."""

from __future__ import annotations

import pytest

from portal.consent.document_format import DocumentInvalid, read_all, read_document_file
from tests.consent.doc_fixtures import example_source, write

PATH = "consent_docs/diary-study/v1.0.en-GB.md"


def problems_for(tmp_path, source: str, name: str = "v1.0.en-GB.md") -> list[str]:
    root = tmp_path / "consent_docs"
    folder = root / "diary-study"
    folder.mkdir(parents=True)
    (folder / name).write_text(source, encoding="utf-8")
    with pytest.raises(DocumentInvalid) as caught:
        read_document_file(folder / name, root)
    return [str(problem) for problem in caught.value.problems]


def line_of(source: str, fragment: str) -> int:
    return next(n for n, line in enumerate(source.split("\n"), 1) if fragment in line)


def test_the_documented_example_is_valid(tmp_path):
    root = tmp_path / "consent_docs"
    path = write(root, "diary-study", "1.0", "en-GB", example_source())
    parsed = read_document_file(path, root)
    assert parsed.version == "1.0"
    assert [s.id for s in parsed.sections] == [
        "about",
        "risks-and-benefits",
        "your-choice",
        "your-data",
    ]
    assert parsed.sections[1].content_note == "This section mentions nightmares."
    assert parsed.questions[0].answer == "a"
    assert [o.id for o in parsed.withdrawal_options if o.default] == ["keep"]
    assert parsed.introduction.startswith("Please read this carefully.")
    assert len(parsed.content_hash) == 64


def test_malformed_yaml_names_the_line(tmp_path):
    source = example_source().replace("cooling_off_hours: 24", "cooling_off_hours: [24")
    [problem] = problems_for(tmp_path, source)
    assert problem.startswith(f"{PATH}, line ")
    assert "malformed YAML" in problem


def test_unknown_element_tag(tmp_path):
    source = example_source().replace(
        "elements: [risks, benefits, alternatives]",
        "elements: [risks, benefits, alternatives, horoscope]",
    )
    line = line_of(source, "horoscope")
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, sections[1].elements[3]: unknown element 'horoscope' (known "
        "elements: alternatives, benefits, blinding, confidentiality, contacts, costs, duration, "
        "eligibility, experimental, future_contact, gp, injury_compensation, "
        "investigator_termination, new_findings, participant_count, procedures, purpose, "
        "recordings, reporting_concerns, risks, secondary_use, voluntary, withdrawal)"
    ]


def test_required_element_not_covered(tmp_path):
    source = example_source().replace(
        "elements: [risks, benefits, alternatives]", "elements: [risks, benefits]"
    )
    line = line_of(source, "sections:")
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, sections: required element 'alternatives' is not covered by "
        "any section"
    ]


def test_question_pointing_at_a_missing_section(tmp_path):
    source = example_source().replace("section: your-choice", "section: your-choices")
    line = line_of(source, "section: your-choices")
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, questions[0].section: no section with id 'your-choices'"
    ]


def test_question_element_not_in_its_section(tmp_path):
    source = example_source().replace("    element: voluntary", "    element: risks")
    line = line_of(source, "    element: risks")
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, questions[0].element: element 'risks' is not covered by section "
        "'your-choice'"
    ]


def test_duplicate_id(tmp_path):
    source = example_source().replace("id: your-data", "id: about")
    line = [n for n, text in enumerate(source.split("\n"), 1) if text == "  - id: about"][1]
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, sections[3].id: duplicate section id 'about'"
    ]


def test_correct_answer_not_among_the_choices(tmp_path):
    source = example_source().replace("    answer: a", "    answer: d")
    line = line_of(source, "answer: d")
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, questions[0].answer: 'd' is not among the choices (a, b)"
    ]


@pytest.mark.parametrize(
    "html", ["<script>alert('x')</script>", "<b>bold</b> words", '<img src="x" onerror="steal()">']
)
def test_raw_html_or_script_in_markdown(tmp_path, html):
    source = example_source().replace(
        "We want to learn whether keeping a sleep diary helps people with nightmares.",
        f"We want to learn. {html}" if "<b>" in html else f"We want to learn.\n\n      {html}",
    )
    [problem] = problems_for(tmp_path, source)
    line = line_of(source, "body: |")
    assert problem.startswith(
        f"{PATH}, line {line}, sections[0].body: raw HTML is not allowed in Markdown: '<"
    )


def test_raw_html_in_the_introduction(tmp_path):
    source = example_source() + '<iframe src="https://example.org"></iframe>\n'
    [problem] = problems_for(tmp_path, source)
    line = line_of(source, "Please read this carefully")  # the introduction starts here
    assert problem == (
        f"{PATH}, line {line}, introduction: raw HTML is not allowed in "
        "Markdown: '<iframe src=\"https://example.org\"></iframe>'"
    )


def test_unquoted_version_gets_a_specific_message(tmp_path):
    source = example_source().replace('version: "1.0"', "version: 1.0")
    line = line_of(source, "version: 1.0")
    assert problems_for(tmp_path, source) == [
        f'{PATH}, line {line}, version: write the version in quotes, e.g. "1.0" (unquoted, '
        "1.10 would be read as the number 1.1)"
    ]


def test_version_must_match_the_file_name(tmp_path):
    source = example_source().replace('version: "1.0"', 'version: "1.2"')
    line = line_of(source, 'version: "1.2"')
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, version: '1.2' does not match the file name (v1.0)"
    ]


def test_optional_consents_cannot_be_preticked(tmp_path):
    source = example_source().replace(
        '    statement: "I agree to be contacted about future studies."',
        '    statement: "I agree to be contacted about future studies."\n    default: true',
    )
    line = line_of(source, "    default: true")
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, optional_consents[0].default: optional consents are always "
        "unticked at first; remove 'default'"
    ]


def test_unknown_field_is_named(tmp_path):
    source = example_source().replace(
        "cooling_off_hours: 24", "cooling_off_hours: 24\ncolour: blue"
    )
    [problem] = problems_for(tmp_path, source)
    assert problem.startswith(
        f"{PATH}, line {line_of(source, 'colour')}, colour: unknown field 'colour'"
    )


def test_participant_signature_is_always_required(tmp_path):
    source = example_source().replace("  participant: required", "  participant: when_needed")
    line = line_of(source, "participant: when_needed")
    assert problems_for(tmp_path, source) == [
        f"{PATH}, line {line}, signatures.participant: must be 'required' (ICH E6(R3) 2.8)"
    ]


def test_missing_front_matter(tmp_path):
    assert problems_for(tmp_path, "# Just a heading\n") == [
        f"{PATH}, line 1: must start with YAML front matter between two '---' lines"
    ]


def test_bad_file_name(tmp_path):
    assert problems_for(tmp_path, example_source(), name="version-one.md") == [
        "consent_docs/diary-study/version-one.md: file name must be "
        "v<major>.<minor>.<language>.md, e.g. v1.0.en-GB.md"
    ]


def test_not_utf8(tmp_path):
    root = tmp_path / "consent_docs" / "diary-study"
    root.mkdir(parents=True)
    (root / "v1.0.en-GB.md").write_bytes(b"---\ntitle: \xff\xfe\n---\n")
    with pytest.raises(DocumentInvalid) as caught:
        read_document_file(root / "v1.0.en-GB.md", tmp_path / "consent_docs")
    assert str(caught.value).startswith(f"{PATH}: is not UTF-8 text")


def test_translations_must_share_their_structure(tmp_path):
    root = tmp_path / "consent_docs"
    write(root, "diary-study", "1.0", "en-GB", example_source())
    welsh = (
        example_source()
        .replace("language: en-GB", "language: cy")
        .replace("    answer: a", "    answer: b")
    )
    write(root, "diary-study", "1.0", "cy", welsh)
    found = read_all(root)
    assert [str(p) for p in found.problems] == [
        "consent_docs/diary-study/v1.0.cy.md: does not match "
        "consent_docs/diary-study/v1.0.en-GB.md: every language of diary-study v1.0 must have the "
        "same protocol, cooling-off period, signatures, section, question, answer, optional "
        "consent and withdrawal option ids"
    ]
