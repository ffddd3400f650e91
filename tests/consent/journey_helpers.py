"""Set-up for journey tests: the small example document in use, a therapist and their patient."""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select

from portal.accounts.models import User
from portal.consent.journey_models import Consent
from portal.consent.models import ConsentDocument
from portal.core.permissions import Role
from portal.extensions import db
from tests.consent.doc_fixtures import write_example
from tests.factories import Account, create_account
from tests.helpers import PortalClient

# A real (1x1 white) PNG, as signature_pad would send a drawing.
PNG_DATA_URL = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
            "0000000c4944415408d763f8ffff3f0005fe02fea7d6a4a20000000049454e44ae426082"
        )
    ).decode()
)


@dataclass
class Journey:
    app: object
    therapist: Account
    patient: Account
    consent_id: int

    def patient_client(self) -> PortalClient:
        client = PortalClient(self.app)
        client.login(self.patient.email, self.patient.password)
        return client

    def therapist_client(self) -> PortalClient:
        client = PortalClient(self.app)
        client.login(self.therapist.email, self.therapist.password)
        return client

    def consent(self) -> Consent:
        return db.session.get(Consent, self.consent_id)

    def past_cooling_off(self) -> None:
        with self.app.app_context():
            consent = self.consent()
            consent.opened_at -= dt.timedelta(hours=25)
            db.session.commit()


def set_up_journey(make_app, url, tmp_path, locale: str = "en_GB") -> Journey:
    root = tmp_path / "consent_docs"
    write_example(root, "1.0")
    app = make_app(url, CONSENT_DOCS_PATH=str(root))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["docs", "import"]).exit_code == 0
    admin = create_account(app, Role.ADMINISTRATOR)
    for step in ("submit", "approve", "activate"):
        extra = ["--reference", "R1"] if step == "approve" else []
        result = runner.invoke(
            args=["docs", step, "diary-study", "1.0", "--by", admin.email, *extra]
        )
        assert result.exit_code == 0, result.output
    therapist = create_account(app, Role.THERAPIST)
    patient = create_account(app, Role.PATIENT, full_name="Sam Taylor")
    with app.app_context():
        db.session.get(User, patient.id).invited_by_id = therapist.id
        db.session.get(User, patient.id).locale = locale
        db.session.commit()
        document_id = db.session.scalar(select(ConsentDocument.id))
    client = PortalClient(app)
    client.login(therapist.email, therapist.password)
    response = client.post(f"/consent/team/offer/{patient.id}", {"document_id": document_id})
    assert response.status_code == 302
    with app.app_context():
        consent_id = db.session.scalar(select(Consent.id))
    return Journey(app, therapist, patient, consent_id)


def read_everything(client: PortalClient, consent_id: int, sections: int = 4) -> None:
    for position in range(sections):
        page = client.get(f"/consent/{consent_id}/read/{position}?note=seen").text
        visit = re.search(r'name="visit" value="([^"]+)"', page)[1]
        response = client.post(
            f"/consent/{consent_id}/read/{position}", {"visit": visit, "direction": "next"}
        )
        assert response.status_code == 302


def answer_all(client: PortalClient, consent_id: int, choice: str = "a") -> None:
    response = client.post(f"/comprehension/{consent_id}", {"choice": choice})
    assert response.status_code in (200, 302)


def choose(client: PortalClient, consent_id: int, future_contact: str = "no") -> None:
    response = client.post(
        f"/consent/{consent_id}/choices", {"item_future-contact": future_contact}
    )
    assert response.status_code == 302, response.text


def sign(client: PortalClient, consent_id: int, password: str, **overrides):
    data = {
        "attest": "y",
        "typed_name": "Sam Taylor",
        "method": "drawn",
        "signature": PNG_DATA_URL,
        "password": password,
        **overrides,
    }
    return client.post(f"/consent/{consent_id}/sign", data)


def signed_by_the_patient(journey):
    """Take the consent as far as the patient's signature: it awaits the countersignature."""
    patient = journey.patient_client()
    read_everything(patient, journey.consent_id)
    answer_all(patient, journey.consent_id, "a")
    choose(patient, journey.consent_id, "yes")
    journey.past_cooling_off()
    assert sign(patient, journey.consent_id, journey.patient.password).status_code == 302
    return journey


def complete(journey):
    """Take the consent all the way to its countersignature (which seals the record)."""
    signed_by_the_patient(journey)
    response = journey.therapist_client().post(
        f"/consent/team/{journey.consent_id}/countersign",
        {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password},
    )
    assert response.status_code == 302
    return journey


def publish_v1_1(journey, tmp_path, material: bool) -> None:
    """Import, approve and activate version 1.1 (one sentence changed) of the example."""
    from tests.consent.doc_fixtures import write_example

    write_example(
        tmp_path / "consent_docs",
        "1.1",
        body_change="Writing about nightmares can be very upsetting.",
    )
    admin = create_account(journey.app, Role.ADMINISTRATOR, email="admin2@example.org")
    runner = journey.app.test_cli_runner()
    assert runner.invoke(args=["docs", "import"]).exit_code == 0
    by = ["diary-study", "1.1", "--by", admin.email]
    runner.invoke(args=["docs", "submit", *by])
    flag = "--material-change" if material else "--no-material-change"
    assert runner.invoke(args=["docs", "approve", *by, "--reference", "R2", flag]).exit_code == 0
    assert runner.invoke(args=["docs", "activate", *by]).exit_code == 0
