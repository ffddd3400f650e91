"""Plain-language scores for consent text (Flesch reading ease, via textstat, offline)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import textstat

# Flesch reading ease is defined for English; other languages are not scored.
SCORED_LANGUAGES = {"en-GB"}
PLAIN_LANGUAGE_TARGET = 60.0

_MARKDOWN_NOISE = re.compile(r"[#*_`>|\[\]()]|^\s*[-+] |^\s*\d+\. ", re.MULTILINE)


@dataclass(frozen=True)
class Readability:
    reading_ease: float
    grade: float
    words: int

    @property
    def meets_target(self) -> bool:
        return self.reading_ease >= PLAIN_LANGUAGE_TARGET


def plain_text(markdown: str) -> str:
    """Markdown without its markup, and list items as separate sentences."""
    lines = [line.strip() for line in _MARKDOWN_NOISE.sub(" ", markdown).splitlines()]
    sentences = [
        line if line.endswith((".", "?", "!", ":")) else f"{line}." for line in lines if line
    ]
    return " ".join(sentences)


def score(markdown: str, language: str) -> Readability | None:
    if language not in SCORED_LANGUAGES:
        return None
    text = plain_text(markdown)
    return Readability(
        reading_ease=round(textstat.flesch_reading_ease(text), 1),
        grade=round(textstat.flesch_kincaid_grade(text), 1),
        words=textstat.lexicon_count(text),
    )
