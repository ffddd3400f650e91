"""Time spent on each section, for the panel's reading analytics (never shown to patients).

Once the consent is open, showing a section writes nothing: the page's form carries a signed
visit token (which consent, which section, when it was opened), and the time is recorded when
the patient leaves the page with Next or Back. So reading or re-reading a page is a safe GET,
costing no row, no write lock and no fsync, and a page opened but never left, which the
analytics never counted, leaves no half-written row behind.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.consent.journey_models import Consent, SectionVisit
from portal.core.db import utcnow
from portal.oversight import tallies

MAX_SECTION_SECONDS = 2 * 60 * 60  # a page left open overnight is not reading time
VISIT_TOKEN_MAX_LENGTH = 200  # a token is about 100 characters; anything longer is not ours
_SALT = "portal.consent.section-visit"


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_SALT)


def visit_token(consent: Consent, section_key: str, opened_at: dt.datetime) -> str:
    """What the section page's form sends back when the patient leaves it."""
    return _signer().dumps([consent.id, section_key, opened_at.isoformat()])


def record_time_on_page(session: Session, consent: Consent, token: str | None) -> None:
    """Store one visit for the token: a form sent twice (a double click, the browser's Back
    button then Next again) is counted once, the caller holding the consent's row, and a token
    that does not verify or names another consent counts nothing, as a visit id that did not
    exist did before."""
    opened = _opened_section(consent, token)
    if opened is None:
        return
    section_key, opened_at = opened
    counted = session.scalar(
        select(SectionVisit.id).where(
            SectionVisit.consent_id == consent.id,
            SectionVisit.section_key == section_key,
            SectionVisit.opened_at == opened_at,
        )
    )
    if counted is not None:
        return
    elapsed = int((utcnow() - opened_at).total_seconds())
    seconds = min(max(elapsed, 0), MAX_SECTION_SECONDS)
    session.add(
        SectionVisit(
            consent_id=consent.id, section_key=section_key, opened_at=opened_at, seconds=seconds
        )
    )
    tallies.count_reading(session, consent.version_id, section_key, seconds)


def _opened_section(consent: Consent, token: str | None) -> tuple[str, dt.datetime] | None:
    if not token:
        return None
    try:
        consent_id, section_key, opened = _signer().loads(token)
        opened_at = dt.datetime.fromisoformat(opened)
    except (BadData, ValueError, TypeError):
        return None
    if consent_id != consent.id or opened_at.tzinfo is None:
        return None
    return section_key, opened_at
