"""Find user-visible text that is not marked for translation (run by the tests in make test).

Templates: text between tags, user-visible attributes (alt, title, aria-label, placeholder), and
sentence-like string literals inside Jinja expressions (such as `{"text": "Save"}` given to a
macro) must go through `_()`/`ngettext()`. Python: messages given to `flash()`, raised as one of
the portal's user-facing errors, or used as a form field's label, description or validator
message must be wrapped in `_()` or `_l()`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import do, loopcontrols

WORD = re.compile(r"[A-Za-z]{2,}")
TAG = re.compile(r"<[^>]*>", re.S)
COMMENT = re.compile(r"<!--.*?-->|\{#.*?#\}", re.S)
NOT_TEXT = re.compile(r"<(style|script)\b.*?</\1>", re.S)
ENTITY = re.compile(r"&[a-z]+;|&#\d+;")
VISIBLE_ATTRIBUTE = re.compile(r'\b(alt|title|aria-label|placeholder)="([^"§]*)"')
SENTENCE = re.compile(r"^[A-Z][a-z']*(?: [A-Za-z'\u2019,.:;()!?-]+)+[.!?:]?$")
TRANSLATE_CALLS = {"_", "gettext", "ngettext", "pgettext", "npgettext", "lazy_gettext", "_l"}
# Text that is the same in every language.
ALLOWED_TEXT = {"PDF", "NHS", "GMT", "UTC", "English", "Cymraeg"}


@dataclass(frozen=True)
class Unmarked:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r}"


def _environment() -> Environment:
    return Environment(extensions=[do, loopcontrols])  # noqa: S701 - lexing only, nothing rendered


def check_template(source: str, path: str = "<template>") -> list[Unmarked]:
    found: list[Unmarked] = []
    skeleton: list[str] = []  # the template's own HTML, each Jinja expression replaced by "§"
    depth_in_translation: list[int] = []  # paren depths at which a translation call opened
    depth = 0
    previous_name = None
    for line, kind, value in _environment().lex(source):
        if kind == "data":
            skeleton.append(value)
            continue
        skeleton.append("§" + "\n" * value.count("\n") if kind != "whitespace" else value)
        if kind == "name":
            previous_name = value
            continue
        if kind == "operator" and value == "(":
            depth += 1
            if previous_name in TRANSLATE_CALLS:
                depth_in_translation.append(depth)
        elif kind == "operator" and value == ")":
            if depth_in_translation and depth_in_translation[-1] == depth:
                depth_in_translation.pop()
            depth -= 1
        elif kind == "string" and not depth_in_translation and SENTENCE.match(value[1:-1].strip()):
            found.append(Unmarked(path, line, value[1:-1]))
        previous_name = None
    found.extend(_visible_text("".join(skeleton), path))
    return sorted(found, key=lambda item: item.line)


def _blank(match: re.Match) -> str:
    """Remove markup but keep its line breaks, so that line numbers stay right."""
    return " " + "\n" * match.group(0).count("\n")


def _visible_text(html: str, path: str) -> list[Unmarked]:
    found = []
    html = NOT_TEXT.sub(_blank, COMMENT.sub(_blank, html))
    for number, line in enumerate(html.split("\n"), start=1):
        for match in VISIBLE_ATTRIBUTE.finditer(line):
            if WORD.search(match.group(2)):
                found.append(Unmarked(path, number, match.group(2)))
    text = ENTITY.sub(" ", TAG.sub(_blank, html))
    for number, line in enumerate(text.split("\n"), start=1):
        words = [w for w in WORD.findall(line) if w not in ALLOWED_TEXT]
        if words:
            found.append(Unmarked(path, number, line.strip()))
    return found


# --- Python ----------------------------------------------------------------------------------

USER_FACING_ERRORS = {
    "JourneyError",
    "AlreadySigned",
    "WithdrawalError",
    "IncidentError",
    "AccountError",
    "ComprehensionError",
}
FIELD_KEYWORDS = {"label", "description", "message"}


def check_python(source: str, path: str = "<module>") -> list[Unmarked]:
    found: list[Unmarked] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        if (name == "flash" or name in USER_FACING_ERRORS) and node.args:
            found.extend(_literal(node.args[0], path))
        elif name and name.endswith("Field"):
            if node.args:
                found.extend(_literal(node.args[0], path))
            for keyword in node.keywords:
                if keyword.arg in FIELD_KEYWORDS:
                    found.extend(_literal(keyword.value, path))
        elif name in {"DataRequired", "InputRequired", "Length", "FileRequired", "Email"}:
            for keyword in node.keywords:
                if keyword.arg == "message":
                    found.extend(_literal(keyword.value, path))
    return found


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _literal(node: ast.AST, path: str) -> list[Unmarked]:
    """A bare string (or f-string) where a translated one belongs."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and WORD.search(node.value):
        return [Unmarked(path, node.lineno, node.value)]
    if isinstance(node, ast.JoinedStr):
        return [Unmarked(path, node.lineno, "f-string")]
    return []


def check_project(root: Path) -> list[Unmarked]:
    """Every template and every module of the portal (not the CLI or the migrations, whose
    words are for operators, in English)."""
    found: list[Unmarked] = []
    for template in sorted((root / "templates").rglob("*.html")):
        found.extend(
            check_template(template.read_text(encoding="utf-8"), str(template.relative_to(root)))
        )
    for module in sorted((root / "portal").rglob("*.py")):
        relative = module.relative_to(root)
        if relative.parts[1] in {"cli", "migrations"}:
            continue
        found.extend(check_python(module.read_text(encoding="utf-8"), str(relative)))
    return found
