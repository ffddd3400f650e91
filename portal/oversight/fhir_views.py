"""Downloading one patient's consents as a FHIR R4 Bundle, for their own or their clinic's records.

Who may: the patient themself; a therapist, for the consents they took with that patient; the
ethics panel. Anyone else is told the patient does not exist (404), as records downloads do,
and the refused attempt is audited, as reads of concerns are. Every download is audited.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort
from flask_login import current_user

from portal.accounts.models import User
from portal.consent.journey_models import Consent
from portal.core import audit
from portal.core.permissions import PANEL_ROLES, Role, roles_required
from portal.extensions import db
from portal.oversight import fhir

bp = Blueprint("fhir", __name__, url_prefix="/fhir")


def _consents_for_current_user(patient_id: int) -> list[Consent] | None:
    """The consents this user may take away, or None when they may not see this patient."""
    if current_user.role == Role.PATIENT:
        if patient_id != current_user.id:
            return None
        return fhir.patient_consents(db.session, patient_id)
    if current_user.role == Role.THERAPIST:
        # Only a patient they took consent from, and only those consents (as with the PDFs).
        consents = fhir.patient_consents(db.session, patient_id, therapist_id=current_user.id)
        return consents or None
    if current_user.role in PANEL_ROLES:
        patient = db.session.get(User, patient_id)
        if patient is None or patient.role != Role.PATIENT:
            return None
        return fhir.patient_consents(db.session, patient_id)
    return None


@bp.route("/patients/<int:patient_id>/consents.json")
@roles_required(Role.PATIENT, Role.THERAPIST, *PANEL_ROLES)
def patient_consents(patient_id: int):
    actor = audit.Actor.of(current_user)
    consents = _consents_for_current_user(patient_id)
    if consents is None:
        audit.record(
            db.session,
            "fhir.download_refused",
            actor=actor,
            object_type="user",
            object_id=patient_id,
        )
        db.session.commit()
        abort(404)  # another person's patient does not exist, as far as this user knows
    records = fhir.consent_records(db.session, [consent.id for consent in consents])
    bundle = fhir.patient_bundle(patient_id, consents, records)
    audit.record(
        db.session,
        "fhir.downloaded",
        actor=actor,
        object_type="user",
        object_id=patient_id,
        after={"resource_type": "Bundle", "consents": [consent.id for consent in consents]},
    )
    db.session.commit()
    return Response(
        json.dumps(bundle, ensure_ascii=False),
        mimetype=fhir.FHIR_JSON,
        headers={
            "Content-Disposition": (
                f'attachment; filename="patient-{patient_id}-consents.fhir.json"'
            ),
            "Cache-Control": "no-store",
        },
    )
