"""FHIR R4 views of consents and audit events, so that other systems can read them.

Pure builders: each takes loaded rows and returns plain JSON-ready dicts (the R4B models of
`fhir.resources` check their shape in the tests; they do not check code values, so every code
used here is a module constant that the tests compare with the official value sets).
docs/fhir-export.md describes the mapping.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, joinedload, selectinload

from portal.consent.journey_models import Consent, ConsentStatus, Withdrawal, WithdrawalScope
from portal.consent.models import DocumentText, DocumentVersion
from portal.core import audit
from portal.core.db import reading_session, utcnow
from portal.core.permissions import Role
from portal.records.models import Record, RecordKind

# --- code systems and the codes used from them ------------------------------------------------

CONSENT_STATE_SYSTEM = "http://hl7.org/fhir/consent-state-codes"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentcategorycodes"
LOINC_SYSTEM = "http://loinc.org"
PROVISION_TYPE_SYSTEM = "http://hl7.org/fhir/consent-provision-type"

SCOPE_RESEARCH = {"system": CONSENT_SCOPE_SYSTEM, "code": "research", "display": "Research"}
CATEGORY_PATIENT_CONSENT = {"system": LOINC_SYSTEM, "code": "59284-0", "display": "Patient Consent"}
CATEGORY_RESEARCH = {
    "system": CONSENT_CATEGORY_SYSTEM,
    "code": "research",
    "display": "Research Information Access",
}
PERMIT, DENY = "permit", "deny"

# Our statuses as FHIR consent states. A withdrawn consent that was never complete was refused
# (rejected); one withdrawn after it was complete stopped being in force (inactive).
CONSENT_STATES: dict[str, str] = {
    ConsentStatus.OFFERED: "proposed",
    ConsentStatus.IN_PROGRESS: "proposed",
    ConsentStatus.SIGNED: "proposed",  # not yet agreed by all parties: awaiting countersignature
    ConsentStatus.COMPLETE: "active",
    ConsentStatus.REPLACED: "inactive",
    ConsentStatus.WITHDRAWN: "inactive",
}
REJECTED = "rejected"

AUDIT_EVENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_ACTION_SYSTEM = "http://hl7.org/fhir/audit-event-action"
AUDIT_OUTCOME_SYSTEM = "http://hl7.org/fhir/audit-event-outcome"
SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/object-role"
SECURITY_ROLE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"

EVENT_APPLICATION_ACTIVITY = {
    "system": DICOM_SYSTEM,
    "code": "110100",
    "display": "Application Activity",
}
EVENT_EXPORT = {"system": DICOM_SYSTEM, "code": "110106", "display": "Export"}
EVENT_PATIENT_RECORD = {"system": DICOM_SYSTEM, "code": "110110", "display": "Patient Record"}
EVENT_SECURITY_ALERT = {"system": DICOM_SYSTEM, "code": "110113", "display": "Security Alert"}
EVENT_USER_AUTHENTICATION = {
    "system": DICOM_SYSTEM,
    "code": "110114",
    "display": "User Authentication",
}
SUBTYPE_LOGIN = {"system": DICOM_SYSTEM, "code": "110122", "display": "Login"}
SUBTYPE_LOGOUT = {"system": DICOM_SYSTEM, "code": "110123", "display": "Logout"}
AGENT_APPLICATION = {"system": DICOM_SYSTEM, "code": "110150", "display": "Application"}
AGENT_HUMAN_USER = {
    "system": SECURITY_ROLE_TYPE_SYSTEM,
    "code": "humanuser",
    "display": "human user",
}
SOURCE_APPLICATION_SERVER = {
    "system": SOURCE_TYPE_SYSTEM,
    "code": "4",
    "display": "Application Server",
}
ENTITY_SYSTEM_OBJECT = {"system": ENTITY_TYPE_SYSTEM, "code": "2", "display": "System Object"}
ROLE_SECURITY_RESOURCE = {
    "system": OBJECT_ROLE_SYSTEM,
    "code": "13",
    "display": "Security Resource",
}

AUDIT_ACTIONS = frozenset({"C", "R", "U", "D", "E"})
OUTCOME_SUCCESS, OUTCOME_MINOR_FAILURE, OUTCOME_SERIOUS_FAILURE = "0", "4", "8"

# The portal's own code systems and identifiers (stable names, not addresses to fetch).
OPTIONAL_ITEM_SYSTEM = "urn:portal:optional-consent-item"  # code: the item's key
WITHDRAWAL_SCOPE_SYSTEM = "urn:portal:withdrawal-scope"  # code: "treatment"
AUDIT_ACTION_CODE_SYSTEM = "urn:portal:audit-action"  # code: the audit event's action
ROLE_SYSTEM = "urn:portal:role"  # code: the actor's role at the time
CONSENT_IDENTIFIER_SYSTEM = "urn:portal:consent"
AUDIT_EVENT_IDENTIFIER_SYSTEM = "urn:portal:audit-event"  # value: the event's seq
OBJECT_IDENTIFIER_PREFIX = "urn:portal:object:"  # + object_type; value: object_id
DOCUMENT_POLICY_PREFIX = "urn:portal:consent-document:"  # + slug:version
SHA256_EXTENSION_URL = "urn:portal:fhir:StructureDefinition:attachment-sha256"
PORTAL_DEVICE = "Device/portal"

FHIR_JSON = "application/fhir+json"
BULK_BATCH_SIZE = 200  # consents read at once; each brings its PDF (tens of kB)

# Verbs (the last word of an action such as "record.downloaded") by FHIR action code;
# anything else changes something that exists (U). The trail never deletes.
_READ_WORDS = frozenset({"viewed", "downloaded", "exported", "read"})
_EXECUTE_WORDS = frozenset(
    {"login", "logout", "failed", "throttled", "refused", "used", "ended", "sent", "started"}
)
_CREATE_WORDS = frozenset(
    {
        "created",
        "imported",
        "offered",
        "reported",
        "asked",
        "added",
        "raised",
        "recorded",
        "queued",
        "submitted",
        "commented",
        "cast",
        "answered",
        "declared",
        "placed",
        "enrolled",
    }
)
_MINOR_FAILURE_WORDS = frozenset({"refused", "failed", "throttled"})
_AUTHENTICATION_ACTIONS = frozenset(
    {
        "account.login",
        "account.login_failed",
        "account.login_throttled",
        "account.logout",
        "account.mfa_failed",
        "account.mfa_recovery_code_used",
        "account.session_ended",
    }
)
_PATIENT_RECORD_OBJECTS = frozenset({"consent", "withdrawal", "record"})


# --- small helpers ----------------------------------------------------------------------------


def _instant(moment: dt.datetime) -> str:
    """UTC with microseconds and 'Z', as the audit chain writes it (a valid FHIR instant)."""
    return audit.format_timestamp(moment)


def _base_url(base_url: str | None) -> str:
    if base_url is None:
        base_url = current_app.config["PORTAL_BASE_URL"] if has_app_context() else ""
    return base_url.rstrip("/")


def _portal_name() -> str:
    if has_app_context():
        return str(current_app.config.get("RECORD_SIGNER_NAME") or "Consent & Ethics Portal")
    return "Consent & Ethics Portal"


def _codeable(*codings: Mapping[str, str], text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [dict(c) for c in codings]}
    if text:
        concept["text"] = text
    return concept


def ndjson_line(resource: Mapping[str, Any]) -> str:
    """One resource as one line of NDJSON (compact UTF-8 JSON and a newline)."""
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"


# --- Consent ----------------------------------------------------------------------------------


def consent_state(consent: Consent) -> str:
    """Our status as a FHIR consent state (CONSENT_STATES; withdrawn before complete: rejected)."""
    if consent.status == ConsentStatus.WITHDRAWN and consent.completed_at is None:
        return REJECTED
    return CONSENT_STATES[consent.status]


def policy_uri(version: DocumentVersion) -> str:
    """The document's identity: its slug and version (the exact text is in the sealed PDF)."""
    return f"{DOCUMENT_POLICY_PREFIX}{version.document.slug}:{version.version}"


def record_attachment(
    record: Record, *, language: str | None = None, base_url: str | None = None
) -> dict[str, Any]:
    """The sealed PDF: FHIR asks for SHA-1 (base64) in `hash`, so the SHA-256 that the portal
    verifies records by travels in an extension."""
    digest = hashlib.sha1(record.pdf, usedforsecurity=False).digest()
    attachment: dict[str, Any] = {
        "extension": [{"url": SHA256_EXTENSION_URL, "valueString": record.sha256}],
        "contentType": "application/pdf",
        "url": f"{_base_url(base_url)}{_record_path(record.uid)}",
        "size": len(record.pdf),
        "hash": base64.b64encode(digest).decode("ascii"),
        "title": f"Signed consent record {record.uid}",
        "creation": _instant(record.created_at),
    }
    if language:
        attachment["language"] = language
    return attachment


def _record_path(uid: str) -> str:
    """Where the record is downloaded (signed in, by those who may see it)."""
    if has_app_context():
        return current_app.url_map.bind("localhost").build("records.download", {"uid": uid})
    return f"/records/{uid}.pdf"


def _treatment_withdrawal(consent: Consent) -> Withdrawal | None:
    """Stopping treatment outlasts a re-consent, as Consent.treatment_stopped says."""
    current: Consent | None = consent
    while current is not None:
        found = next((w for w in current.withdrawals if w.scope == WithdrawalScope.TREATMENT), None)
        if found is not None:
            return found
        current = current.replaces
    return None


def _provision(consent: Consent, state: str) -> dict[str, Any]:
    """Permit for the study, with a nested rule for each optional item: permit only while the
    patient's yes stands (agreed, not withdrawn since, still in the study); deny otherwise,
    from the day it was withdrawn when it had been agreed."""
    study = consent.study_withdrawal
    provision: dict[str, Any] = {"type": DENY if state == REJECTED else PERMIT}
    period: dict[str, str] = {}
    if consent.completed_at is not None:
        period["start"] = _instant(consent.completed_at)
        if study is not None:
            period["end"] = study.communicated_on.isoformat()
    if period:
        provision["period"] = period

    choices = consent.choice_map
    item_withdrawals = {
        w.item_key: w for w in consent.withdrawals if w.scope == WithdrawalScope.OPTIONAL_ITEM
    }
    nested = []
    for item in consent.text.optional_consents:
        agreed = choices.get(item.key) is True
        ended_by = item_withdrawals.get(item.key) or study
        permitted = agreed and ended_by is None and state != REJECTED
        rule: dict[str, Any] = {
            "type": PERMIT if permitted else DENY,
            "code": [
                _codeable(
                    {"system": OPTIONAL_ITEM_SYSTEM, "code": item.key},
                    text=item.statement,
                )
            ],
        }
        if agreed and ended_by is not None:
            rule["period"] = {"start": ended_by.communicated_on.isoformat()}
        nested.append(rule)
    stopped = _treatment_withdrawal(consent)
    if stopped is not None:
        nested.append(
            {
                "type": DENY,
                "code": [
                    _codeable(
                        {
                            "system": WITHDRAWAL_SCOPE_SYSTEM,
                            "code": WithdrawalScope.TREATMENT.value,
                        },
                        text="Treatment sessions",
                    )
                ],
                "period": {"start": stopped.communicated_on.isoformat()},
            }
        )
    if nested:
        provision["provision"] = nested
    return provision


def consent_resource(
    consent: Consent, *, record: Record | None = None, base_url: str | None = None
) -> dict[str, Any]:
    """A FHIR R4 Consent for one consent: state, patient, date, document, choices and the sealed
    PDF. `record` is the consent's sealed record (kind "consent"), if it has one; `base_url` is
    where the portal is reached (default: PORTAL_BASE_URL)."""
    state = consent_state(consent)
    patient = {"reference": f"Patient/{consent.patient_id}"}
    moment = consent.completed_at or consent.signed_at or consent.offered_at
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(consent.id),
        "identifier": [{"system": CONSENT_IDENTIFIER_SYSTEM, "value": str(consent.id)}],
        "status": state,
        "scope": _codeable(SCOPE_RESEARCH),
        "category": [_codeable(CATEGORY_PATIENT_CONSENT), _codeable(CATEGORY_RESEARCH)],
        "patient": patient,
        "dateTime": _instant(moment),
        # Grantor (the patient) and grantee (the study team, by the person who took consent).
        "performer": [patient, {"reference": f"Practitioner/{consent.therapist_id}"}],
        "organization": [{"display": _portal_name()}],
        "policy": [{"uri": policy_uri(consent.version)}],
        "provision": _provision(consent, state),
    }
    if record is not None:
        if record.consent_id != consent.id or record.kind != RecordKind.CONSENT:
            raise ValueError(f"record {record.uid} is not the consent record of {consent.id}")
        resource["sourceAttachment"] = record_attachment(
            record, language=consent.text.language, base_url=base_url
        )
    return resource


# --- loading ----------------------------------------------------------------------------------

_CONSENT_LOADING = (
    selectinload(Consent.choices),
    selectinload(Consent.withdrawals),
    joinedload(Consent.version).joinedload(DocumentVersion.document),
    joinedload(Consent.text).selectinload(DocumentText.optional_consents),
)


def consent_records(session: Session, consent_ids: Iterable[int]) -> dict[int, Record]:
    """Each consent's sealed consent record (not its withdrawal receipts), by consent id."""
    ids = list(consent_ids)
    if not ids:
        return {}
    records = session.scalars(
        select(Record)
        .where(Record.consent_id.in_(ids), Record.kind == RecordKind.CONSENT.value)
        .order_by(Record.id.desc())
    )
    return {record.consent_id: record for record in records}  # the first sealed wins


def patient_consents(
    session: Session, patient_id: int, *, therapist_id: int | None = None
) -> list[Consent]:
    """A patient's consents, oldest first; only those taken by `therapist_id` when given."""
    query = select(Consent).where(Consent.patient_id == patient_id)
    if therapist_id is not None:
        query = query.where(Consent.therapist_id == therapist_id)
    return list(session.scalars(query.options(*_CONSENT_LOADING).order_by(Consent.id)))


def iter_consent_resources(
    bind: Engine, *, batch_size: int = BULK_BATCH_SIZE, base_url: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every consent as a Consent resource, in id order, read in keyset batches.

    One reading session of its own (core.db.reading_session): the export sees one snapshot
    without holding SQLite's write lock, and each batch is let go before the next is read, so
    memory stays flat however many consents there are.
    """
    base_url = _base_url(base_url)
    last_id = 0
    with reading_session(bind) as session:
        while True:
            consents = session.scalars(
                select(Consent)
                .where(Consent.id > last_id)
                .options(*_CONSENT_LOADING)
                .order_by(Consent.id)
                .limit(batch_size)
            ).all()
            if not consents:
                return
            records = consent_records(session, [c.id for c in consents])
            resources = [
                consent_resource(c, record=records.get(c.id), base_url=base_url) for c in consents
            ]
            last_id = consents[-1].id
            session.expunge_all()  # its own session: nothing else lives in it
            del consents, records
            yield from resources


def consent_ndjson_lines(
    bind: Engine, *, batch_size: int = BULK_BATCH_SIZE, base_url: str | None = None
) -> Iterator[str]:
    """Bulk export: one Consent resource per line (NDJSON), streamed batch by batch."""
    for resource in iter_consent_resources(bind, batch_size=batch_size, base_url=base_url):
        yield ndjson_line(resource)


# --- Bundle -----------------------------------------------------------------------------------


def patient_bundle(
    patient_id: int,
    consents: Sequence[Consent],
    records: Mapping[int, Record],
    *,
    base_url: str | None = None,
) -> dict[str, Any]:
    """One patient's consents as a Bundle of type collection (refuses anyone else's consent,
    so that a download can never carry another patient's)."""
    base_url = _base_url(base_url)
    entries = []
    for consent in consents:
        if consent.patient_id != patient_id:
            raise ValueError(f"consent {consent.id} is not patient {patient_id}'s")
        # Not served by a FHIR server: a stable urn:uuid names each entry.
        name = uuid.uuid5(uuid.NAMESPACE_URL, f"{base_url}/fhir/Consent/{consent.id}")
        entries.append(
            {
                "fullUrl": name.urn,
                "resource": consent_resource(
                    consent, record=records.get(consent.id), base_url=base_url
                ),
            }
        )
    return {
        "resourceType": "Bundle",
        "id": f"patient-{patient_id}-consents",
        "type": "collection",
        "timestamp": _instant(utcnow()),
        "entry": entries,
    }


# --- AuditEvent -------------------------------------------------------------------------------


def _verb(action: str) -> str:
    return action.rsplit(".", 1)[-1].rsplit("_", 1)[-1]


def audit_action_code(action: str) -> str:
    """C, R, U, D or E for one of our actions, from its verb (see docs/fhir-export.md)."""
    verb = _verb(action)
    if verb in _READ_WORDS:
        return "R"
    if verb in _EXECUTE_WORDS:
        return "E"
    if verb in _CREATE_WORDS:
        return "C"
    return "U"


def audit_outcome_code(action: str) -> str:
    """0 success; 4 a refusal or a failed attempt by a person; 8 the portal failed (a send)."""
    if action == "notification.send_failed":
        return OUTCOME_SERIOUS_FAILURE
    if _verb(action) in _MINOR_FAILURE_WORDS:
        return OUTCOME_MINOR_FAILURE
    return OUTCOME_SUCCESS


def audit_event_type(action: str, object_type: str | None) -> dict[str, str]:
    """The DICOM event type that fits best."""
    if action in _AUTHENTICATION_ACTIONS:
        return dict(EVENT_USER_AUTHENTICATION)
    verb = _verb(action)
    if verb in ("refused", "throttled"):
        return dict(EVENT_SECURITY_ALERT)
    if verb in ("exported", "downloaded"):
        return dict(EVENT_EXPORT)
    if object_type in _PATIENT_RECORD_OBJECTS:
        return dict(EVENT_PATIENT_RECORD)
    return dict(EVENT_APPLICATION_ACTIVITY)


def _user_reference(actor_id: int, role: str) -> dict[str, str]:
    kind = "Patient" if role == Role.PATIENT else "Practitioner"
    return {"reference": f"{kind}/{actor_id}"}


def _agents(event: audit.AuditEvent) -> list[dict[str, Any]]:
    """The person who acted (the requestor), then the portal itself (the requestor when the
    system acted on its own)."""
    agents = []
    system_acted = event.actor_role == audit.SYSTEM_ROLE
    if not system_acted:
        person: dict[str, Any] = {
            "type": _codeable(AGENT_HUMAN_USER),
            "role": [_codeable({"system": ROLE_SYSTEM, "code": event.actor_role})],
            "requestor": True,
        }
        if event.actor_id is not None:
            person["who"] = _user_reference(event.actor_id, event.actor_role)
        else:
            person["name"] = event.actor_role  # anonymous: a failed sign-in, say
        agents.append(person)
    agents.append(
        {
            "type": _codeable(AGENT_APPLICATION),
            "who": {"reference": PORTAL_DEVICE, "display": _portal_name()},
            "requestor": system_acted,
        }
    )
    return agents


def _detail(kind: str, value: str | None) -> list[dict[str, str]]:
    return [] if value is None else [{"type": kind, "valueString": value}]


def _object_entity(event: audit.AuditEvent) -> dict[str, Any]:
    what: dict[str, Any] = {
        "identifier": {
            "system": f"{OBJECT_IDENTIFIER_PREFIX}{event.object_type}",
            "value": event.object_id or "",
        }
    }
    if event.object_type == "consent" and event.object_id:
        what["reference"] = f"Consent/{event.object_id}"
    entity: dict[str, Any] = {
        "what": what,
        "type": dict(ENTITY_SYSTEM_OBJECT),
        "name": event.object_type,
    }
    details = [
        *_detail("before", event.before_json),
        *_detail("after", event.after_json),
        *_detail("reason", event.reason),
    ]
    if details:
        entity["detail"] = details
    return entity


def _chain_entity(event: audit.AuditEvent) -> dict[str, Any]:
    """The event's place in the hash chain, with the exact bytes that were hashed (base64):
    anyone can check SHA-256(canonical) == hash, and each prev_hash against the event before."""
    canonical = audit.canonical_event_bytes(
        occurred_at=event.occurred_at,
        seq=event.seq,
        actor_id=event.actor_id,
        actor_role=event.actor_role,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        reason=event.reason,
        before_json=event.before_json,
        after_json=event.after_json,
        request_id=event.request_id,
        prev_hash=event.prev_hash,
    )
    return {
        "what": {"identifier": {"system": AUDIT_EVENT_IDENTIFIER_SYSTEM, "value": str(event.seq)}},
        "type": dict(ENTITY_SYSTEM_OBJECT),
        "role": dict(ROLE_SECURITY_RESOURCE),
        "name": "audit chain",
        "detail": [
            {"type": "seq", "valueString": str(event.seq)},
            {"type": "prev_hash", "valueString": event.prev_hash},
            {"type": "hash", "valueString": event.hash},
            {"type": "canonical", "valueBase64Binary": base64.b64encode(canonical).decode()},
            *_detail("request_id", event.request_id),
        ],
    }


def audit_event_resource(event: audit.AuditEvent) -> dict[str, Any]:
    """A FHIR R4 AuditEvent for one event of the audit trail, carrying its before/after and its
    link in the hash chain so that the export can still be verified outside the portal."""
    outcome = audit_outcome_code(event.action)
    subtypes = [{"system": AUDIT_ACTION_CODE_SYSTEM, "code": event.action}]
    if event.action == "account.login":
        subtypes.append(dict(SUBTYPE_LOGIN))
    elif event.action == "account.logout":
        subtypes.append(dict(SUBTYPE_LOGOUT))
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.seq),
        "type": audit_event_type(event.action, event.object_type),
        "subtype": subtypes,
        "action": audit_action_code(event.action),
        "recorded": _instant(event.occurred_at),
        "outcome": outcome,
        "agent": _agents(event),
        "source": {
            "observer": {"reference": PORTAL_DEVICE, "display": _portal_name()},
            "type": [dict(SOURCE_APPLICATION_SERVER)],
        },
        "entity": [
            *([_object_entity(event)] if event.object_type else []),
            _chain_entity(event),
        ],
    }
    if outcome != OUTCOME_SUCCESS and event.reason:
        resource["outcomeDesc"] = event.reason
    return resource
