"""Sealed PDF records: complete, verifiable by anyone, refused to strangers, tamper-evident."""

from __future__ import annotations

import io
import json
import os
import subprocess

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from portal.core.audit import AuditEvent, format_timestamp
from portal.core.permissions import Role
from portal.extensions import db
from portal.records.models import Record
from tests.consent.journey_helpers import complete, set_up_journey, signed_by_the_patient
from tests.factories import create_account
from tests.helpers import PortalClient


@pytest.fixture
def completed(make_app, database_url, tmp_path):
    return complete(set_up_journey(make_app, database_url, tmp_path))


def the_record(journey) -> Record:
    with journey.app.app_context():
        record = db.session.scalars(select(Record)).one()
        db.session.expunge(record)
        return record


def _embedded_data(pdf: bytes) -> dict:
    reader = PdfFileReader(io.BytesIO(pdf))
    files = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    return json.loads(files[1].get_object()["/EF"]["/F"].get_object().data)


def test_countersigning_seals_a_record_that_pdfsig_validates(completed, tmp_path):
    record = the_record(completed)
    path = tmp_path / "record.pdf"
    path.write_bytes(record.pdf)
    pdfsig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
    assert "Signature is Valid" in pdfsig.stdout, pdfsig.stdout + pdfsig.stderr
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    for title in (
        "What is this study?",
        "Risks and benefits",
        "Your choice",
        "Your data and who to contact",
    ):
        assert title in text
    assert "Sam Taylor" in text and "Test Therapist" in text
    assert "Page 1 of" in text
    with completed.app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "record.created")
        ).one()
        assert event.after["sha256"] == record.sha256


def test_the_embedded_json_matches_the_database(completed):
    record = the_record(completed)
    data = _embedded_data(record.pdf)
    assert data["record_id"] == record.uid
    assert [a["answer"] for a in data["answers"]] == ["a"]
    assert data["choices"] == [
        {
            "item": "future-contact",
            "agreed": True,
            "statement": "I agree to be contacted about future studies.",
        }
    ]
    with completed.app.app_context():
        consent = completed.consent()
        assert data["content_hash"] == consent.content_hash
        assert {s["binding_hash"] for s in data["signatures"]} == {
            s.binding_hash for s in consent.signatures
        }


def test_verify_says_genuine_and_then_altered_after_one_byte_changes(completed, tmp_path):
    record = the_record(completed)
    genuine, altered, text_file = (tmp_path / n for n in ("a.pdf", "b.pdf", "c.txt"))
    genuine.write_bytes(record.pdf)
    middle = len(record.pdf) // 2
    altered.write_bytes(
        record.pdf[:middle] + bytes([record.pdf[middle] ^ 0x01]) + record.pdf[middle + 1 :]
    )
    text_file.write_text("hello")
    runner = completed.app.test_cli_runner()
    result = runner.invoke(args=["records", "verify", str(genuine)])
    assert result.exit_code == 0 and record.uid in result.output
    result = runner.invoke(args=["records", "verify", str(altered)])
    assert result.exit_code == 1 and "Altered" in result.output
    assert runner.invoke(args=["records", "verify", str(text_file)]).exit_code == 2

    page = PortalClient(completed.app)
    for data, expected in (
        (record.pdf, "Genuine and unaltered"),
        (altered.read_bytes(), "Not a genuine record"),
        (b"not a pdf at all", "Not a PDF"),
    ):
        response = page.http.post(
            "/records/verify",
            data={
                "csrf_token": page.csrf_token(),
                "document": (io.BytesIO(data), "file.pdf"),
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 200
        assert expected in response.text


def test_only_the_patient_their_therapist_and_the_panel_can_download(completed):
    record = the_record(completed)
    url = f"/records/{record.uid}.pdf"
    response = completed.patient_client().get(url)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == record.pdf
    assert completed.therapist_client().get(url).status_code == 200
    for role, expected in (
        (Role.PANEL_MEMBER, 200),
        (Role.PATIENT, 404),
        (Role.THERAPIST, 404),
        (Role.INVESTIGATOR, 403),
        (Role.ADMINISTRATOR, 403),
    ):
        account = create_account(completed.app, role, email=f"other-{role}@example.org")
        client = PortalClient(completed.app)
        client.login(account.email, account.password)
        assert client.get(url).status_code == expected, role
    with completed.app.app_context():
        downloads = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "record.downloaded")
        ).all()
        assert len(downloads) == 3


def test_records_list_and_export(completed, tmp_path):
    record = the_record(completed)
    runner = completed.app.test_cli_runner()
    assert record.uid in runner.invoke(args=["records", "list"]).output
    target = tmp_path / "out.pdf"
    assert runner.invoke(args=["records", "export", record.uid, str(target)]).exit_code == 0
    assert target.read_bytes() == record.pdf


def test_a_welsh_consent_gives_a_welsh_record(make_app, sqlite_url, tmp_path):
    journey = complete(set_up_journey(make_app, sqlite_url, tmp_path, locale="cy"))
    path = tmp_path / "cy.pdf"
    path.write_bytes(the_record(journey).pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert "Astudiaeth y dyddiadur cwsg" in text
    assert "Llofnodion" in text and "Tudalen 1 o" in text
    assert (
        "Signature is Valid"
        in subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    )


def test_the_renderer_never_fetches_anything_from_outside(tmp_path):
    from portal.records.render import restricted_fetcher

    fetcher = restricted_fetcher()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    for url in ("http://127.0.0.1:9/x.png", "https://example.org/a.css", f"file://{secret}"):
        with pytest.raises(ValueError, match="disallowed protocol"):
            fetcher.fetch(url)
    assert fetcher.fetch("data:text/plain,hello") is not None


def test_the_demo_data_has_a_record_that_exports_and_verifies(make_app, sqlite_url, tmp_path):
    from pathlib import Path

    root = Path(__file__).parents[2] / "consent_docs"
    app = make_app(sqlite_url, CONSENT_DOCS_PATH=str(root))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["docs", "import"]).exit_code == 0
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    listing = runner.invoke(args=["records", "list"]).output.split()
    uid = listing[0]
    target = tmp_path / "demo.pdf"
    assert runner.invoke(args=["records", "export", uid, str(target)]).exit_code == 0
    result = runner.invoke(args=["records", "verify", str(target)])
    assert result.exit_code == 0, result.output
    assert (
        "Signature is Valid"
        in subprocess.run(["pdfsig", str(target)], capture_output=True, text=True).stdout
    )


def test_the_record_is_sealed_without_holding_the_write_lock(make_app, sqlite_url, tmp_path):
    """Sealing takes about a second; other writers (sign-ins, answers, other countersignatures)
    must not wait for it. While the record is sealed, another connection takes the SQLite write
    lock at once, and the record sealed then is the one stored (sealed once, not twice)."""
    import sqlite3

    from portal.records import services

    journey = signed_by_the_patient(set_up_journey(make_app, sqlite_url, tmp_path))
    database = journey.app.config["DATABASE_URL"].removeprefix("sqlite:///")
    sealed, writer_got_the_lock = [], []
    real_seal = services.seal

    def seal_while_another_writer_writes(pdf: bytes) -> bytes:
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            writer_got_the_lock.append(True)
        except sqlite3.OperationalError:
            writer_got_the_lock.append(False)
        finally:
            other.close()
        sealed.append(real_seal(pdf))
        return sealed[-1]

    services.seal = seal_while_another_writer_writes
    try:
        response = journey.therapist_client().post(
            f"/consent/team/{journey.consent_id}/countersign",
            {"discussed": "y", "identity_checked": "y", "password": journey.therapist.password},
        )
    finally:
        services.seal = real_seal
    assert response.status_code == 302
    assert writer_got_the_lock == [True]
    record = the_record(journey)
    assert [record.pdf] == sealed
    with journey.app.app_context():
        consent = journey.consent()
        countersignature = consent.signatures[-1]
        assert consent.completed_at == countersignature.signed_at
        assert services.verify_file(db.session, record.pdf).outcome == "genuine"


def _countersign(journey, consent, therapist, prepared) -> None:
    """What the countersign view does once the record is prepared."""
    from portal.consent import journey as journeys

    journeys.countersign(
        db.session,
        consent,
        therapist,
        password=journey.therapist.password,
        discussed=True,
        identity_checked=True,
        witnessed_typed=False,
        prepared=prepared,
    )


def test_a_prepared_record_that_no_longer_fits_is_sealed_again(make_app, sqlite_url, tmp_path):
    """The prepared PDF is stored only if what the transaction would render is identical; a
    record prepared for another moment (or another state) is rendered again from the truth."""
    import dataclasses
    import datetime as dt

    from portal.accounts.models import User
    from portal.consent import journey as journeys

    journey = signed_by_the_patient(set_up_journey(make_app, sqlite_url, tmp_path))
    with journey.app.test_request_context():
        consent, therapist = journey.consent(), db.session.get(User, journey.therapist.id)
        assert journeys.prepare_countersignature(db.session, consent, therapist, "wrong") is None
        prepared = journeys.prepare_countersignature(
            db.session, consent, therapist, journey.therapist.password
        )
        stale = dataclasses.replace(
            prepared, signed_at=prepared.signed_at + dt.timedelta(seconds=1)
        )
        _countersign(journey, consent, therapist, stale)
        db.session.commit()
        record = db.session.scalars(select(Record)).one()
        assert record.pdf != prepared.record.pdf
        assert record.uid == prepared.record.uid
        embedded = _embedded_data(record.pdf)
        assert embedded["signatures"][-1]["signed_at"] == format_timestamp(stale.signed_at)


def test_a_withdrawal_while_the_record_is_prepared_is_not_overwritten(
    make_app, sqlite_url, tmp_path
):
    """The record is sealed outside the write transaction; if the patient withdraws meanwhile,
    the countersignature is refused on the consent as it is then, and nothing is stored."""
    import sqlite3

    from portal.accounts.models import User
    from portal.consent import journey as journeys

    journey = signed_by_the_patient(set_up_journey(make_app, sqlite_url, tmp_path))
    database = journey.app.config["DATABASE_URL"].removeprefix("sqlite:///")
    with journey.app.test_request_context():
        consent, therapist = journey.consent(), db.session.get(User, journey.therapist.id)
        prepared = journeys.prepare_countersignature(
            db.session, consent, therapist, journey.therapist.password
        )
        db.session.commit()
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("UPDATE consent SET status = 'withdrawn' WHERE id = ?", (consent.id,))
        other.close()
        with pytest.raises(journeys.JourneyError, match="withdrawn"):
            _countersign(journey, consent, therapist, prepared)
        db.session.rollback()
        assert db.session.get(type(consent), consent.id).status == "withdrawn"
        assert db.session.scalars(select(Record)).all() == []


def test_the_seal_key_is_loaded_once_and_again_when_its_files_are_replaced(make_app, sqlite_url):
    """Loading the key costs about 130 ms, so it is kept; a rotated key must still be used."""
    from portal.records.seal import _generate_identity, load_signer, signing_files

    app = make_app(sqlite_url)
    with app.app_context():
        first = load_signer()
        assert load_signer() is first  # kept, not loaded again
        key_path, cert_path = signing_files()
        before = first.signing_cert.serial_number
        _generate_identity(key_path, cert_path, "Rotated Seal")
        stamp = key_path.stat().st_mtime_ns + 1_000_000_000  # a later version of the files
        os.utime(key_path, ns=(stamp, stamp))
        os.utime(cert_path, ns=(stamp, stamp))
        rotated = load_signer()
        assert rotated is not first
        assert rotated.signing_cert.serial_number != before
        assert "Rotated Seal" in rotated.signing_cert.subject.human_friendly
