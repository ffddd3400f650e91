"""Read and validate consent document files (consent_docs/<document>/v<version>.<language>.md).

A file is YAML front matter (everything about the version: sections, questions, optional
consents, withdrawal options, signatures, cooling-off period) followed by an optional Markdown
introduction. docs/consent-docs.md describes the format. Every problem found is reported with
the file, the line and the field, so that an author can fix them all in one go.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markupsafe import Markup

from portal.consent.elements import KNOWN_ELEMENTS, REQUIRED_ELEMENTS

# Document language tags (BCP 47, as in file names) and the portal's locale for each.
DOCUMENT_LANGUAGES = {"en-GB": "en_GB", "cy": "cy"}
LOCALE_TO_DOCUMENT_LANGUAGE = {locale: tag for tag, locale in DOCUMENT_LANGUAGES.items()}

SIGNATURE_ROLES = (
    "participant",
    "person_taking_consent",
    "impartial_witness",
    "legal_representative",
)
ALWAYS_SIGNED = ("participant", "person_taking_consent")
SIGNATURE_RULES = ("required", "when_needed")

FILENAME_RE = re.compile(r"^v(?P<version>\d+\.\d+)\.(?P<language>[A-Za-z]{2}(?:-[A-Z]{2})?)\.md$")
VERSION_RE = re.compile(r"^\d+\.\d+$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

TOP_LEVEL_FIELDS = {
    "document",
    "title",
    "version",
    "language",
    "protocol",
    "cooling_off_hours",
    "signatures",
    "sections",
    "questions",
    "optional_consents",
    "withdrawal_options",
}
SECTION_FIELDS = {"id", "title", "elements", "content_note", "body"}
QUESTION_FIELDS = {"id", "section", "element", "prompt", "choices", "answer", "explanation"}
CHOICE_FIELDS = {"id", "text"}
OPTIONAL_CONSENT_FIELDS = {"id", "statement", "meaning"}
WITHDRAWAL_FIELDS = {"id", "label", "description", "default"}

_markdown_checker = MarkdownIt("commonmark", {"html": True}).enable("table")
_markdown_renderer = MarkdownIt("commonmark", {"html": False}).enable("table")


@functools.lru_cache(maxsize=1024)
def render_markdown(text: str) -> Markup:
    """Consent text as HTML; raw HTML is never passed through (it is refused at import).
    Published text never changes, so each text is rendered once per process."""
    return Markup(_markdown_renderer.render(text))  # noqa: S704 - html disabled above


def content_hash(raw: bytes) -> str:
    """SHA-256 of the file with line endings normalised, so a checkout on Windows matches."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest()


def version_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


# --- the parsed document ----------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    id: str
    text: str


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    elements: tuple[str, ...]
    body: str
    content_note: str | None = None


@dataclass(frozen=True)
class Question:
    id: str
    section: str
    element: str
    prompt: str
    choices: tuple[Choice, ...]
    answer: str
    explanation: str


@dataclass(frozen=True)
class OptionalConsent:
    id: str
    statement: str
    meaning: str


@dataclass(frozen=True)
class WithdrawalOption:
    id: str
    label: str
    description: str
    default: bool


@dataclass(frozen=True)
class ConsentDocumentFile:
    """One version of one document in one language, exactly as its file says."""

    path: str
    document: str
    title: str
    version: str
    language: str
    protocol: str
    cooling_off_hours: int
    signatures: dict[str, str]
    introduction: str
    sections: tuple[Section, ...]
    questions: tuple[Question, ...]
    optional_consents: tuple[OptionalConsent, ...]
    withdrawal_options: tuple[WithdrawalOption, ...]
    source: str
    content_hash: str

    def structure(self) -> dict[str, Any]:
        """What every language of one version must share (ids, answers, rules)."""
        return {
            "protocol": self.protocol,
            "cooling_off_hours": self.cooling_off_hours,
            "signatures": self.signatures,
            "sections": [(s.id, s.elements, s.content_note is not None) for s in self.sections],
            "questions": [
                (q.id, q.section, q.element, [c.id for c in q.choices], q.answer)
                for q in self.questions
            ],
            "optional_consents": [item.id for item in self.optional_consents],
            "withdrawal_options": [(o.id, o.default) for o in self.withdrawal_options],
        }


# --- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, located as precisely as possible."""

    path: str
    message: str
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = [self.path]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(self.field)
        return f"{', '.join(where)}: {self.message}"


class DocumentInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


# --- reading ----------------------------------------------------------------------------------


def _split_front_matter(text: str) -> tuple[str, str, int] | None:
    """(yaml, markdown body, line number where the body starts) or None without front matter."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :]), index + 2
    return None


def _line_map(node: yaml.Node, offset: int) -> dict[str, int]:
    """Field path (e.g. 'sections[2].elements[0]') -> line number in the file."""
    lines: dict[str, int] = {}

    def walk(current: yaml.Node, path: str) -> None:
        lines[path] = current.start_mark.line + 1 + offset
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                lines[child] = key_node.start_mark.line + 1 + offset
                walk(value_node, child)
                lines[child] = key_node.start_mark.line + 1 + offset
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, f"{path}[{index}]")

    walk(node, "")
    return lines


class _Checker:
    """Collects problems while reading one file's front matter."""

    def __init__(self, path: str, lines: dict[str, int]) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []

    def problem(self, field_path: str | None, message: str) -> None:
        line = None
        probe = field_path
        while probe and probe not in self.lines:  # the nearest enclosing field with a line
            shorter = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
            probe = shorter if shorter != probe else None
        if probe:
            line = self.lines[probe]
        self.problems.append(Problem(self.path, message, field_path, line))

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(path, "must be a mapping of fields")
            return {}
        for key in value:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                self.problem(
                    f"{path}.{key}" if path else str(key),
                    f"unknown field '{key}' (known fields: {known})",
                )
        return value

    def text(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        max_length: int = 20_000,
    ) -> str | None:
        field_path = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None:
            if required:
                self.problem(field_path, "is required")
            return None
        if not isinstance(value, str):
            hint = " (write it in quotes)" if isinstance(value, int | float | bool) else ""
            self.problem(field_path, f"must be text, not {type(value).__name__}{hint}")
            return None
        if not value.strip():
            self.problem(field_path, "must not be empty")
            return None
        if len(value) > max_length:
            self.problem(field_path, f"is longer than {max_length} characters")
        return value.strip()

    def identifier(self, data: dict[str, Any], key: str, path: str) -> str | None:
        value = self.text(data, key, path, max_length=64)
        if value is not None and not ID_RE.match(value):
            self.problem(
                f"{path}.{key}",
                f"'{value}' is not a valid id (lower-case letters, digits, - and _)",
            )
            return None
        return value

    def sequence(
        self, data: dict[str, Any], key: str, path: str = "", *, required: bool = True
    ) -> list[Any]:
        field_path = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None:
            if required:
                self.problem(field_path, "is required")
            return []
        if not isinstance(value, list):
            self.problem(field_path, "must be a list")
            return []
        return value

    def markdown(self, text: str | None, field_path: str) -> None:
        """Refuse raw HTML (including scripts) and images: consent text is plain Markdown."""
        if not text:
            return
        found: dict[str, str] = {}  # one message of each kind per field is enough
        for token in _walk_tokens(_markdown_checker.parse(text)):
            if token.type in {"html_block", "html_inline"} and "html" not in found:
                snippet = token.content.strip().splitlines()[0][:60]
                found["html"] = f"raw HTML is not allowed in Markdown: '{snippet}'"
            elif token.type == "image" and "image" not in found:
                found["image"] = "images are not allowed in consent text"
        for message in found.values():
            self.problem(field_path, message)

    def unique(self, ids: Iterable[tuple[str | None, str]], what: str) -> None:
        seen: set[str] = set()
        for value, field_path in ids:
            if value is None:
                continue
            if value in seen:
                self.problem(field_path, f"duplicate {what} id '{value}'")
            seen.add(value)


def _walk_tokens(tokens: list[Any]) -> Iterable[Any]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk_tokens(token.children)


def read_document_file(path: Path, root: Path) -> ConsentDocumentFile:
    """Parse and validate one file; raise DocumentInvalid listing every problem found."""
    shown = str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        raise DocumentInvalid([Problem(shown, f"is not UTF-8 text ({exc.reason})")]) from exc
    if "\x00" in text:
        raise DocumentInvalid([Problem(shown, "contains a NUL character")])

    name = FILENAME_RE.match(path.name)
    if name is None:
        raise DocumentInvalid(
            [Problem(shown, "file name must be v<major>.<minor>.<language>.md, e.g. v1.0.en-GB.md")]
        )

    parts = _split_front_matter(text)
    if parts is None:
        raise DocumentInvalid(
            [Problem(shown, "must start with YAML front matter between two '---' lines", line=1)]
        )
    front_matter, introduction, body_line = parts
    try:
        loader = yaml.SafeLoader(front_matter)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentInvalid([Problem(shown, f"malformed YAML: {problem}", line=line)]) from exc
    if node is None or not isinstance(data, dict):
        raise DocumentInvalid([Problem(shown, "front matter must be a mapping of fields", line=2)])

    lines = _line_map(node, offset=1)
    lines["introduction"] = body_line
    check = _Checker(shown, lines)
    check.mapping(data, "", TOP_LEVEL_FIELDS)
    document = check.identifier(data, "document", "")
    if document is not None and document != path.parent.name:
        check.problem("document", f"'{document}' does not match its folder '{path.parent.name}'")
    title = check.text(data, "title", "", max_length=300)
    version = _check_version(check, data, name.group("version"))
    language = _check_language(check, data, name.group("language"))
    protocol = check.text(data, "protocol", "", max_length=100)
    cooling_off = _check_cooling_off(check, data)
    signatures = _check_signatures(check, data)
    check.markdown(introduction, "introduction")
    sections = _check_sections(check, data)
    questions = _check_questions(check, data, {s.id: s for s in sections})
    optional_consents = _check_optional_consents(check, data)
    withdrawal_options = _check_withdrawal_options(check, data)

    if check.problems:
        raise DocumentInvalid(check.problems)
    return ConsentDocumentFile(
        path=shown,
        document=document,
        title=title,
        version=version,
        language=language,
        protocol=protocol,
        cooling_off_hours=cooling_off,
        signatures=signatures,
        introduction=introduction.strip(),
        sections=tuple(sections),
        questions=tuple(questions),
        optional_consents=tuple(optional_consents),
        withdrawal_options=tuple(withdrawal_options),
        source=text,
        content_hash=content_hash(raw),
    )


def _check_version(check: _Checker, data: dict[str, Any], from_name: str) -> str | None:
    value = data.get("version")
    if isinstance(value, float | int):
        check.problem(
            "version",
            f'write the version in quotes, e.g. "{from_name}" '
            "(unquoted, 1.10 would be read as the number 1.1)",
        )
        return None
    version = check.text(data, "version", "", max_length=20)
    if version is None:
        return None
    if not VERSION_RE.match(version):
        check.problem("version", f"'{version}' is not a version number like \"1.0\"")
        return None
    if version != from_name:
        check.problem("version", f"'{version}' does not match the file name (v{from_name})")
    return version


def _check_language(check: _Checker, data: dict[str, Any], from_name: str) -> str | None:
    language = check.text(data, "language", "", max_length=10)
    if language is None:
        return None
    if language not in DOCUMENT_LANGUAGES:
        check.problem(
            "language", f"'{language}' is not offered (use one of: {', '.join(DOCUMENT_LANGUAGES)})"
        )
        return None
    if language != from_name:
        check.problem("language", f"'{language}' does not match the file name ({from_name})")
    return language


def _check_cooling_off(check: _Checker, data: dict[str, Any]) -> int | None:
    value = data.get("cooling_off_hours")
    if value is None:
        check.problem("cooling_off_hours", "is required (use 0 for none)")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 24 * 90:
        check.problem("cooling_off_hours", "must be a whole number of hours from 0 to 2160")
        return None
    return value


def _check_signatures(check: _Checker, data: dict[str, Any]) -> dict[str, str]:
    value = data.get("signatures")
    if not isinstance(value, dict):
        check.problem(
            "signatures", "is required: a mapping of signer role to 'required' or 'when_needed'"
        )
        return {}
    signatures: dict[str, str] = {}
    for role, rule in value.items():
        if role not in SIGNATURE_ROLES:
            check.problem(
                f"signatures.{role}",
                f"unknown signer '{role}' (known: {', '.join(SIGNATURE_ROLES)})",
            )
        elif rule not in SIGNATURE_RULES:
            check.problem(f"signatures.{role}", "must be 'required' or 'when_needed'")
        else:
            signatures[role] = rule
    for role in ALWAYS_SIGNED:
        if value.get(role) != "required":
            check.problem(f"signatures.{role}", "must be 'required' (ICH E6(R3) 2.8)")
    return signatures


def _check_sections(check: _Checker, data: dict[str, Any]) -> list[Section]:
    items = check.sequence(data, "sections")
    if "sections" in data and not items and isinstance(data["sections"], list):
        check.problem("sections", "must list at least one section")
    sections: list[Section] = []
    ids: list[tuple[str | None, str]] = []
    covered: set[str] = set()
    for index, item in enumerate(items):
        path = f"sections[{index}]"
        entry = check.mapping(item, path, SECTION_FIELDS)
        section_id = check.identifier(entry, "id", path)
        ids.append((section_id, f"{path}.id"))
        title = check.text(entry, "title", path, max_length=300)
        body = check.text(entry, "body", path, max_length=50_000)
        check.markdown(body, f"{path}.body")
        note = check.text(entry, "content_note", path, required=False, max_length=2000)
        elements = []
        for element_index, element in enumerate(check.sequence(entry, "elements", path)):
            element_path = f"{path}.elements[{element_index}]"
            if element not in KNOWN_ELEMENTS:
                check.problem(
                    element_path,
                    f"unknown element '{element}' (known elements: "
                    f"{', '.join(sorted(KNOWN_ELEMENTS))})",
                )
            else:
                elements.append(element)
        covered.update(elements)
        if None not in (section_id, title, body):
            sections.append(Section(section_id, title, tuple(elements), body, note))
    check.unique(ids, "section")
    if items:
        for element in REQUIRED_ELEMENTS:
            if element not in covered:
                check.problem(
                    "sections", f"required element '{element}' is not covered by any section"
                )
    return sections


def _check_questions(
    check: _Checker, data: dict[str, Any], sections: dict[str, Section]
) -> list[Question]:
    questions: list[Question] = []
    ids: list[tuple[str | None, str]] = []
    for index, item in enumerate(check.sequence(data, "questions")):
        path = f"questions[{index}]"
        entry = check.mapping(item, path, QUESTION_FIELDS)
        question_id = check.identifier(entry, "id", path)
        ids.append((question_id, f"{path}.id"))
        section_id = check.text(entry, "section", path, max_length=64)
        element = check.text(entry, "element", path, max_length=64)
        prompt = check.text(entry, "prompt", path, max_length=1000)
        explanation = check.text(entry, "explanation", path, max_length=5000)
        answer = check.text(entry, "answer", path, max_length=64)
        section = sections.get(section_id) if section_id else None
        if section_id and section is None:
            check.problem(f"{path}.section", f"no section with id '{section_id}'")
        if element and element not in KNOWN_ELEMENTS:
            check.problem(f"{path}.element", f"unknown element '{element}'")
        elif element and section is not None and element not in section.elements:
            check.problem(
                f"{path}.element", f"element '{element}' is not covered by section '{section_id}'"
            )
        choices: list[Choice] = []
        choice_ids: list[tuple[str | None, str]] = []
        raw_choices = check.sequence(entry, "choices", path)
        if raw_choices and len(raw_choices) < 2:
            check.problem(f"{path}.choices", "must offer at least two choices")
        for choice_index, raw_choice in enumerate(raw_choices):
            choice_path = f"{path}.choices[{choice_index}]"
            choice_entry = check.mapping(raw_choice, choice_path, CHOICE_FIELDS)
            choice_id = check.identifier(choice_entry, "id", choice_path)
            choice_text = check.text(choice_entry, "text", choice_path, max_length=500)
            choice_ids.append((choice_id, f"{choice_path}.id"))
            if choice_id and choice_text:
                choices.append(Choice(choice_id, choice_text))
        check.unique(choice_ids, "choice")
        known_choices = [choice.id for choice in choices]
        if answer and known_choices and answer not in known_choices:
            check.problem(
                f"{path}.answer",
                f"'{answer}' is not among the choices ({', '.join(known_choices)})",
            )
        if None not in (question_id, section, element, prompt, explanation, answer):
            questions.append(
                Question(
                    question_id, section_id, element, prompt, tuple(choices), answer, explanation
                )
            )
    check.unique(ids, "question")
    return questions


def _check_optional_consents(check: _Checker, data: dict[str, Any]) -> list[OptionalConsent]:
    items: list[OptionalConsent] = []
    ids: list[tuple[str | None, str]] = []
    for index, item in enumerate(check.sequence(data, "optional_consents", required=False)):
        path = f"optional_consents[{index}]"
        if isinstance(item, dict) and "default" in item:
            check.problem(
                f"{path}.default",
                "optional consents are always unticked at first; remove 'default'",
            )
            item = {key: value for key, value in item.items() if key != "default"}
        entry = check.mapping(item, path, OPTIONAL_CONSENT_FIELDS)
        item_id = check.identifier(entry, "id", path)
        ids.append((item_id, f"{path}.id"))
        statement = check.text(entry, "statement", path, max_length=1000)
        meaning = check.text(entry, "meaning", path, max_length=3000)
        if None not in (item_id, statement, meaning):
            items.append(OptionalConsent(item_id, statement, meaning))
    check.unique(ids, "optional consent")
    return items


def _check_withdrawal_options(check: _Checker, data: dict[str, Any]) -> list[WithdrawalOption]:
    options: list[WithdrawalOption] = []
    ids: list[tuple[str | None, str]] = []
    raw_items = check.sequence(data, "withdrawal_options")
    for index, item in enumerate(raw_items):
        path = f"withdrawal_options[{index}]"
        entry = check.mapping(item, path, WITHDRAWAL_FIELDS)
        option_id = check.identifier(entry, "id", path)
        ids.append((option_id, f"{path}.id"))
        label = check.text(entry, "label", path, max_length=300)
        description = check.text(entry, "description", path, max_length=3000)
        default = entry.get("default", False)
        if not isinstance(default, bool):
            check.problem(f"{path}.default", "must be true or false")
            default = False
        if None not in (option_id, label, description):
            options.append(WithdrawalOption(option_id, label, description, default))
    check.unique(ids, "withdrawal option")
    if raw_items and sum(1 for option in options if option.default) != 1:
        check.problem("withdrawal_options", "exactly one option must be marked 'default: true'")
    return options


# --- a whole folder ---------------------------------------------------------------------------


@dataclass
class DocumentSet:
    """Every file under consent_docs/, grouped, with every problem found in any of them."""

    files: list[ConsentDocumentFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_all(root: Path) -> DocumentSet:
    """Read every document file under `root`; also check that translations agree."""
    result = DocumentSet()
    for path in sorted(root.glob("*/*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            result.files.append(read_document_file(path, root))
        except DocumentInvalid as exc:
            result.problems.extend(exc.problems)
    by_version: dict[tuple[str, str], list[ConsentDocumentFile]] = {}
    for parsed in result.files:
        by_version.setdefault((parsed.document, parsed.version), []).append(parsed)
    for (document, version), files in sorted(by_version.items()):
        reference = next((f for f in files if f.language == "en-GB"), files[0])
        for other in files:
            if other is not reference and other.structure() != reference.structure():
                result.problems.append(
                    Problem(
                        other.path,
                        f"does not match {reference.path}: every language of {document} v{version} "
                        "must have the same protocol, cooling-off period, signatures, section, "
                        "question, answer, optional consent and withdrawal option ids",
                    )
                )
    return result
