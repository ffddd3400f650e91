"""Redlines: what changed between two versions of a document, section by section, word by word."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum

from portal.consent.models import DocumentSection, DocumentText

_TOKEN_RE = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Piece:
    """A run of text that is the same in both versions, or only in the old or the new one."""

    kind: str  # "same", "removed" or "added"
    text: str


@dataclass(frozen=True)
class SectionChange:
    key: str
    change: Change
    old_title: str | None
    new_title: str | None
    title_pieces: tuple[Piece, ...]
    body_pieces: tuple[Piece, ...]
    elements_before: tuple[str, ...]
    elements_after: tuple[str, ...]


@dataclass(frozen=True)
class PartChange:
    """A question, optional consent or withdrawal option added, removed or changed."""

    part: str
    key: str
    change: Change


@dataclass(frozen=True)
class Redline:
    old: DocumentText
    new: DocumentText
    sections: tuple[SectionChange, ...]
    other_changes: tuple[PartChange, ...]

    @property
    def changed_sections(self) -> list[SectionChange]:
        return [s for s in self.sections if s.change != Change.UNCHANGED]


def word_diff(old: str, new: str) -> tuple[Piece, ...]:
    """Word-level differences, keeping whitespace and punctuation as they are."""
    old_tokens, new_tokens = _TOKEN_RE.findall(old), _TOKEN_RE.findall(new)
    pieces: list[Piece] = []
    matcher = difflib.SequenceMatcher(a=old_tokens, b=new_tokens, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pieces.append(Piece("same", "".join(old_tokens[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(Piece("removed", "".join(old_tokens[i1:i2])))
        if j2 > j1:
            pieces.append(Piece("added", "".join(new_tokens[j1:j2])))
    return tuple(pieces)


def _section_change(old: DocumentSection | None, new: DocumentSection | None) -> SectionChange:
    if old is None:
        return SectionChange(
            new.key,
            Change.ADDED,
            None,
            new.title,
            (Piece("added", new.title),),
            (Piece("added", new.body),),
            (),
            tuple(new.elements),
        )
    if new is None:
        return SectionChange(
            old.key,
            Change.REMOVED,
            old.title,
            None,
            (Piece("removed", old.title),),
            (Piece("removed", old.body),),
            tuple(old.elements),
            (),
        )
    same = (old.title, old.body, old.elements, old.content_note) == (
        new.title,
        new.body,
        new.elements,
        new.content_note,
    )
    return SectionChange(
        new.key,
        Change.UNCHANGED if same else Change.CHANGED,
        old.title,
        new.title,
        word_diff(old.title, new.title),
        word_diff(old.body, new.body),
        tuple(old.elements),
        tuple(new.elements),
    )


def compare(old: DocumentText, new: DocumentText) -> Redline:
    """Sections in the new version's order, with removed ones where they used to be."""
    if old.language != new.language:
        raise ValueError("compare texts in the same language")
    old_sections = {s.key: s for s in old.sections}
    new_keys = {s.key for s in new.sections}
    changes: list[SectionChange] = []
    pending_removed = [s for s in old.sections if s.key not in new_keys]
    for section in new.sections:
        while pending_removed and _comes_before(pending_removed[0], section, old):
            changes.append(_section_change(pending_removed.pop(0), None))
        changes.append(_section_change(old_sections.get(section.key), section))
    changes.extend(_section_change(s, None) for s in pending_removed)
    return Redline(old, new, tuple(changes), tuple(_other_changes(old, new)))


def _comes_before(removed: DocumentSection, section: DocumentSection, old: DocumentText) -> bool:
    old_position = next((s.position for s in old.sections if s.key == section.key), None)
    return old_position is None or removed.position < old_position


def _other_changes(old: DocumentText, new: DocumentText) -> list[PartChange]:
    parts = {
        "question": (
            lambda text: {
                q.key: (q.section_key, q.element, q.prompt, q.choices_json, q.answer, q.explanation)
                for q in text.questions
            }
        ),
        "optional_consent": (
            lambda text: {i.key: (i.statement, i.meaning) for i in text.optional_consents}
        ),
        "withdrawal_option": (
            lambda text: {
                o.key: (o.label, o.description, o.is_default) for o in text.withdrawal_options
            }
        ),
    }
    changes: list[PartChange] = []
    for part, read in parts.items():
        before, after = read(old), read(new)
        for key in after:
            if key not in before:
                changes.append(PartChange(part, key, Change.ADDED))
            elif before[key] != after[key]:
                changes.append(PartChange(part, key, Change.CHANGED))
        changes.extend(PartChange(part, key, Change.REMOVED) for key in before if key not in after)
    return changes
