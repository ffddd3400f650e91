"""Audit verification of 1,000,000 events on SQLite. Goals: at least 200,000 events/s, and at
most 3 x the time hashlib alone takes over the same canonical bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

from common import bench_app, report

EVENTS = int(__import__("os").environ.get("BENCH_EVENTS", 1_000_000))


def main() -> None:
    from sqlalchemy import insert, update

    from portal.core import audit
    from portal.extensions import db

    with bench_app() as (app, _directory, _url), app.app_context():
        # Build a genuine chain quickly: the same hashing as audit.record, inserted in bulk.
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        previous, rows, canonical = audit.GENESIS_HASH, [], []
        head = db.session.get(audit.AuditChainHead, 1)
        first = head.last_seq + 1
        for seq in range(first, first + EVENTS):
            fields = {
                "seq": seq,
                "occurred_at": start + dt.timedelta(microseconds=seq),
                "actor_id": seq % 500,
                "actor_role": "patient",
                "action": "consent.opened",
                "object_type": "consent",
                "object_id": str(seq % 10_000),
                "reason": None,
                "before_json": None,
                "after_json": '{"status":"in_progress"}',
                "request_id": None,
                "prev_hash": previous,
            }
            canonical.append(audit.canonical_event_bytes(**fields))
            previous = audit.event_hash(**fields)
            rows.append({**fields, "hash": previous})
            if len(rows) == 50_000:
                db.session.execute(insert(audit.AuditEvent), rows)
                rows = []
        if rows:
            db.session.execute(insert(audit.AuditEvent), rows)
        db.session.execute(
            update(audit.AuditChainHead)
            .where(audit.AuditChainHead.id == 1)
            .values(last_seq=first + EVENTS - 1, last_hash=previous)
        )
        db.session.commit()
        db.session.expire_all()

        hash_before = _hashlib_alone(canonical)
        began = time.perf_counter()
        chain = audit.verify_chain(db.session)
        verify_seconds = time.perf_counter() - began
        assert chain.intact, chain.problem
        # The machine's speed drifts within a minute: the baseline is the mean of a run just
        # before and one just after the verification.
        hash_seconds = (hash_before + _hashlib_alone(canonical)) / 2

    per_second = chain.events_verified / verify_seconds
    report(
        "audit verify (1,000,000 events)",
        f"{per_second:,.0f} events/s ({verify_seconds:.2f} s)",
        f"hashlib alone {hash_seconds:.2f} s",
        verify_seconds / hash_seconds,
        ">= 200,000 events/s and <= 3 x",
        per_second >= 200_000 and verify_seconds / hash_seconds <= 3,
    )


def _hashlib_alone(canonical: list[bytes]) -> float:
    """Seconds for hashlib alone over the same canonical bytes, in this one process."""
    began = time.perf_counter()
    for data in canonical:
        hashlib.sha256(data).hexdigest()
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
