"""FHIR R4 export: valid Consent and AuditEvent resources with official codes, the sealed PDF's
hashes, withdrawals as deny provisions, the bulk NDJSON command and the per-patient download."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle as FhirBundle
from fhir.resources.R4B.consent import Consent as FhirConsent
from sqlalchemy import select

from portal.consent.journey_models import Consent, ConsentStatus
from portal.core.audit import AuditEvent
from portal.core.permissions import Role
from portal.extensions import db
from portal.oversight import fhir
from portal.records.models import Record
from tests.consent.journey_helpers import Journey, complete, set_up_journey
from tests.factories import create_account
from tests.helpers import PortalClient

# --- the official value sets (FHIR R4 4.0.1 and the terminology it binds) ----------------------

DCM = "http://dicom.nema.org/resources/ontology/DCM"
OFFICIAL_CODES: dict[str, dict[str, str | None]] = {
    # Consent.status (required binding)
    "http://hl7.org/fhir/consent-state-codes": dict.fromkeys(
        ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
    ),
    # Consent.scope
    "http://terminology.hl7.org/CodeSystem/consentscope": {
        "adr": "Advanced Care Directive",
        "research": "Research",
        "patient-privacy": "Privacy Consent",
        "treatment": "Treatment",
    },
    # Consent.category: the LOINC codes of the consent-category value set, and its code system
    "http://loinc.org": {
        "59284-0": "Patient Consent",
        "57016-8": "Privacy policy acknowledgement Document",
        "57017-6": "Privacy policy Organization Document",
        "64292-6": "Release of information consent",
    },
    "http://terminology.hl7.org/CodeSystem/consentcategorycodes": {
        "acd": "Advance Directive",
        "dnr": "Do Not Resuscitate",
        "emrgonly": "Emergency Only",
        "hcd": "Health Care Directive",
        "npp": "Notice of Privacy Practices",
        "polst": "POLST",
        "research": "Research Information Access",
        "rsdid": "De-identified Information Access",
        "rsreid": "Re-identifiable Information Access",
    },
    # Consent.provision.type (required binding)
    "http://hl7.org/fhir/consent-provision-type": dict.fromkeys(("deny", "permit")),
    # AuditEvent.action and .outcome (required bindings)
    "http://hl7.org/fhir/audit-event-action": dict.fromkeys(("C", "R", "U", "D", "E")),
    "http://hl7.org/fhir/audit-event-outcome": dict.fromkeys(("0", "4", "8", "12")),
    # AuditEvent.type: DICOM CID 400 (audit event ID) plus FHIR's own "rest"
    "http://terminology.hl7.org/CodeSystem/audit-event-type": {"rest": "RESTful Operation"},
    DCM: {
        "110100": "Application Activity",
        "110101": "Audit Log Used",
        "110102": "Begin Transferring DICOM Instances",
        "110103": "DICOM Instances Accessed",
        "110104": "DICOM Instances Transferred",
        "110105": "DICOM Study Deleted",
        "110106": "Export",
        "110107": "Import",
        "110108": "Network Entry",
        "110109": "Order Record",
        "110110": "Patient Record",
        "110111": "Procedure Record",
        "110112": "Query",
        "110113": "Security Alert",
        "110114": "User Authentication",
        # CID 401 (event type codes, for subtype), those used
        "110122": "Login",
        "110123": "Logout",
        # CID 402 (active participant roles, for agent.type)
        "110150": "Application",
        "110151": "Application Launcher",
        "110152": "Destination Role ID",
        "110153": "Source Role ID",
        "110154": "Destination Media",
        "110155": "Source Media",
    },
    "http://terminology.hl7.org/CodeSystem/extra-security-role-type": {
        "authserver": "authorization server",
        "datacollector": "data collector",
        "dataprocessor": "data processor",
        "datasubject": "data subject",
        "humanuser": "human user",
    },
    "http://terminology.hl7.org/CodeSystem/security-source-type": {
        "1": "User Device",
        "2": "Data Interface",
        "3": "Web Server",
        "4": "Application Server",
        "5": "Database Server",
        "6": "Security Server",
        "7": "Network Device",
        "8": "Network Router",
        "9": "Other",
    },
    "http://terminology.hl7.org/CodeSystem/audit-entity-type": {
        "1": "Person",
        "2": "System Object",
        "3": "Organization",
        "4": "Other",
    },
    "http://terminology.hl7.org/CodeSystem/object-role": {
        "1": "Patient",
        "3": "Report",
        "4": "Domain Resource",
        "13": "Security Resource",
    },
}
# Which code systems each kind of element may draw from.
DCM_EVENT_IDS = {f"1101{n:02d}" for n in range(15)}
DCM_EVENT_SUBTYPES = {"110122", "110123"}
DCM_AGENT_ROLES = {f"11015{n}" for n in range(6)}


def codings(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Coding in a resource (a dict with a system and a code), with where it is."""
    if isinstance(value, dict):
        if "system" in value and "code" in value:
            yield path, value
        for key, item in value.items():
            yield from codings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from codings(item, path)


def assert_official_codes(resource: dict[str, Any]) -> None:
    """Each coding from an official system is one of its codes, with its display; the rest
    are the portal's own (urn:portal:...)."""
    for path, coding in codings(resource):
        system, code = coding["system"], coding["code"]
        if system.startswith("urn:portal:"):
            assert code, path
            continue
        assert system in OFFICIAL_CODES, (path, system)
        assert code in OFFICIAL_CODES[system], (path, system, code)
        expected = OFFICIAL_CODES[system][code]
        if expected is not None and "display" in coding:
            assert coding["display"] == expected, (path, coding)


def assert_valid_consent(resource: dict[str, Any]) -> FhirConsent:
    model = FhirConsent.model_validate(resource)
    assert_official_codes(resource)
    assert resource["status"] in OFFICIAL_CODES["http://hl7.org/fhir/consent-state-codes"]
    types = OFFICIAL_CODES["http://hl7.org/fhir/consent-provision-type"]
    for provision in _provisions(resource["provision"]):
        assert provision["type"] in types
    category_systems = {c["system"] for cat in resource["category"] for c in cat["coding"]}
    assert category_systems <= {
        "http://loinc.org",
        "http://terminology.hl7.org/CodeSystem/consentcategorycodes",
    }
    assert resource["scope"]["coding"][0]["system"].endswith("/consentscope")
    return model


def _provisions(provision: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield provision
    for nested in provision.get("provision", []):
        yield from _provisions(nested)


def assert_valid_audit_event(resource: dict[str, Any]) -> FhirAuditEvent:
    model = FhirAuditEvent.model_validate(resource)
    assert_official_codes(resource)
    assert resource["action"] in OFFICIAL_CODES["http://hl7.org/fhir/audit-event-action"]
    assert resource["outcome"] in OFFICIAL_CODES["http://hl7.org/fhir/audit-event-outcome"]
    event_type = resource["type"]
    assert (event_type["system"] == DCM and event_type["code"] in DCM_EVENT_IDS) or (
        event_type["system"].endswith("/audit-event-type")
    )
    for subtype in resource["subtype"]:
        assert subtype["system"] == fhir.AUDIT_ACTION_CODE_SYSTEM or (
            subtype["system"] == DCM and subtype["code"] in DCM_EVENT_SUBTYPES
        )
    for agent in resource["agent"]:
        for coding in agent["type"]["coding"]:
            assert coding["system"] != DCM or coding["code"] in DCM_AGENT_ROLES
    return model


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def completed(make_app, database_url, tmp_path) -> Journey:
    """A signed, countersigned consent with its sealed record (the patient said yes to the
    optional item, future contact)."""
    return complete(set_up_journey(make_app, database_url, tmp_path))


def consent_and_record(journey: Journey) -> tuple[dict[str, Any], bytes, Record]:
    with journey.app.app_context():
        consent = journey.consent()
        record = fhir.consent_records(db.session, [consent.id]).get(consent.id)
        resource = fhir.consent_resource(consent, record=record)
        if record is not None:
            db.session.expunge(record)
        return resource, (record.pdf if record else b""), record


def withdraw(journey: Journey, **choice: str) -> None:
    response = journey.patient_client().post(
        f"/withdraw/{journey.consent_id}/confirm",
        {"reason": "", **choice, "password": journey.patient.password},
    )
    assert response.status_code == 302, response.text


def nested(resource: dict[str, Any], system: str, code: str) -> dict[str, Any]:
    return next(
        p
        for p in resource["provision"].get("provision", [])
        if any(c["system"] == system and c["code"] == code for c in p["code"][0]["coding"])
    )


def actions(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        found = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        ).all()
        for event in found:
            db.session.expunge(event)
        return found


# --- Consent ---------------------------------------------------------------------------------


def test_every_status_maps_to_an_official_consent_state():
    states = OFFICIAL_CODES["http://hl7.org/fhir/consent-state-codes"]
    assert set(fhir.CONSENT_STATES) == set(ConsentStatus)
    assert set(fhir.CONSENT_STATES.values()) | {fhir.REJECTED} <= set(states)


def test_a_countersigned_consent_is_an_active_valid_consent_carrying_its_sealed_pdf(completed):
    resource, pdf, record = consent_and_record(completed)
    assert_valid_consent(resource)
    with completed.app.app_context():
        consent = completed.consent()
        assert resource["id"] == str(consent.id)
        assert resource["status"] == "active"
        assert resource["patient"] == {"reference": f"Patient/{completed.patient.id}"}
        assert resource["dateTime"].startswith(consent.completed_at.strftime("%Y-%m-%dT%H:%M:%S"))
        assert resource["policy"] == [{"uri": "urn:portal:consent-document:diary-study:1.0"}]
        statement = consent.text.optional_consents[0].statement
    assert {c["code"] for c in resource["scope"]["coding"]} == {"research"}
    assert resource["provision"]["type"] == "permit"
    item = nested(resource, fhir.OPTIONAL_ITEM_SYSTEM, "future-contact")
    assert item["type"] == "permit"
    assert item["code"][0]["text"] == statement

    attachment = resource["sourceAttachment"]
    assert attachment["contentType"] == "application/pdf"
    assert attachment["size"] == len(pdf)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    sha256 = next(e for e in attachment["extension"] if e["url"] == fhir.SHA256_EXTENSION_URL)
    assert sha256["valueString"] == record.sha256 == hashlib.sha256(pdf).hexdigest()
    base = completed.app.config["PORTAL_BASE_URL"]
    assert attachment["url"] == f"{base}/records/{record.uid}.pdf"
    # The address serves exactly these bytes to the patient.
    path = attachment["url"].removeprefix(base)
    assert completed.patient_client().get(path).data == pdf


def test_withdrawing_an_optional_item_turns_its_provision_to_deny(completed):
    withdraw(completed, scope="optional_item", item="future-contact")
    resource, _pdf, _record = consent_and_record(completed)
    assert_valid_consent(resource)
    assert resource["status"] == "active"  # still in the study
    item = nested(resource, fhir.OPTIONAL_ITEM_SYSTEM, "future-contact")
    assert item["type"] == "deny"
    assert "start" in item["period"]  # denied from the day it was withdrawn


def test_withdrawing_from_the_study_makes_the_consent_inactive(completed):
    withdraw(completed, scope="study", data_option="keep")
    resource, pdf, _record = consent_and_record(completed)
    assert_valid_consent(resource)
    assert resource["status"] == "inactive"
    assert "end" in resource["provision"]["period"]
    assert nested(resource, fhir.OPTIONAL_ITEM_SYSTEM, "future-contact")["type"] == "deny"
    with completed.app.app_context():  # the consent record, never the withdrawal receipt
        receipt = db.session.scalars(select(Record).where(Record.kind == "withdrawal")).one()
        assert resource["sourceAttachment"]["extension"][0]["valueString"] != receipt.sha256
    assert resource["sourceAttachment"]["size"] == len(pdf)


def test_stopping_treatment_adds_a_deny_provision(completed):
    withdraw(completed, scope="treatment")
    resource, _pdf, _record = consent_and_record(completed)
    assert_valid_consent(resource)
    assert resource["status"] == "active"
    assert nested(resource, fhir.WITHDRAWAL_SCOPE_SYSTEM, "treatment")["type"] == "deny"


def test_an_offered_consent_is_proposed_and_one_refused_before_signing_is_rejected(
    make_app, database_url, tmp_path
):
    journey = set_up_journey(make_app, database_url, tmp_path)
    resource, _pdf, record = consent_and_record(journey)
    assert_valid_consent(resource)
    assert record is None and "sourceAttachment" not in resource
    assert resource["status"] == "proposed"
    assert nested(resource, fhir.OPTIONAL_ITEM_SYSTEM, "future-contact")["type"] == "deny"

    withdraw(journey, scope="study")
    resource, _pdf, _record = consent_and_record(journey)
    assert_valid_consent(resource)
    assert resource["status"] == "rejected"
    assert resource["provision"]["type"] == "deny"


def test_a_bundle_refuses_another_patients_consent(completed):
    with completed.app.app_context():
        consent = completed.consent()
        with pytest.raises(ValueError, match="not patient"):
            fhir.patient_bundle(consent.patient_id + 1000, [consent], {})


# --- AuditEvent ------------------------------------------------------------------------------


def test_every_audit_event_is_a_valid_audit_event_that_can_be_verified(completed):
    PortalClient(completed.app).post(
        "/account/sign-in", {"email": completed.patient.email, "password": "wrong password"}
    )
    with completed.app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        resources = [fhir.audit_event_resource(event) for event in events]
    assert {e.action for e in events} >= {
        "account.created",
        "account.login",
        "account.login_failed",
        "consent.offered",
        "consent.signed",
        "consent.countersigned",
        "record.created",
    }
    for event, resource in zip(events, resources, strict=True):
        assert_valid_audit_event(resource)
        assert resource["id"] == str(event.seq)
        assert resource["subtype"][0]["code"] == event.action
        chain = next(e for e in resource["entity"] if e["name"] == "audit chain")
        detail = {d["type"]: d for d in chain["detail"]}
        assert detail["hash"]["valueString"] == event.hash
        assert detail["prev_hash"]["valueString"] == event.prev_hash
        canonical = base64.b64decode(detail["canonical"]["valueBase64Binary"])
        assert hashlib.sha256(canonical).hexdigest() == event.hash
        if event.object_type:
            entity = resource["entity"][0]
            assert entity["what"]["identifier"]["value"] == event.object_id
            values = {d["type"]: d.get("valueString") for d in entity.get("detail", [])}
            assert values.get("before") == event.before_json
            assert values.get("after") == event.after_json
        requestors = [a for a in resource["agent"] if a["requestor"]]
        assert len(requestors) == 1
        if event.actor_role == "system":
            assert requestors[0]["who"]["reference"] == "Device/portal"
        elif event.actor_id is not None:
            kind = "Patient" if event.actor_role == Role.PATIENT else "Practitioner"
            assert requestors[0]["who"]["reference"] == f"{kind}/{event.actor_id}"

    by_action = {e.action: r for e, r in zip(events, resources, strict=True)}
    assert by_action["account.login_failed"]["outcome"] == "4"
    assert by_action["account.login"]["action"] == "E"
    assert by_action["account.login"]["type"]["code"] == "110114"
    assert by_action["consent.offered"]["action"] == "C"
    assert by_action["consent.signed"]["action"] == "U"
    assert by_action["record.created"]["outcome"] == "0"
    assert by_action["consent.offered"]["entity"][0]["what"]["reference"].startswith("Consent/")


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("record.downloaded", "R"),
        ("fhir.exported", "R"),
        ("consent.viewed", "R"),
        ("incident.access_refused", "E"),
        ("withdrawal.recorded", "C"),
        ("account.role_changed", "U"),
        ("consent.withdrawn", "U"),
    ],
)
def test_action_codes_follow_the_verb(action, code):
    assert fhir.audit_action_code(action) == code
    assert code in fhir.AUDIT_ACTIONS


# --- bulk export -----------------------------------------------------------------------------


def _offer_to_a_second_patient(journey: Journey) -> None:
    from portal.accounts.models import User
    from portal.consent.models import ConsentDocument

    other = create_account(journey.app, Role.PATIENT, "second@example.org", full_name="Alex")
    with journey.app.app_context():
        db.session.get(User, other.id).invited_by_id = journey.therapist.id
        db.session.commit()
        document_id = db.session.scalar(select(ConsentDocument.id))
    response = journey.therapist_client().post(
        f"/consent/team/offer/{other.id}", {"document_id": document_id}
    )
    assert response.status_code == 302


def test_the_export_command_writes_one_valid_consent_per_line_and_is_audited(completed, tmp_path):
    _offer_to_a_second_patient(completed)
    target = tmp_path / "consents.ndjson"
    result = completed.app.test_cli_runner().invoke(args=["export", "fhir", str(target)])
    assert result.exit_code == 0, result.output
    lines = target.read_text(encoding="utf-8").splitlines()
    with completed.app.app_context():
        consent_ids = list(db.session.scalars(select(Consent.id).order_by(Consent.id)))
    assert len(lines) == len(consent_ids) == 2
    assert f"Wrote {len(lines)} Consent resources" in result.output
    resources = [json.loads(line) for line in lines]
    for resource in resources:
        assert_valid_consent(resource)
    assert [int(r["id"]) for r in resources] == consent_ids
    assert [r["status"] for r in resources] == ["active", "proposed"]

    (event,) = actions(completed.app, "fhir.exported")
    assert event.actor_role == "system"
    assert event.after["count"] == 2
    assert event.after["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()

    # Batches of one read the same thing as the command's larger batches.
    with completed.app.app_context():
        assert list(fhir.consent_ndjson_lines(db.engine, batch_size=1)) == [
            line + "\n" for line in lines
        ]


def test_the_export_command_writes_to_standard_output(completed):
    result = completed.app.test_cli_runner().invoke(args=["export", "fhir", "-"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert_valid_consent(json.loads(lines[0]))
    assert "Wrote 1 Consent resources to stdout" in result.stderr
    assert len(actions(completed.app, "fhir.exported")) == 1


# --- the per-patient download ----------------------------------------------------------------


def _download(client: PortalClient, patient_id: int):
    return client.get(f"/fhir/patients/{patient_id}/consents.json")


def _signed_in(app, account) -> PortalClient:
    client = PortalClient(app)
    client.login(account.email, account.password)
    return client


def test_the_patient_their_therapist_and_the_panel_download_the_bundle(completed):
    member = create_account(completed.app, Role.PANEL_MEMBER, "member@example.org")
    patient_id = completed.patient.id
    for who, client in (
        (completed.patient, completed.patient_client()),
        (completed.therapist, completed.therapist_client()),
        (member, _signed_in(completed.app, member)),
    ):
        response = _download(client, patient_id)
        assert response.status_code == 200, who
        assert response.mimetype == "application/fhir+json"
        assert "attachment" in response.headers["Content-Disposition"]
        bundle = response.get_json(force=True)
        FhirBundle.model_validate(bundle)
        assert bundle["type"] == "collection"
        assert [e["resource"]["id"] for e in bundle["entry"]] == [str(completed.consent_id)]
        for entry in bundle["entry"]:
            assert_valid_consent(entry["resource"])
            assert entry["resource"]["patient"]["reference"] == f"Patient/{patient_id}"
    downloads = actions(completed.app, "fhir.downloaded")
    assert [(e.actor_id, e.object_id) for e in downloads] == [
        (completed.patient.id, str(patient_id)),
        (completed.therapist.id, str(patient_id)),
        (member.id, str(patient_id)),
    ]
    assert downloads[0].after["consents"] == [completed.consent_id]


def test_another_patient_and_an_unrelated_therapist_are_refused_and_audited(completed):
    other_patient = create_account(completed.app, Role.PATIENT, "p2@example.org")
    other_therapist = create_account(completed.app, Role.THERAPIST, "t2@example.org")
    member = create_account(completed.app, Role.PANEL_MEMBER, "member@example.org")
    for account, patient_id in (
        (other_patient, completed.patient.id),
        (other_therapist, completed.patient.id),
        (member, completed.therapist.id),  # not a patient at all
    ):
        response = _download(_signed_in(completed.app, account), patient_id)
        assert response.status_code == 404
        assert "resourceType" not in response.text
    refused = actions(completed.app, "fhir.download_refused")
    assert [(e.actor_id, e.object_id) for e in refused] == [
        (other_patient.id, str(completed.patient.id)),
        (other_therapist.id, str(completed.patient.id)),
        (member.id, str(completed.therapist.id)),
    ]
    assert actions(completed.app, "fhir.downloaded") == []
    investigator = create_account(completed.app, Role.INVESTIGATOR, "i@example.org")
    response = _download(_signed_in(completed.app, investigator), completed.patient.id)
    assert response.status_code == 403


def test_a_therapist_gets_only_the_consents_they_took(completed):
    """A patient who also consented with another therapist: each therapist sees their own."""
    other_therapist = create_account(completed.app, Role.THERAPIST, "t2@example.org")
    with completed.app.app_context():
        first = completed.consent()
        second = Consent(
            patient_id=first.patient_id,
            therapist_id=other_therapist.id,
            version_id=first.version_id,
            text_id=first.text_id,
            content_hash=first.content_hash,
            status=ConsentStatus.WITHDRAWN.value,  # before signing: the index allows it
        )
        db.session.add(second)
        db.session.commit()
        second_id = second.id
    theirs = _download(_signed_in(completed.app, other_therapist), completed.patient.id)
    assert [e["resource"]["id"] for e in theirs.get_json(force=True)["entry"]] == [str(second_id)]
    own = _download(completed.therapist_client(), completed.patient.id)
    assert [e["resource"]["id"] for e in own.get_json(force=True)["entry"]] == [
        str(completed.consent_id)
    ]
    everything = _download(completed.patient_client(), completed.patient.id)
    assert len(everything.get_json(force=True)["entry"]) == 2


def test_the_download_is_linked_from_the_patients_and_the_therapists_pages(completed):
    link = f"/fhir/patients/{completed.patient.id}/consents.json"
    assert link in completed.patient_client().get("/consent/").text
    assert link in completed.therapist_client().get("/consent/team").text
