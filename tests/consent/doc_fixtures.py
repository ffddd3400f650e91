"""Consent document files for tests: the documented small example, and variations of it."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).parents[2] / "docs" / "consent-docs.md"


def example_source() -> str:
    """The complete small example from docs/consent-docs.md (so the docs stay true)."""
    text = DOCS.read_text(encoding="utf-8")
    return re.search(r"```markdown\n(.+?)\n```\s*$", text, re.S)[1] + "\n"


def welsh(source: str) -> str:
    """The same version in Welsh: the same structure with (some) Welsh words."""
    return (
        source.replace("language: en-GB", "language: cy")
        .replace(
            'title: "The sleep diary study: information and consent"',
            'title: "Astudiaeth y dyddiadur cwsg: gwybodaeth a chydsyniad"',
        )
        .replace("Please read this carefully.", "Darllenwch hwn yn ofalus.")
    )


def write(root: Path, document: str, version: str, language: str, source: str) -> Path:
    folder = root / document
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"v{version}.{language}.md"
    path.write_text(source, encoding="utf-8")
    return path


def write_example(
    root: Path,
    version: str = "1.0",
    *,
    body_change: str | None = None,
    languages: tuple[str, ...] = ("en-GB", "cy"),
) -> None:
    """Write the example as `version` in both languages, optionally with one changed sentence."""
    source = example_source().replace('version: "1.0"', f'version: "{version}"')
    if body_change:
        source = source.replace("Writing about nightmares can be upsetting.", body_change)
    if "en-GB" in languages:
        write(root, "diary-study", version, "en-GB", source)
    if "cy" in languages:
        write(root, "diary-study", version, "cy", welsh(source))
