"""Object checks shared by the journey's views: a patient only ever reaches their own consent."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from portal.consent.journey_models import Consent
from portal.extensions import db


def own_consent_or_404(consent_id: int, *, lock: bool = False) -> Consent:
    """The signed-in patient's own consent; anyone else's is simply not found. With `lock`,
    its row is locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already lets one writer in at a time)."""
    consent = db.session.get(Consent, consent_id, with_for_update=lock or None)
    if consent is None or consent.patient_id != current_user.id:
        abort(404)
    return consent


def audit_consent_read(consent: Consent, what: str) -> None:
    """Staff reading a patient's answers, choices or questions is a sensitive read: audited
    (and committed even when the page goes on to refuse a submitted form)."""
    from portal.core import audit

    audit.record(
        db.session,
        "consent.viewed",
        actor=audit.Actor.of(current_user),
        object_type="consent",
        object_id=consent.id,
        after={"page": what},
    )
    db.session.commit()
