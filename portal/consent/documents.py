"""Importing consent document files, moving versions through their lifecycle, offering them.

Services flush and audit; callers commit. An import is all or nothing: any problem in any file
means nothing is imported.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from portal.accounts.models import User
from portal.consent.document_format import (
    DOCUMENT_LANGUAGES,
    LOCALE_TO_DOCUMENT_LANGUAGE,
    ConsentDocumentFile,
    DocumentSet,
    Problem,
    version_key,
)
from portal.consent.models import (
    ComprehensionQuestion,
    ConsentDocument,
    DocumentError,
    DocumentSection,
    DocumentText,
    DocumentVersion,
    OptionalConsentItem,
    VersionStatus,
    WithdrawalDataOption,
)
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import Role


class ImportRefused(Exception):
    """The import found problems; nothing was imported."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    unchanged: int = 0


def import_documents(session: Session, found: DocumentSet, actor: audit.Actor) -> ImportReport:
    """Import every new version/language; refuse everything if any file has a problem."""
    problems = list(found.problems)
    report = ImportReport()
    for parsed in sorted(found.files, key=lambda f: (f.document, version_key(f.version))):
        existing = _existing_text(session, parsed)
        if existing is not None:
            if existing.content_hash == parsed.content_hash:
                report.unchanged += 1
            else:
                problems.append(
                    Problem(
                        parsed.path,
                        f"version {parsed.version} ({parsed.language}) was imported with content "
                        f"hash {existing.content_hash[:12]}… and this file now differs; published "
                        "text never changes, so save the change as a new version number "
                        f"(e.g. v{_next_version(parsed.version)})",
                    )
                )
            continue
        problem = _add_text(session, parsed, actor)
        if problem is not None:
            problems.append(problem)
        else:
            report.imported.append(f"{parsed.document} v{parsed.version} {parsed.language}")
    if problems:
        raise ImportRefused(problems)
    return report


def _next_version(version: str) -> str:
    major, minor = version_key(version)
    return f"{major}.{minor + 1}"


def _existing_text(session: Session, parsed: ConsentDocumentFile) -> DocumentText | None:
    return session.scalar(
        select(DocumentText)
        .join(DocumentVersion)
        .join(ConsentDocument)
        .where(
            ConsentDocument.slug == parsed.document,
            DocumentVersion.version == parsed.version,
            DocumentText.language == parsed.language,
        )
    )


def _add_text(session: Session, parsed: ConsentDocumentFile, actor: audit.Actor) -> Problem | None:
    document = ConsentDocument.by_slug(session, parsed.document)
    if document is None:
        document = ConsentDocument(slug=parsed.document)
        session.add(document)
        session.flush()
        audit.record(
            session,
            "document.created",
            actor=actor,
            object_type="consent_document",
            object_id=document.id,
            after={"slug": document.slug},
        )
    version = session.scalar(
        select(DocumentVersion).where(
            DocumentVersion.document_id == document.id,
            DocumentVersion.version == parsed.version,
        )
    )
    if version is None:
        major, minor = version_key(parsed.version)
        version = DocumentVersion(
            document=document,
            version=parsed.version,
            version_major=major,
            version_minor=minor,
            protocol=parsed.protocol,
            cooling_off_hours=parsed.cooling_off_hours,
            signatures_json=audit.canonical_json(parsed.signatures),
        )
        session.add(version)
        session.flush()
        audit.record(
            session,
            "document_version.imported",
            actor=actor,
            object_type="document_version",
            object_id=version.id,
            after={
                "document": document.slug,
                "version": version.version,
                "status": version.status,
                "protocol": version.protocol,
            },
        )
    elif version.status != VersionStatus.DRAFT:
        return Problem(
            parsed.path,
            f"version {parsed.version} is already {version.status}; a new language needs a new "
            f"version number (e.g. v{_next_version(parsed.version)})",
        )
    text = DocumentText(
        version=version,
        language=parsed.language,
        title=parsed.title,
        introduction=parsed.introduction,
        source=parsed.source,
        source_path=parsed.path,
        content_hash=parsed.content_hash,
    )
    session.add(text)
    session.flush()
    _add_parts(session, text, parsed)
    audit.record(
        session,
        "document_text.imported",
        actor=actor,
        object_type="document_text",
        object_id=text.id,
        after={
            "document": document.slug,
            "version": version.version,
            "language": text.language,
            "content_hash": text.content_hash,
            "source_path": text.source_path,
        },
    )
    return None


def _add_parts(session: Session, text: DocumentText, parsed: ConsentDocumentFile) -> None:
    for position, section in enumerate(parsed.sections):
        session.add(
            DocumentSection(
                text_id=text.id,
                position=position,
                key=section.id,
                title=section.title,
                body=section.body,
                elements_json=json.dumps(list(section.elements)),
                content_note=section.content_note,
            )
        )
    for position, question in enumerate(parsed.questions):
        session.add(
            ComprehensionQuestion(
                text_id=text.id,
                position=position,
                key=question.id,
                section_key=question.section,
                element=question.element,
                prompt=question.prompt,
                choices_json=json.dumps(
                    [{"id": c.id, "text": c.text} for c in question.choices], ensure_ascii=False
                ),
                answer=question.answer,
                explanation=question.explanation,
            )
        )
    for position, item in enumerate(parsed.optional_consents):
        session.add(
            OptionalConsentItem(
                text_id=text.id,
                position=position,
                key=item.id,
                statement=item.statement,
                meaning=item.meaning,
            )
        )
    for position, option in enumerate(parsed.withdrawal_options):
        session.add(
            WithdrawalDataOption(
                text_id=text.id,
                position=position,
                key=option.id,
                label=option.label,
                description=option.description,
                is_default=option.default,
            )
        )
    session.flush()


# --- lifecycle --------------------------------------------------------------------------------


def find_version(session: Session, slug: str, version: str) -> DocumentVersion:
    found = session.scalar(
        select(DocumentVersion)
        .join(ConsentDocument)
        .where(ConsentDocument.slug == slug, DocumentVersion.version == version)
    )
    if found is None:
        raise DocumentError(f"there is no version {version} of document '{slug}'")
    return found


def previous_approved_version(version: DocumentVersion) -> DocumentVersion | None:
    """The latest earlier version that was ever approved (approved, active or superseded)."""
    earlier = [
        v
        for v in version.document.versions
        if (v.version_major, v.version_minor) < (version.version_major, version.version_minor)
        and v.approved_at is not None
    ]
    return earlier[-1] if earlier else None


def _move(
    session: Session,
    version: DocumentVersion,
    target: VersionStatus,
    actor: User,
    reason: str | None,
    **after_extra: object,
) -> None:
    before = version.audit_view()
    version.move_to(target)
    audit.record(
        session,
        f"document_version.{target.value}",
        actor=audit.Actor.of(actor),
        object_type="document_version",
        object_id=version.id,
        before=before,
        after={**version.audit_view(), "version": version.label, **after_extra},
        reason=reason,
    )
    session.flush()


def submit_version(session: Session, version: DocumentVersion, actor: User) -> None:
    """Send a draft for ethics review: it must exist in every language the portal offers."""
    missing = sorted(set(DOCUMENT_LANGUAGES) - set(version.languages))
    if missing:
        raise DocumentError(
            f"{version.label} has no text in {', '.join(missing)} yet; every "
            "language must be reviewed together"
        )
    _move(session, version, VersionStatus.SUBMITTED, actor, None)


def approve_version(
    session: Session,
    version: DocumentVersion,
    actor: User,
    *,
    material_change: bool | None,
    reference: str,
) -> None:
    """Record the ethics panel's approval and whether patients must re-consent."""
    _require_administrator(actor)
    previous = previous_approved_version(version)
    if previous is not None and material_change is None:
        raise DocumentError(
            f"say whether {version.label} is a material change from "
            f"v{previous.version} (re-consent required) or not"
        )
    if version.status != VersionStatus.SUBMITTED:
        raise DocumentError(f"{version.label} is {version.status} and cannot become approved")
    version.material_change = bool(material_change) if previous is not None else False
    version.approved_at = utcnow()
    version.approved_by_id = actor.id
    version.approval_reference = reference
    _move(
        session,
        version,
        VersionStatus.APPROVED,
        actor,
        reference,
        compared_with=previous.version if previous else None,
    )


def activate_version(session: Session, version: DocumentVersion, actor: User) -> None:
    """Offer an approved version to patients; the version in use until now is superseded."""
    _require_administrator(actor)
    current = version.document.active_version
    if version.status != VersionStatus.APPROVED:
        raise DocumentError(f"{version.label} is {version.status} and cannot become active")
    if current is not None:
        if (current.version_major, current.version_minor) > (
            version.version_major,
            version.version_minor,
        ):
            raise DocumentError(f"{version.label} is older than the active v{current.version}")
        _move(session, current, VersionStatus.SUPERSEDED, actor, f"superseded by {version.label}")
    _move(session, version, VersionStatus.ACTIVE, actor, None)
    if version.material_change:
        from portal.consent.journey import request_reconsent

        request_reconsent(session, version, actor)


def withdraw_version(session: Session, version: DocumentVersion, actor: User, reason: str) -> None:
    _require_administrator(actor)
    if not reason.strip():
        raise DocumentError("give the reason for withdrawing the version")
    _move(session, version, VersionStatus.WITHDRAWN, actor, reason.strip())


def _require_administrator(actor: User) -> None:
    # The panel chair acts through a recorded opinion (portal/review); an administrator can
    # record an approval given outside the portal (`flask docs approve`).
    if actor.role not in (Role.ADMINISTRATOR, Role.PANEL_CHAIR) or not actor.active:
        raise DocumentError(f"{actor.email} is not an active administrator or panel chair")


# --- what patients are offered ------------------------------------------------------------------


def offered_text(session: Session, slug: str, locale: str) -> DocumentText | None:
    """The active, approved version of a document in the patient's language, or nothing."""
    language = LOCALE_TO_DOCUMENT_LANGUAGE.get(locale)
    if language is None:
        return None
    return session.scalar(
        select(DocumentText)
        .join(DocumentVersion)
        .join(ConsentDocument)
        .where(
            ConsentDocument.slug == slug,
            DocumentVersion.status == VersionStatus.ACTIVE,
            DocumentVersion.approved_at.is_not(None),
            DocumentText.language == language,
        )
    )


# Keys of texts already read, per database: document text is append-only (database triggers),
# so a text's sections never change once it exists.
_SECTION_KEYS: weakref.WeakKeyDictionary[Engine, dict[tuple[int, str], tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def section_keys(session: Session, text: DocumentText) -> tuple[str, ...]:
    """A text's section keys in reading order, read from the database once per process: each
    section page needs them to find its place, and loading every section to learn them cost
    more than the rest of the page's own work. Keyed by the content hash as well, so that a
    text id reused after a rolled-back import can never be answered with another text's keys."""
    kept = _SECTION_KEYS.setdefault(session.get_bind().engine, {})
    key = (text.id, text.content_hash)
    if key not in kept:
        kept[key] = tuple(
            session.scalars(
                select(DocumentSection.key)
                .where(DocumentSection.text_id == text.id)
                .order_by(DocumentSection.position)
            )
        )
    return kept[key]
