"""The audit trail as the panel and auditors browse it: filtered, newest first, a page at a time,
exported, and verified on demand.

Every filter is an index lookup: patient, protocol, version and incident through audit_link,
action and actor through (action, seq) and (actor_id, seq), and a date range becomes a range of
sequence numbers. Pages are keyset-paginated on seq, so the millionth event costs what the first
does (docs/oversight.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from portal.core import audit, checkpoints
from portal.core.audit import AuditEvent
from portal.core.audit_links import AuditLink, LinkKind
from portal.oversight.models import ChainVerification

log = logging.getLogger("portal.audit")

PAGE_SIZE = 50
EXPORT_BATCH = 2_000

# The columns of an exported event: exactly the stored event, so that anyone can recompute its
# hash from an export (docs/audit-chain.md) and a re-import round-trips.
EXPORT_COLUMNS = audit.STORED_COLUMNS


@dataclass(frozen=True)
class TrailFilter:
    """What the reader asked to see; None means no restriction."""

    patient_id: int | None = None
    protocol_id: int | None = None
    version_id: int | None = None
    incident_id: int | None = None
    actor_id: int | None = None
    action: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def links(self) -> list[tuple[LinkKind, int]]:
        wanted = (
            (LinkKind.PATIENT, self.patient_id),
            (LinkKind.PROTOCOL, self.protocol_id),
            (LinkKind.VERSION, self.version_id),
            (LinkKind.INCIDENT, self.incident_id),
        )
        return [(kind, ref) for kind, ref in wanted if ref is not None]

    def as_audit(self) -> dict[str, str]:
        """The filter as recorded in the audit event of an export (strings only)."""
        return {name: str(value) for name, value in asdict(self).items() if value not in (None, "")}

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, "") for f in fields(self))


@dataclass(frozen=True)
class TrailPage:
    events: list[AuditEvent]
    newer_than: int | None  # the cursor for the page of newer events, if any
    older_than: int | None  # the cursor for the page of older events, if any


def _seq_range(session: Session, wanted: TrailFilter) -> tuple[int | None, int | None]:
    """A date range as the first and last sequence numbers inside it (seq grows with time)."""
    low = high = None
    if wanted.date_from is not None:
        start = dt.datetime.combine(wanted.date_from, dt.time(), tzinfo=dt.UTC)
        first = select(func.min(AuditEvent.seq)).where(AuditEvent.occurred_at >= start)
        low = session.scalar(first)
        low = low if low is not None else 2**62  # nothing that recent: an empty range
    if wanted.date_to is not None:
        end = dt.datetime.combine(wanted.date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        last = select(func.max(AuditEvent.seq)).where(AuditEvent.occurred_at < end)
        high = session.scalar(last)
        high = high if high is not None else 0
    return low, high


def _query(session: Session, wanted: TrailFilter) -> tuple[Select, Any]:
    """The filtered events, and the column to order and page by (the link index's own seq when
    filtering by a link, so that the database walks that index in order)."""
    query = select(AuditEvent)
    order_column: Any = AuditEvent.seq
    for kind, ref in wanted.links():
        link = aliased(AuditLink)
        query = query.join(link, link.event_seq == AuditEvent.seq).where(
            link.kind == kind.value, link.ref == ref
        )
        if order_column is AuditEvent.seq:
            order_column = link.event_seq
    if wanted.action:
        query = query.where(AuditEvent.action == wanted.action)
    if wanted.actor_id is not None:
        query = query.where(AuditEvent.actor_id == wanted.actor_id)
    low, high = _seq_range(session, wanted)
    if low is not None:
        query = query.where(order_column >= low)
    if high is not None:
        query = query.where(order_column <= high)
    return query, order_column


def find_events(
    session: Session,
    wanted: TrailFilter,
    *,
    older_than: int | None = None,
    newer_than: int | None = None,
    page_size: int = PAGE_SIZE,
) -> TrailPage:
    """One page of matching events, newest first, after a keyset cursor."""
    query, order_column = _query(session, wanted)
    if newer_than is not None:  # going back towards the newest: read upwards, then reverse
        rows = session.scalars(
            query.where(order_column > newer_than).order_by(order_column).limit(page_size + 1)
        ).all()
        more_newer = len(rows) > page_size
        events = list(reversed(rows[:page_size]))
        more_older = True
    else:
        if older_than is not None:
            query = query.where(order_column < older_than)
        rows = session.scalars(query.order_by(order_column.desc()).limit(page_size + 1)).all()
        more_older = len(rows) > page_size
        events = list(rows[:page_size])
        more_newer = older_than is not None
    if not events:
        return TrailPage([], None, None)
    return TrailPage(
        events,
        newer_than=events[0].seq if more_newer else None,
        older_than=events[-1].seq if more_older else None,
    )


def iter_events(session: Session, wanted: TrailFilter) -> Iterator[AuditEvent]:
    """Every matching event, oldest first, in keyset batches (exports of any size)."""
    query, order_column = _query(session, wanted)
    last = 0
    while True:
        batch = session.scalars(
            query.where(order_column > last).order_by(order_column).limit(EXPORT_BATCH)
        ).all()
        yield from batch
        if len(batch) < EXPORT_BATCH:
            return
        last = batch[-1].seq
        session.expunge_all()  # keep memory flat over a million events


def distinct_actions(session: Session) -> list[str]:
    """Every action in the trail, each found by one index seek (a loose index scan), so that the
    list costs the same at a million events."""
    rows = session.execute(
        text(
            "WITH RECURSIVE found(action) AS ("
            " SELECT MIN(action) FROM audit_event"
            " UNION ALL"
            " SELECT (SELECT MIN(action) FROM audit_event WHERE action > found.action)"
            " FROM found WHERE found.action IS NOT NULL"
            ") SELECT action FROM found WHERE action IS NOT NULL"
        )
    ).scalars()
    return list(rows)


# --- what changed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any

    @property
    def changed(self) -> bool:
        return self.before != self.after


def differences(event: AuditEvent) -> list[Change]:
    """The event's before and after values side by side, one row per field."""
    before, after = event.before, event.after
    if not isinstance(before, dict) or not isinstance(after, dict):
        if before is None and after is None:
            return []
        return [Change("", before, after)]
    return [
        Change(name, before.get(name), after.get(name)) for name in sorted(set(before) | set(after))
    ]


def show_value(value: Any) -> str:
    """A stored JSON value as the reader should see it (strings without quotes)."""
    if value is None:
        return "\u2013"  # an en dash: nothing
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- exports --------------------------------------------------------------------------------


def _stored(event: AuditEvent) -> dict[str, Any]:
    values = {column: getattr(event, column) for column in EXPORT_COLUMNS}
    values["occurred_at"] = audit.format_timestamp(event.occurred_at)
    return values


def csv_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for event in events:
        writer.writerow(_stored(event))
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(events: Iterator[AuditEvent]) -> Iterator[str]:
    """A JSON array of stored events, streamed."""
    yield "["
    for number, event in enumerate(events):
        yield ("," if number else "") + "\n" + json.dumps(_stored(event), ensure_ascii=False)
    yield "\n]\n"


def json_line(resource: dict[str, Any]) -> str:
    """One NDJSON line."""
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"


def event_from_export(values: dict[str, Any]) -> dict[str, Any]:
    """An exported event (CSV row or JSON object) as the fields its hash is computed from."""

    def optional(name: str) -> Any:
        value = values.get(name)
        return None if value in (None, "") else value

    actor_id = optional("actor_id")
    return {
        "seq": int(values["seq"]),
        "occurred_at": dt.datetime.strptime(values["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=dt.UTC
        ),
        "actor_id": None if actor_id is None else int(actor_id),
        "actor_role": values["actor_role"],
        "action": values["action"],
        "object_type": optional("object_type"),
        "object_id": optional("object_id"),
        "reason": optional("reason"),
        "before_json": optional("before_json"),
        "after_json": optional("after_json"),
        "request_id": optional("request_id"),
        "prev_hash": values["prev_hash"],
    }


# --- verification ---------------------------------------------------------------------------


def latest_verification(session: Session) -> ChainVerification | None:
    return session.scalar(select(ChainVerification).order_by(ChainVerification.id.desc()).limit(1))


def verify_now(session: Session, actor: audit.Actor, witness=None) -> ChainVerification:
    """Recompute the whole chain and check the signed checkpoints; keep and audit the result.
    The caller commits."""
    started = time.perf_counter()
    report = audit.verify_chain(session)
    signed = checkpoints.verify(session, witness) if report.intact else None
    problem = report.problem or (signed.problem if signed else None)
    run = ChainVerification(
        verified_by_id=actor.id,
        events_verified=report.events_verified,
        intact=problem is None,
        first_bad_seq=report.first_bad_seq,
        problem=problem,
        checkpoints_checked=signed.checked if signed else 0,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )
    session.add(run)
    session.flush()
    try:
        with session.begin_nested():  # a broken chain may refuse the append (a taken seq)
            audit.record(
                session,
                "audit.verified",
                actor=actor,
                object_type="chain_verification",
                object_id=run.id,
                after={
                    "events_verified": run.events_verified,
                    "intact": run.intact,
                    "first_bad_seq": run.first_bad_seq,
                    "problem": run.problem,
                },
            )
    except (IntegrityError, OperationalError, TypeError, ValueError):
        # A taken seq, or a head whose values are not what the portal writes (not UTF-8, the
        # wrong type): the verification is kept even though its event cannot be chained.
        if run.intact:
            raise
        log.warning("the broken audit chain refused the verification's own event: %s", problem)
    return run


def record_export(session: Session, actor: audit.Actor, wanted: TrailFilter, format_: str) -> None:
    """An export is a disclosure: audited before the first byte is sent. The caller commits."""
    audit.record(
        session,
        "audit.exported",
        actor=actor,
        after={"format": format_, "filter": wanted.as_audit()},
    )
