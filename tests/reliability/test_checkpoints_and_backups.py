"""Signed checkpoints catch a rewritten or truncated chain; backups restore into a fresh
database with the audit chain and every record still verifiable."""

from __future__ import annotations

import json

from sqlalchemy import select, text

from portal.core import audit
from portal.extensions import db
from portal.records.models import Record
from tests.consent.journey_helpers import complete, set_up_journey


def test_a_checkpoint_verifies_and_catches_a_rewritten_or_truncated_chain(app, tmp_path):
    runner = app.test_cli_runner()
    witness = tmp_path / "witness.jsonl"
    with app.app_context():
        for n in range(5):
            audit.record(db.session, "test.event", actor=audit.SYSTEM, after={"n": n})
        db.session.commit()
    result = runner.invoke(args=["audit", "checkpoint", "--witness", str(witness)])
    assert result.exit_code == 0, result.output
    line = json.loads(witness.read_text())
    assert line["seq"] == 5 and len(line["signature"]) > 40
    result = runner.invoke(args=["audit", "verify", "--witness", str(witness)])
    assert result.exit_code == 0, result.output
    assert "2 signed checkpoints match" in result.output  # the stored one and the witness's

    # Someone with the database rewrites the whole chain consistently from event 3 on (the
    # triggers are dropped first, as a database owner could): the chain alone still verifies,
    # the signed checkpoint does not.
    with app.app_context():
        _rewrite_chain_from(db.session, 3)
        assert audit.verify_chain(db.session).intact
    result = runner.invoke(args=["audit", "verify", "--witness", str(witness)])
    assert result.exit_code == 1
    assert "no longer matches its signed checkpoint" in result.output


def test_a_forged_checkpoint_is_refused(app, tmp_path):
    witness = tmp_path / "witness.jsonl"
    runner = app.test_cli_runner()
    runner.invoke(args=["audit", "checkpoint", "--witness", str(witness)])
    line = json.loads(witness.read_text())
    line["seq"] += 1
    witness.write_text(json.dumps(line) + "\n")
    result = runner.invoke(args=["audit", "verify", "--witness", str(witness)])
    assert result.exit_code == 1
    assert "not signed by this portal's key" in result.output


def _rewrite_chain_from(session, seq: int) -> None:
    """Recompute every event from `seq` on with changed content, and the head: a perfect forgery
    of the chain itself."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    else:
        session.execute(text("DROP TRIGGER audit_event_no_update"))
    rows = session.scalars(
        select(audit.AuditEvent).where(audit.AuditEvent.seq >= seq).order_by(audit.AuditEvent.seq)
    ).all()
    previous = session.scalar(select(audit.AuditEvent.hash).where(audit.AuditEvent.seq == seq - 1))
    for row in rows:
        row.after_json = '{"n":"forged"}'
        row.prev_hash = previous
        fields = {
            column.name: getattr(row, column.name)
            for column in audit.AuditEvent.__table__.columns
            if column.name != "hash"
        }
        row.hash = audit.event_hash(**fields)
        previous = row.hash
    head = session.get(audit.AuditChainHead, 1)
    head.last_hash = previous
    session.commit()


def test_backup_and_restore_into_a_fresh_database(
    make_app, database_url, empty_database_url, tmp_path
):
    journey = complete(set_up_journey(make_app, database_url, tmp_path))
    patient = journey.patient_client()
    response = patient.post(
        f"/withdraw/{journey.consent_id}/confirm",
        {"scope": "treatment", "password": journey.patient.password},
    )
    assert response.status_code == 302
    backup_file = tmp_path / "portal.backup"
    result = journey.app.test_cli_runner().invoke(args=["backup", str(backup_file)])
    assert result.exit_code == 0, result.output
    if database_url.startswith("sqlite") != empty_database_url.startswith("sqlite"):
        return  # a SQLite backup restores into SQLite, a pg_dump into PostgreSQL
    fresh = make_app(empty_database_url)
    result = fresh.test_cli_runner().invoke(args=["restore", str(backup_file)])
    assert result.exit_code == 0, result.output
    assert "2 records verified" in result.output
    with fresh.app_context():
        assert audit.verify_chain(db.session).intact
        kinds = sorted(db.session.scalars(select(Record.kind)))
        assert kinds == ["consent", "withdrawal"]
    # Restoring over live data is refused.
    result = fresh.test_cli_runner().invoke(args=["restore", str(backup_file)])
    assert result.exit_code != 0


def test_restore_refuses_a_missing_file(app, tmp_path):
    result = app.test_cli_runner().invoke(args=["restore", str(tmp_path / "nope.backup")])
    assert result.exit_code != 0
    assert "there is no backup file" in result.output
