"""The hash-chained audit trail: appends, verification, tampering, concurrency."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from portal.core import audit, chain_walk
from portal.core.chain_walk import WORKER_CANONICAL, sqlite_events
from portal.core.db import build_engine
from portal.extensions import db


def append_events(app, count: int, action: str = "test.event") -> None:
    with app.app_context():
        for index in range(count):
            audit.record(
                db.session,
                action,
                actor=audit.SYSTEM,
                object_type="thing",
                object_id=index,
                before={"n": index},
                after={"n": index + 1, "note": "Diolch — ✓"},
                reason="testing",
            )
            db.session.commit()


def verify(app) -> audit.ChainReport:
    with app.app_context():
        return audit.verify_chain(db.session)


def drop_append_only_triggers(app) -> None:
    """Tamper as a database owner could: remove the protection first."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("DROP TRIGGER audit_event_no_change ON audit_event"))
        else:
            db.session.execute(text("DROP TRIGGER audit_event_no_update"))
            db.session.execute(text("DROP TRIGGER audit_event_no_delete"))
        db.session.commit()


def run_sql(app, statement: str) -> None:
    with app.app_context():
        db.session.execute(text(statement))
        db.session.commit()


def test_events_form_a_chain_from_the_genesis_hash(app):
    append_events(app, 5)
    with app.app_context():
        events = db.session.scalars(select(audit.AuditEvent).order_by(audit.AuditEvent.seq)).all()
        assert [event.seq for event in events] == [1, 2, 3, 4, 5]
        assert events[0].prev_hash == audit.GENESIS_HASH
        for previous, event in itertools.pairwise(events):
            assert event.prev_hash == previous.hash
        assert events[2].before == {"n": 2}
        assert events[2].after == {"n": 3, "note": "Diolch — ✓"}
        assert events[2].occurred_at.tzinfo is not None
    report = verify(app)
    assert report.intact and report.events_verified == 5


def test_hash_matches_the_documented_encoding(app):
    """An independent verifier written from docs/audit-chain.md alone gets the same hash."""
    append_events(app, 2)
    with app.app_context():
        event = db.session.get(audit.AuditEvent, 2)
        documented = {
            "seq": event.seq,
            "occurred_at": event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor_id": event.actor_id,
            "actor_role": event.actor_role,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "reason": event.reason,
            "before": json.loads(event.before_json),
            "after": json.loads(event.after_json),
            "request_id": event.request_id,
            "prev_hash": event.prev_hash,
        }
        encoded = json.dumps(documented, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(encoded.encode("utf-8")).hexdigest() == event.hash


def test_sqlite_builds_the_same_canonical_bytes_as_python(make_app, sqlite_url):
    """Verification on SQLite lets the database build the bytes; every character class that
    JSON escapes, and text beyond ASCII and the BMP, must come out as Python writes it."""
    awkward = "".join(map(chr, range(0x20))) + '"\\/\x7f é — ✓ 𝄞 Cymraeg ŵ'
    with make_app(sqlite_url).app_context():
        for index, text_value in enumerate([awkward, "", "plain", None]):
            audit.record(
                db.session,
                f"test.{index}",
                actor=audit.Actor(id=None if text_value is None else index, role="patient"),
                object_type=text_value,
                object_id=text_value,
                before=None if text_value is None else {"v": text_value},
                after={"list": [1, True, None]},
                reason=text_value,
            )
        db.session.commit()
        built = {seq: canonical for seq, _prev, _hash, canonical in audit._events(db.session, 3)}
        rows = db.session.execute(text(f"SELECT {audit._STORED_COLUMNS_SQL} FROM audit_event"))
        assert {row[0]: audit._canonical_from_row(row) for row in rows} == built
        # The verification workers' json_object() encoding gives the same bytes.
        driver = db.session.connection().connection.driver_connection
        workers = sqlite_events(driver, 3, canonical=WORKER_CANONICAL)
        assert {seq: canonical for seq, _prev, _hash, canonical in workers} == built
        assert audit.verify_chain(db.session).intact


def test_floats_are_refused():
    with pytest.raises(TypeError):
        audit.canonical_json({"score": 0.5})


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_database_refuses_changes_to_audit_events(app, operation):
    append_events(app, 2)
    statement = (
        "UPDATE audit_event SET reason = 'edited' WHERE seq = 1"
        if operation == "update"
        else "DELETE FROM audit_event WHERE seq = 1"
    )
    with pytest.raises(DBAPIError, match="append-only"):
        run_sql(app, statement)
    assert verify(app).intact


TAMPERING = {
    "edited": ["UPDATE audit_event SET reason = 'nothing to see' WHERE seq = 4"],
    "edited_values": [
        "UPDATE audit_event SET after_json = replace(after_json, '4,', '40,') WHERE seq = 4"
    ],
    # The same values, spaced out: SQLite's json() would tidy the spaces away again.
    "respaced": [
        "UPDATE audit_event SET after_json = replace(after_json, ',', ', ') WHERE seq = 4"
    ],
    "not_json": ["UPDATE audit_event SET before_json = '{n: 3' WHERE seq = 4"],
    "deleted": ["DELETE FROM audit_event WHERE seq = 4"],
    "swapped": [
        # Exchange the contents of events 4 and 5 while keeping their numbers.
        "UPDATE audit_event SET seq = -4 WHERE seq = 4",
        "UPDATE audit_event SET seq = 4 WHERE seq = 5",
        "UPDATE audit_event SET seq = 5 WHERE seq = -4",
    ],
    "inserted": [],  # see _insert_forged_event
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_verification_names_the_first_tampered_event(app, runner, kind):
    append_events(app, 8)
    drop_append_only_triggers(app)
    if kind == "inserted":
        _insert_forged_event(app, at_seq=4)
    elif kind == "swapped":
        _run_with_relaxed_checks(app, TAMPERING[kind])
    else:
        for statement in TAMPERING[kind]:
            run_sql(app, statement)

    report = verify(app)
    assert not report.intact
    assert report.first_bad_seq == 4
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code != 0
    assert "event 4" in result.output


@pytest.mark.parametrize("kind", ["intact", *sorted(TAMPERING), "truncated"])
def test_parallel_verification_agrees_with_one_walk(make_app, sqlite_url, kind):
    """Long chains on SQLite are shared between processes; whatever was done to the chain,
    the report is the one a single walk gives, and an intact chain is confirmed by the workers."""
    app = make_app(sqlite_url)
    append_events(app, 9)
    drop_append_only_triggers(app)
    if kind == "inserted":
        _insert_forged_event(app, at_seq=6)
    elif kind == "swapped":
        _run_with_relaxed_checks(app, [sql.replace("4", "6") for sql in TAMPERING[kind]])
    elif kind == "truncated":
        run_sql(app, "DELETE FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)")
    elif kind != "intact":
        for statement in TAMPERING[kind]:
            # Event 6 carries n = 6 (the tampering below names event 4 and its n = 4).
            run_sql(app, statement.replace("4", "6"))

    with app.app_context():
        head = db.session.get(audit.AuditChainHead, 1)
        confirmed = audit._parallel_walks_intact(db.session, head, 2, workers=2)
        assert confirmed == (kind == "intact")
        shared = audit.verify_chain(db.session, batch_size=2, workers=2)
        assert shared == audit.verify_chain(db.session, batch_size=2, workers=1)
    assert shared.intact == (kind == "intact")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("odd_seq", ["'7x'", "0", "-3", "6.5", "4.5"])
def test_an_event_with_an_odd_seq_is_found(make_app, sqlite_url, workers, odd_seq):
    """SQLite keeps whatever type it is given: an extra event numbered '7x' passes the seq > 0
    check and no integer range selects it; one numbered 0 or -3 (the check switched off) lies
    before every worker's share; 6.5 lies inside one, 4.5 between the two (1-4 and 5-9).
    Verification must see each of them."""
    app = make_app(sqlite_url)
    append_events(app, 9)
    drop_append_only_triggers(app)
    columns = ", ".join(c for c in audit.STORED_COLUMNS if c not in {"seq", "hash"})
    _run_with_relaxed_checks(
        app,
        [
            # 'x': not hex, so never the hash of event 7 itself (an 'f' was, one run in 16)
            f"INSERT INTO audit_event (seq, hash, {columns}) "
            f"SELECT {odd_seq}, 'x' || substr(hash, 2), {columns} FROM audit_event WHERE seq = 7"
        ],
    )
    with app.app_context():
        report = audit.verify_chain(db.session, batch_size=2, workers=workers)
    assert not report.intact


# SQLite keeps whatever it is given, whatever the column's type. The text functions that
# build the canonical bytes stop at a NUL, so text after one would be hashed as if absent; a
# value of another type can print as the original did (the text 'null' for a NULL actor).
SQLITE_TYPE_TAMPERING = {
    "nul_in_after": "UPDATE audit_event SET after_json = after_json || char(0) || 'junk'",
    "nul_in_before": "UPDATE audit_event SET before_json = before_json || char(0) || ' '",
    "nul_in_actor": "UPDATE audit_event SET actor_id = 'null' || char(0) || ' forged'",
    "text_actor": "UPDATE audit_event SET actor_id = 'null'",
    "nul_in_reason": "UPDATE audit_event SET reason = reason || char(0) || 'more'",
    "blob_reason": "UPDATE audit_event SET reason = CAST(reason AS BLOB)",
    "blob_after": "UPDATE audit_event SET after_json = CAST(after_json AS BLOB)",
    "number_time": "UPDATE audit_event SET occurred_at = 20261127",
    "blob_time": "UPDATE audit_event SET occurred_at = CAST(occurred_at AS BLOB)",
    # Text that is not UTF-8, which the driver refuses to read as text.
    "not_utf8_reason": "UPDATE audit_event SET reason = CAST(x'74657374696e67ff' AS TEXT)",
    "not_utf8_after": "UPDATE audit_event SET after_json = CAST(x'7b226e223a22ff227d' AS TEXT)",
    "not_utf8_hash": "UPDATE audit_event SET hash = CAST(CAST(hash AS BLOB) || x'ff' AS TEXT)",
}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", sorted(SQLITE_TYPE_TAMPERING))
def test_odd_bytes_and_types_in_a_sqlite_event_are_found(make_app, sqlite_url, workers, kind):
    """Each is reported as an altered event, never passed as intact and never a crash."""
    app = make_app(sqlite_url)
    append_events(app, 9)
    drop_append_only_triggers(app)
    run_sql(app, SQLITE_TYPE_TAMPERING[kind] + " WHERE seq = 6")
    with app.app_context():
        head = db.session.get(audit.AuditChainHead, 1)
        assert not audit._parallel_walks_intact(db.session, head, 2, workers=2)
        report = audit.verify_chain(db.session, batch_size=2, workers=workers)
    assert (report.intact, report.first_bad_seq) == (False, 6)
    assert report.problem == "event 6 was altered (its hash does not match)"


def _jsonb(value: str | int | None) -> bytes:
    """SQLite's JSONB for a scalar (sqlite.org/jsonb.html): a header byte with the payload's
    size and type (0 null, 3 integer, 7 text needing no escapes), then the payload."""
    if value is None:
        return b"\x00"
    kind, payload = (3, str(value).encode()) if isinstance(value, int) else (7, value.encode())
    size = len(payload)
    return bytes([size << 4 | kind] if size < 12 else [0xC0 | kind, size]) + payload


@pytest.mark.parametrize("column", [*chain_walk.QUOTED_COLUMNS, "actor_id"])
def test_the_workers_never_confirm_a_blob(make_app, sqlite_url, column):
    """From SQLite 3.45 json_object() reads a BLOB holding JSONB as the JSON it encodes, so a
    value replaced by its own JSONB prints as it did (shown with SQLite 3.54 in review); older
    SQLite refuses every BLOB with an error. A worker must doubt such an event on this
    machine's SQLite, and the encoding used from 3.45 must give it no bytes."""
    app = make_app(sqlite_url)
    append_events(app, 3)
    drop_append_only_triggers(app)
    with app.app_context():
        original = db.session.execute(
            text(f"SELECT {column} FROM audit_event WHERE seq = 2")
        ).scalar_one()
        db.session.execute(
            text(f"UPDATE audit_event SET {column} = :forged WHERE seq = 2"),
            {"forged": _jsonb(original)},
        )
        db.session.commit()
        database = db.engine.url.database
        connection = db.session.connection().connection.driver_connection
        refusing = chain_walk.worker_canonical(refuse_blobs=True)
        events = list(sqlite_events(connection, 10, 1, 3, refusing))
    assert [canonical is None for *_, canonical in events] == [False, True, False]
    assert chain_walk.walk_range(database, 1, 3, 10).problem is not None  # a doubt


def test_jsonb_encoding_matches_sqlites():
    """The forgeries above are SQLite's own JSONB where this SQLite has jsonb()."""
    connection = sqlite3.connect(":memory:")
    try:
        made = connection.execute("SELECT jsonb('7'), jsonb('\"test.event\"')").fetchone()
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no jsonb() (before 3.45)")
    finally:
        connection.close()
    assert made == (_jsonb(7), _jsonb("test.event"))


ODD_SEQ_AND_HEAD = {
    "not_utf8_seq": (
        "UPDATE audit_event SET seq = CAST(x'36ff' AS TEXT) WHERE seq = 6",
        6,
        "event 6 expected but event 7 found",
    ),
    "not_utf8_head_hash": (
        "UPDATE audit_chain_head SET last_hash = CAST(CAST(last_hash AS BLOB) || x'ff' AS TEXT)",
        9,
        "the chain head records another hash for event 9",
    ),
    "other_head_hash": (
        "UPDATE audit_chain_head SET last_hash = (SELECT hash FROM audit_event WHERE seq = 8)",
        9,
        "the chain head records another hash for event 9",
    ),
    "text_head_seq": (
        "UPDATE audit_chain_head SET last_seq = 'nine'",
        10,
        "the chain head record was altered",
    ),
    "blob_head_seq": (
        "UPDATE audit_chain_head SET last_seq = CAST('9' AS BLOB)",
        10,
        "the chain head record was altered",
    ),
    "blob_head_hash": (
        "UPDATE audit_chain_head SET last_hash = CAST(last_hash AS BLOB)",
        10,
        "the chain head record was altered",
    ),
}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", sorted(ODD_SEQ_AND_HEAD))
def test_odd_values_in_a_sqlite_seq_or_head_are_reported(make_app, sqlite_url, workers, kind):
    """Reported, never a crash; and the verification run is still kept and shown even though
    its own audit event cannot be chained to such a head."""
    app = make_app(sqlite_url)
    append_events(app, 9)
    drop_append_only_triggers(app)
    statement, first_bad_seq, problem = ODD_SEQ_AND_HEAD[kind]
    _run_with_relaxed_checks(app, [statement])
    with app.app_context():
        report = audit.verify_chain(db.session, batch_size=2, workers=workers)
    assert (report.intact, report.first_bad_seq) == (False, first_bad_seq)
    assert report.problem.startswith(problem)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and not isinstance(result.exception, Exception)
    assert problem in result.output


def test_a_worker_doubts_before_or_after_not_exactly_as_json_would_write_it(make_app, sqlite_url):
    """json() in the workers' encoding would tidy respaced JSON back into the hashed bytes; the
    worker must not confirm such an event on its own, whatever the full walk then finds."""
    app = make_app(sqlite_url)
    append_events(app, 9)
    drop_append_only_triggers(app)
    with app.app_context():
        database = db.engine.url.database
    assert chain_walk.walk_range(database, 5, 9, 2).problem is None
    run_sql(app, "UPDATE audit_event SET after_json = replace(after_json, ',', ', ') WHERE seq = 6")
    doubt = chain_walk.walk_range(database, 5, 9, 2).problem
    assert doubt is not None and doubt.first_bad_seq == 6


def test_text_moved_between_before_and_after_is_found(app):
    """Before and after are embedded in the hashed bytes as they are, one after the other. Text
    moved from the end of one to the start of the other leaves the bytes, and so the hash,
    unchanged; neither is JSON any more, which verification must refuse (on SQLite also when
    worker processes share the chain)."""
    append_events(app, 3)
    with app.app_context():
        audit.record(
            db.session,
            "test.moved",
            actor=audit.SYSTEM,
            before={"n": 4},
            after={"a": 1, "before": 2},  # its bytes contain ,"before":
        )
        db.session.commit()
    append_events(app, 5)
    drop_append_only_triggers(app)
    with app.app_context():
        db.session.execute(
            text("UPDATE audit_event SET after_json = :after, before_json = :before WHERE seq = 4"),
            {"after": '{"a":1', "before": '2},"before":{"n":4}'},
        )
        db.session.commit()
        moved = db.session.execute(text(f"SELECT {audit._STORED_COLUMNS_SQL} FROM audit_event"))
        row = next(row for row in moved if row[0] == 4)
        # The attack works on the bytes alone: only the JSON check tells them apart.
        stored_hash = row[12]
        assert hashlib.sha256(audit._canonical(4, *_stored_fields(row))).hexdigest() == stored_hash
        sqlite = db.engine.dialect.name == "sqlite"
        for workers in [1, 2] if sqlite else [1]:
            report = audit.verify_chain(db.session, batch_size=2, workers=workers)
            assert (report.intact, report.first_bad_seq) == (False, 4)


def _stored_fields(row):
    return (audit._stored_time(row[1]), *row[2:12])


def test_truncating_the_end_of_the_chain_is_detected(app, runner):
    append_events(app, 6)
    drop_append_only_triggers(app)
    run_sql(app, "DELETE FROM audit_event WHERE seq >= 5")
    report = verify(app)
    assert report.first_bad_seq == 5
    assert runner.invoke(args=["audit", "verify"]).exit_code == 1


def test_verify_command_reports_the_count_when_intact(app, runner):
    append_events(app, 3)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0
    assert "3 events verified" in result.output


def _run_with_relaxed_checks(app, statements):
    """Swapping rows needs the seq > 0 check out of the way for a moment."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(
                text("ALTER TABLE audit_event DROP CONSTRAINT ck_audit_event_seq_positive")
            )
        else:
            db.session.execute(text("PRAGMA ignore_check_constraints = ON"))
        for statement in statements:
            db.session.execute(text(statement))
        db.session.commit()


def _insert_forged_event(app, at_seq: int) -> None:
    """Make room at `at_seq` and insert a well-formed event there, as a forger would."""
    with app.app_context():
        rows = (
            db.session.execute(
                select(audit.AuditEvent.seq)
                .where(audit.AuditEvent.seq >= at_seq)
                .order_by(audit.AuditEvent.seq.desc())
            )
            .scalars()
            .all()
        )
        for seq in rows:  # highest first, so numbers never collide
            db.session.execute(
                text("UPDATE audit_event SET seq = :new WHERE seq = :old"),
                {"new": seq + 1, "old": seq},
            )
        previous = db.session.get(audit.AuditEvent, at_seq - 1)
        fields = {
            "seq": at_seq,
            "occurred_at": previous.occurred_at,
            "actor_id": None,
            "actor_role": "system",
            "action": "forged.event",
            "object_type": None,
            "object_id": None,
            "reason": None,
            "before_json": None,
            "after_json": None,
            "request_id": None,
            "prev_hash": previous.hash,
        }
        db.session.add(audit.AuditEvent(**fields, hash=audit.event_hash(**fields)))
        db.session.commit()


def test_four_threads_appending_on_sqlite_form_one_chain(make_app, sqlite_url):
    app = make_app(sqlite_url)
    threads = [
        threading.Thread(target=append_events, args=(app, 250, f"thread.{n}")) for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify(app)
    assert report.intact, report.problem
    assert report.events_verified == 1000
    with app.app_context():
        per_thread = db.session.execute(
            select(audit.AuditEvent.action, func.count()).group_by(audit.AuditEvent.action)
        ).all()
    assert sorted(count for _, count in per_thread) == [250, 250, 250, 250]


def _append_in_process(url: str, count: int, label: str) -> None:
    from portal import create_app
    from tests.conftest import TEST_CONFIG

    app = create_app({**TEST_CONFIG, "DATABASE_URL": url})
    append_events(app, count, f"process.{label}")


@pytest.mark.postgres
def test_two_processes_appending_on_postgresql_form_one_chain(make_app, request):
    cluster = request.getfixturevalue("postgres_cluster")
    template = request.getfixturevalue("postgres_template")
    engine = build_engine(cluster.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"CREATE DATABASE two_writers TEMPLATE {template}"))
    engine.dispose()
    url = cluster.url("two_writers")

    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_in_process, args=(url, 500, str(n))) for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0

    app = make_app(url)
    report = verify(app)
    assert report.intact, report.problem
    assert report.events_verified == 1000
    with app.app_context():
        actions = dict(
            db.session.execute(
                select(audit.AuditEvent.action, func.count()).group_by(audit.AuditEvent.action)
            ).all()
        )
    assert actions == {"process.0": 500, "process.1": 500}


def test_the_documented_example_hashes_as_documented():
    """docs/audit-chain.md's worked example matches the portal's own encoder (known answer)."""
    import datetime as dt
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "audit-chain.md").read_text()
    example = json.loads(re.search(r"```json\n(.+?)\n```", doc, re.S)[1])
    documented_hash = re.search(r"Its hash is `([0-9a-f]{64})`", doc)[1]
    fields = {
        key: example[key]
        for key in (
            "seq",
            "actor_id",
            "actor_role",
            "action",
            "object_type",
            "object_id",
            "reason",
            "request_id",
            "prev_hash",
        )
    }
    fields["occurred_at"] = dt.datetime.strptime(
        example["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ"
    ).replace(tzinfo=dt.UTC)
    fields["before_json"] = (
        None if example["before"] is None else audit.canonical_json(example["before"])
    )
    fields["after_json"] = audit.canonical_json(example["after"])
    assert audit.event_hash(**fields) == documented_hash


def test_verification_workers_import_neither_flask_nor_sqlalchemy():
    """The workers spawned for a long chain import only portal.core.chain_walk: importing
    Flask and SQLAlchemy too tripled the time a verification took to start."""
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, portal.core.chain_walk; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'sqlalchemy'}))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()
    assert imported == "[]"
