"""Walking the audit chain: checks of sequence, links and hashes over (seq, prev_hash, hash,
canonical bytes) rows.

Kept free of Flask and SQLAlchemy imports on purpose: verification of a long chain spawns worker
processes that import this module, and a lean import starts them in a tenth of the time.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# The event object's keys in sorted order (docs/audit-chain.md), values filled in as JSON.
EVENT_TEMPLATE = (
    '{"action":%s,"actor_id":%s,"actor_role":%s,"after":%s,"before":%s,"object_id":%s,'
    '"object_type":%s,"occurred_at":%s,"prev_hash":%s,"reason":%s,"request_id":%s,"seq":%d}'
)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of recomputing the chain."""

    events_verified: int
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None


# Columns whose stored text the canonical bytes quote as JSON strings, and the two embedded as
# JSON text as they are.
QUOTED_COLUMNS = (
    "action",
    "actor_role",
    "object_id",
    "object_type",
    "occurred_at",
    "prev_hash",
    "reason",
    "request_id",
)
EMBEDDED_JSON_COLUMNS = ("after_json", "before_json")

# SQLite keeps a value of any type in any column, and format()'s %s stops at a NUL. So the
# actor must be an integer or NULL (the text 'null' would print as a NULL actor does), and
# before/after text with no NUL (text after one would be hashed as if it were not there). A
# quoted column must not be a BLOB: json_quote() refuses one before SQLite 3.45 and from 3.45
# reads JSONB as JSON, and replace() would turn a BLOB time into text; any other type there
# prints unlike the quoted text that was hashed. (A BLOB seq or hash fails the walk's checks.)
# Such an event gets no bytes, like one whose before or after is not JSON (see
# audit._canonical_from_row): no hash matches that.
STORED_AS_WRITTEN = " AND ".join(
    [f"typeof({column}) <> 'blob'" for column in QUOTED_COLUMNS]
    + [
        f"({column} IS NULL OR (typeof({column}) = 'text'"
        f" AND instr(CAST({column} AS BLOB), x'00') = 0 AND json_valid({column})))"
        for column in EMBEDDED_JSON_COLUMNS
    ]
    + ["typeof(actor_id) IN ('integer', 'null')"]
)

# The canonical bytes built by SQLite itself, in C: json_quote escapes exactly as Python's
# json.dumps(ensure_ascii=False) does (tests/core/test_audit.py checks every code point class),
# and a mismatch is re-checked in Python before anything is called altered.
SQLITE_CANONICAL = (
    f"CAST(CASE WHEN {STORED_AS_WRITTEN} THEN"
    " format('" + EVENT_TEMPLATE.replace("%d", "%s") + "', json_quote(action),"
    " coalesce(actor_id, 'null'), json_quote(actor_role), coalesce(after_json, 'null'),"
    " coalesce(before_json, 'null'), json_quote(object_id), json_quote(object_type),"
    " json_quote(replace(occurred_at, ' ', 'T') || 'Z'), json_quote(prev_hash),"
    " json_quote(reason), json_quote(request_id), seq) END AS BLOB)"
)


# The workers' encoding: the same bytes from one json_object() call, which costs SQLite about
# 35 % less than format() with eight json_quote()s. json_object() needs before/after as json(),
# which would also accept, and tidy, text that is not byte for byte what was hashed (spaces;
# JSON5 from SQLite 3.42). So an event whose before/after is not already exactly in that form
# gets no bytes: its hash cannot match, the worker has a doubt, and the full walk settles it
# byte for byte. json_object() quotes every other value by its type, NULs included, so other
# types and bytes cannot match either. Text that is not JSON at all stops the worker with an
# error, as does text that is not UTF-8 in a column read as text (the hashes); elsewhere such
# text gives bytes that do not match. Either way, a doubt.
#
# BLOBs: before SQLite 3.45 json_object() refuses every BLOB with an error (a doubt). From 3.45
# it reads one holding JSONB as the JSON it encodes, so a forged JSONB value would print as the
# text it replaced (and escape every query that filters on it): there, BLOBs get no bytes. The
# check costs the workers about a quarter more SQLite time, so older SQLite goes without it,
# except for the time, which replace() would turn from a BLOB into the text it replaced.
def worker_canonical(refuse_blobs: bool) -> str:
    blob_checks = "".join(
        f" AND typeof({column}) <> 'blob'"
        for column in (*QUOTED_COLUMNS, "actor_id")
        if column != "occurred_at"
    )
    return (
        "CAST(CASE WHEN after_json IS json(after_json) AND before_json IS json(before_json)"
        " AND typeof(occurred_at) = 'text'"
        + (blob_checks if refuse_blobs else "")
        + " THEN json_object('action', action, 'actor_id', actor_id, 'actor_role', actor_role,"
        " 'after', json(after_json), 'before', json(before_json), 'object_id', object_id,"
        " 'object_type', object_type, 'occurred_at', replace(occurred_at, ' ', 'T') || 'Z',"
        " 'prev_hash', prev_hash, 'reason', reason, 'request_id', request_id, 'seq', seq)"
        " END AS BLOB)"
    )


JSON_OBJECT_READS_JSONB = sqlite3.sqlite_version_info >= (3, 45, 0)
WORKER_CANONICAL = worker_canonical(refuse_blobs=JSON_OBJECT_READS_JSONB)


def sqlite_events(
    connection: Any,
    batch_size: int,
    first: int | None = None,
    last: int | None = None,
    canonical: str = SQLITE_CANONICAL,
) -> Iterator[tuple[int, str, str, bytes | None]]:
    """The whole table, or the seqs above first - 1 up to last (a worker's share: the caller
    checks that the shares cover every row)."""
    cursor = connection.cursor()
    cursor.arraysize = batch_size
    query = f"SELECT seq, prev_hash, hash, {canonical} FROM audit_event"  # noqa: S608
    if first is None:
        cursor.execute(query + " ORDER BY seq")
    else:
        # Half-open over all numbers, not first..last over integers: a forged seq of 4.5
        # between two shares is then in one of them, where it breaks the sequence.
        cursor.execute(query + " WHERE seq > ? AND seq <= ? ORDER BY seq", (first - 1, last))
    while batch := cursor.fetchmany():
        yield from batch
    cursor.close()


@dataclass
class Walk:
    """How far a walk along (part of) the chain got."""

    next_seq: int
    first_prev: str | None = None  # the first event's prev_hash, for joining ranges
    last_hash: str | None = None
    problem: ChainReport | None = None


def walk_events(
    events: Iterator[tuple[int, str, str, bytes | None]],
    expected_seq: int,
    previous_hash: str | None,
    rehash: Callable[[int], str],
) -> Walk:
    """Check sequence, links and hashes; stop at the first event that does not fit.

    previous_hash None means the walk starts mid-chain and takes the first link on trust (the
    caller joins the ranges); rehash recomputes one event in Python before it is called altered.
    """
    walk = Walk(expected_seq, last_hash=previous_hash)
    hash_before_previous = None
    sha256 = hashlib.sha256
    for seq, stored_prev, stored_hash, canonical in events:
        if walk.first_prev is None:
            walk.first_prev = stored_prev
            previous_hash = stored_prev if previous_hash is None else previous_hash
        if not (
            seq == expected_seq
            and stored_prev == previous_hash
            and (
                (canonical is not None and sha256(canonical).hexdigest() == stored_hash)
                or rehash(seq) == stored_hash
            )
        ):
            walk.problem = problem(
                seq, expected_seq, stored_prev, previous_hash, hash_before_previous
            )
            break
        hash_before_previous = previous_hash
        previous_hash = stored_hash
        expected_seq += 1
    walk.next_seq, walk.last_hash = expected_seq, previous_hash
    return walk


def problem(
    seq: int,
    expected_seq: int,
    stored_prev: str,
    previous_hash: str | None,
    hash_before: str | None,
) -> ChainReport:
    """Why an event does not fit where the walk reached it."""
    if not isinstance(seq, int):  # SQLite stores what it is given: '7x' sorts after numbers
        return ChainReport(
            expected_seq - 1,
            expected_seq,
            f"an event numbered {seq!r} is not part of the sequence (it was inserted)",
        )
    if seq != expected_seq:
        return ChainReport(
            expected_seq - 1,
            min(seq, expected_seq),
            f"event {expected_seq} expected but event {seq} found "
            "(an event was deleted, inserted or renumbered)",
        )
    if stored_prev != previous_hash:
        if stored_prev == hash_before:
            # It links to the event before: the one in between was slipped in.
            return ChainReport(
                expected_seq - 2,
                seq - 1,
                f"event {seq - 1} was inserted (event {seq} links past it)",
            )
        return ChainReport(expected_seq - 1, seq, f"event {seq} does not link to event {seq - 1}")
    return ChainReport(expected_seq - 1, seq, f"event {seq} was altered (its hash does not match)")


def walk_range(database: str, first: int, last: int, batch_size: int) -> Walk:
    """One worker's share: events first..last, read through its own read-only connection."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        events = sqlite_events(connection, batch_size, first, last, WORKER_CANONICAL)
        # A hash this process cannot confirm is left to the full walk, which re-checks it.
        return walk_events(events, first, None, lambda _seq: "")
    except sqlite3.Error as error:  # before/after that is not JSON, or the file unreadable
        return Walk(first, problem=ChainReport(first - 1, first, f"not walked: {error}"))
    finally:
        connection.close()
