"""The tamper-evident audit trail: an append-only, SHA-256 hash-chained table of events.

docs/audit-chain.md specifies the canonical encoding so that anyone can verify the chain
independently. Events are appended in the caller's transaction, so an event exists exactly when
the change it records was committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import has_request_context
from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Text, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core import audit_links
from portal.core.chain_walk import (
    EVENT_TEMPLATE,
    ChainReport,
    Walk,
    sqlite_events,
    walk_events,
    walk_range,
)
from portal.core.db import Base, UTCDateTime, utcnow

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
SYSTEM_ROLE = "system"
ANONYMOUS_ROLE = "anonymous"


class AuditEvent(Base):
    """One audit event. Never updated or deleted (database triggers refuse it)."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    before_json: Mapped[str | None] = mapped_column(Text)
    after_json: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        CheckConstraint("seq > 0", name="seq_positive"),
        # The audit browser's filters, newest first by keyset on seq (docs/oversight.md).
        Index("ix_audit_event_action_seq", "action", "seq"),
        Index("ix_audit_event_actor_seq", "actor_id", "seq"),
        Index("ix_audit_event_occurred_at", "occurred_at"),
    )

    @property
    def before(self) -> Any:
        return None if self.before_json is None else json.loads(self.before_json)

    @property
    def after(self) -> Any:
        return None if self.after_json is None else json.loads(self.after_json)


# An event's stored columns in table order: what exports carry and bulk loads write.
STORED_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "reason",
    "before_json",
    "after_json",
    "request_id",
    "prev_hash",
    "hash",
)


class AuditChainHead(Base):
    """The single row naming the last event: serialises appends and exposes truncation."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


# --- canonical encoding ---------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """RFC 8785-style JSON: sorted keys, no whitespace, UTF-8 text, no floats."""
    _refuse_floats(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("audit values may not contain floats (encode them as strings)")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("audit object keys must be strings")
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def format_timestamp(moment: dt.datetime) -> str:
    """UTC, microsecond precision, 'Z' suffix: 2026-11-25T18:30:00.000000Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII needing no JSON escape


def _quote(value: str | None) -> str:
    """A string known to need no escaping, as JSON."""
    return "null" if value is None else f'"{value}"'


def _text(value: str | None) -> str:
    if value is None:
        return "null"
    if _PLAIN.fullmatch(value):  # the common case, without the JSON encoder's overhead
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def canonical_event_bytes(*, occurred_at: dt.datetime, **fields: Any) -> bytes:
    """The exact bytes hashed for an event (keys in sorted order, as docs/audit-chain.md says).

    `fields` are the event's other stored columns, named as in `_canonical`. before_json and
    after_json are already canonical JSON text, so they are embedded verbatim; this equals
    canonical_json() of the whole event object, only faster.
    """
    return _canonical(occurred_text=format_timestamp(occurred_at), **fields)


def _canonical(
    seq: int,
    occurred_text: str,
    actor_id: int | None,
    actor_role: str,
    action: str,
    object_type: str | None,
    object_id: str | None,
    reason: str | None,
    before_json: str | None,
    after_json: str | None,
    request_id: str | None,
    prev_hash: str,
) -> bytes:
    """The canonical bytes from the stored values, the time already formatted (verification
    reads it as text, which saves parsing a million timestamps)."""
    texts = (
        action,
        actor_role,
        object_id,
        object_type,
        occurred_text,
        prev_hash,
        reason,
        request_id,
    )
    # One check for the whole event: when nothing needs escaping, quoting is all JSON asks.
    quote = _quote if _PLAIN.fullmatch("".join(t for t in texts if t is not None)) else _text
    action, actor_role, object_id, object_type, occurred_text, prev_hash, reason, request_id = map(
        quote, texts
    )
    return (
        EVENT_TEMPLATE
        % (
            action,
            "null" if actor_id is None else int(actor_id),
            actor_role,
            "null" if after_json is None else after_json,
            "null" if before_json is None else before_json,
            object_id,
            object_type,
            occurred_text,
            prev_hash,
            reason,
            request_id,
            int(seq),
        )
    ).encode("utf-8")


def event_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical_event_bytes(**fields)).hexdigest()


# --- appending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who did something: a user (id and role at the time) or the system."""

    id: int | None
    role: str

    @classmethod
    def of(cls, user: Any) -> Actor:
        return cls(id=user.id, role=str(user.role))


SYSTEM = Actor(id=None, role=SYSTEM_ROLE)
ANONYMOUS = Actor(id=None, role=ANONYMOUS_ROLE)


def record(
    session: Session,
    action: str,
    *,
    actor: Actor,
    object_type: str | None = None,
    object_id: Any = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> AuditEvent:
    """Append an event in the session's current transaction and return it (flushed).

    Appends are serialised on the chain head: SQLite transactions already hold the write lock
    (BEGIN IMMEDIATE); PostgreSQL locks the head row FOR UPDATE until commit.
    """
    head = session.execute(
        select(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    fields: dict[str, Any] = {
        "seq": head.last_seq + 1,
        "occurred_at": utcnow(),
        "actor_id": actor.id,
        "actor_role": actor.role,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "reason": reason,
        "before_json": None if before is None else canonical_json(before),
        "after_json": None if after is None else canonical_json(after),
        "request_id": _current_request_id(),
        "prev_hash": head.last_hash,
    }
    links = audit_links.links_for(session, object_type, fields["object_id"])
    event = AuditEvent(**fields, hash=event_hash(**fields))
    session.add(event)
    audit_links.add_links(session, event.seq, links)
    head.last_seq = event.seq
    head.last_hash = event.hash
    session.flush()
    return event


def _current_request_id() -> str | None:
    if not has_request_context():
        return None
    from portal.core.security import request_id

    return request_id()


# --- verification ---------------------------------------------------------------------------


_STORED_COLUMNS_SQL = ", ".join(STORED_COLUMNS)


def _events(session: Session, batch_size: int) -> Iterator[tuple[int, str, str, bytes | None]]:
    """(seq, prev_hash, hash, canonical bytes) for every event in sequence order.

    A million events must verify in seconds, so on SQLite the database builds the canonical
    bytes and the driver's own cursor streams them; elsewhere Python builds them from
    keyset-paginated batches.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        yield from sqlite_events(connection.connection.driver_connection, batch_size)
        return
    query = text(
        f"SELECT {_STORED_COLUMNS_SQL} FROM audit_event "  # noqa: S608 - constants
        "WHERE seq > :after ORDER BY seq LIMIT :size"
    )
    last_seq = 0
    while batch := session.execute(query, {"after": last_seq, "size": batch_size}).all():
        for row in batch:
            yield row[0], row[11], row[12], _canonical_from_row(row)
        last_seq = batch[-1][0]


def _canonical_from_row(row: Sequence[Any]) -> bytes | None:
    """The stored event's canonical bytes, or None when a value is not what the portal writes:
    before or after not JSON (they are embedded as they are, so text could otherwise be moved
    from one into the other without changing the bytes), or a value of another type, which
    SQLite keeps if it is given one (chain_walk.STORED_AS_WRITTEN)."""
    seq, occurred_at, actor_id = row[0], row[1], row[2]
    texts = row[3:12]
    if not (
        _is_whole_number(seq)
        and (actor_id is None or _is_whole_number(actor_id))
        and isinstance(occurred_at, str | dt.datetime)
        and all(value is None or isinstance(value, str) for value in texts)
        and _is_json(row[8])
        and _is_json(row[9])
    ):
        return None
    try:
        return _canonical(seq, _stored_time(occurred_at), actor_id, *texts)
    except UnicodeEncodeError:  # text that was not UTF-8 (_undecodable_text_read_as_is)
        return None


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_json(value: str | None) -> bool:
    if value is None:
        return True
    try:
        json.loads(value, parse_constant=_not_json)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python reads
        return False
    return True


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _python_hash(session: Session, seq: int) -> str:
    """One event's hash recomputed in Python from its stored columns: the reference encoding."""
    row = session.execute(
        text(f"SELECT {_STORED_COLUMNS_SQL} FROM audit_event WHERE seq = :seq"),  # noqa: S608
        {"seq": seq},
    ).one()
    canonical = _canonical_from_row(row)
    return "" if canonical is None else hashlib.sha256(canonical).hexdigest()


@contextmanager
def _undecodable_text_read_as_is(session: Session) -> Iterator[None]:
    """SQLite keeps text that is not UTF-8 if it is given some, and the driver raises on reading
    it. While verifying, such text is read with its odd bytes as lone surrogates instead, which
    no stored hash equals and no canonical bytes can encode: the event is reported as altered."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    previous = driver.text_factory
    driver.text_factory = _text_as_is
    try:
        yield
    finally:
        driver.text_factory = previous


def _text_as_is(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _stored_time(value: Any) -> str:
    """The stored time as canonical text: SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)."""
    if isinstance(value, str):
        return value.replace(" ", "T", 1) + "Z"
    return format_timestamp(value if value.tzinfo else value.replace(tzinfo=dt.UTC))


# Chains at least this long are verified by several processes on a SQLite file.
PARALLEL_FROM = 200_000
PARALLEL_TIMEOUT_SECONDS = 3600


def verify_chain(
    session: Session, batch_size: int = 10_000, workers: int | None = None
) -> ChainReport:
    """Recompute every hash and link; name the first event that does not fit.

    workers: processes to share a long chain in a SQLite file (default: one per core, up to
    two, from PARALLEL_FROM events). Any doubt from them is settled by walking the whole chain
    in this process, so problems are always reported exactly as a single walk reports them.
    """
    with _undecodable_text_read_as_is(session):
        head = session.get(AuditChainHead, 1)
        if head is None:
            return ChainReport(0, 1, "the chain head record is missing")
        head_as_written = _is_whole_number(head.last_seq) and isinstance(head.last_hash, str)
        if head_as_written and _parallel_walks_intact(session, head, batch_size, workers):
            return ChainReport(head.last_seq)
        rehash = partial(_python_hash, session)
        walk = walk_events(_events(session, batch_size), 1, GENESIS_HASH, rehash)
    if walk.problem:
        return walk.problem
    return _head_problem(head, head_as_written, walk) or ChainReport(walk.next_seq - 1)


def _head_problem(head: AuditChainHead, as_written: bool, walk: Walk) -> ChainReport | None:
    """Whether the head records the event the walk ended at: the only check on the last event
    when its content and hash were both rewritten, and on events removed from the end."""
    verified = walk.next_seq - 1
    if not as_written:
        return ChainReport(
            verified,
            verified + 1,
            "the chain head record was altered (it holds a value of a type never written)",
        )
    if head.last_seq == verified and head.last_hash != walk.last_hash:
        return ChainReport(
            verified - 1,
            verified,
            f"the chain head records another hash for event {verified} "
            "(the event was rewritten, or the head altered)",
        )
    if head.last_seq != verified:
        return ChainReport(
            verified,
            min(head.last_seq, verified) + 1,
            f"the chain ends at event {verified} but its head records event {head.last_seq} "
            "(events were removed from or added to the end)",
        )
    return None


def _parallel_walks_intact(
    session: Session, head: AuditChainHead, batch_size: int, workers: int | None
) -> bool:
    """True when worker processes found every event from 1 to the head intact and joined up;
    False when they were not used or found anything to look at closer."""
    connection = session.connection()
    database = connection.engine.url.database
    if connection.dialect.name != "sqlite" or not database or database == ":memory:":
        return False
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if head.last_seq >= PARALLEL_FROM else 1
    if workers < 2 or head.last_seq < workers:
        return False
    # Every row must be in a worker's share: no seq outside 1..head, none NULL, and no odd
    # one (SQLite would keep a text seq such as '7x', which no integer range selects, but which
    # sorts after every number). Three index look-ups; count(*) would read the whole table.
    stored = connection.exec_driver_sql(
        "SELECT (SELECT min(seq) FROM audit_event), (SELECT max(seq) FROM audit_event),"
        " EXISTS (SELECT 1 FROM audit_event WHERE seq IS NULL)"
    ).one()
    if tuple(stored) != (1, head.last_seq, 0):
        return False
    bounds = [head.last_seq * part // workers for part in range(workers + 1)]
    ranges = [(database, bounds[i] + 1, bounds[i + 1], batch_size) for i in range(workers)]
    # spawn, not fork: this process may hold SQLite connections (even the write lock), whose
    # state a forked child must not inherit. The workers import only portal.core.chain_walk.
    try:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            walks = pool.starmap_async(walk_range, ranges).get(timeout=PARALLEL_TIMEOUT_SECONDS)
    except (multiprocessing.TimeoutError, OSError, sqlite3.Error):
        logger.warning("parallel audit verification failed; walking the chain in one process")
        return False
    joins = [GENESIS_HASH] + [walk.last_hash for walk in walks]
    return (
        all(
            walk.problem is None and walk.next_seq == last + 1 and walk.first_prev == joins[index]
            for index, (walk, (_db, _first, last, _size)) in enumerate(
                zip(walks, ranges, strict=True)
            )
        )
        and walks[-1].last_hash == head.last_hash
    )
