"""`flask demo generate`: a large, realistic synthetic dataset, for dashboards and the audit
browser at scale (docs/synthetic-data.md says what is made and why it is made this way).

The rows and audit events have the shapes the real services write, but they are written with
bulk inserts: the services do one patient at a time, with a sealed PDF per consent, which would
take days for 100,000 patients.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import heapq
import itertools
import json
import math
import random
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask.cli import with_appcontext
from sqlalchemy import Date, Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from portal.accounts.models import Invitation, User, name_key
from portal.comprehension.models import ComprehensionAttempt, TeachBack
from portal.consent.journey import PARTICIPANT_MEANING, PERSON_TAKING_CONSENT_MEANING
from portal.consent.journey_models import (
    Consent,
    ConsentStatus,
    OptionalChoice,
    SectionVisit,
    Signature,
    Withdrawal,
)
from portal.consent.models import (
    ComprehensionQuestion,
    ConsentDocument,
    DocumentSection,
    DocumentText,
    DocumentVersion,
    OptionalConsentItem,
    VersionStatus,
    WithdrawalDataOption,
)
from portal.core import audit
from portal.core.audit import AuditChainHead, AuditEvent
from portal.core.crypto import EncryptedBytes, EncryptedText
from portal.core.db import UTCDateTime, utcnow
from portal.core.permissions import Role
from portal.incidents.models import (
    Incident,
    IncidentAssignment,
    IncidentEntry,
)
from portal.review.models import (
    ClockStop,
    InformationResponse,
    InterestDeclaration,
    Opinion,
    OpinionCondition,
    Protocol,
    ReviewerAssignment,
    Submission,
    Vote,
)

SYNTHETIC_DOMAIN = "synthetic.example.org"
# Every synthetic patient and therapist shares this password, hashed once per run (the demo
# passwords are published in the README in the same way).
SYNTHETIC_PASSWORD = "synthetic-pass"  # noqa: S105 - published, for benchmark databases only
GENERATED_ACTION = "demo.generated"
HISTORY_DAYS = 540  # about 18 months
CHUNK_PATIENTS = 2_000  # patients generated and inserted together
EVENT_BATCH = 5_000  # audit events per insert
ROW_BATCH = 10_000  # other rows per insert
LONDON = ZoneInfo("Europe/London")

US = 1_000_000  # times are integer microseconds since the epoch while generating
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A patient is invited at most this long before their first consent is offered: events of
# later patients never come before (first offer - this), which lets the trail be written as
# the patients are generated, in time order, without holding every event in memory.
ACCOUNT_LEAD = 6 * DAY

# How far patients go: the chance of taking each next step (the consent funnel).
CONTINUE = {
    "open": 0.90,
    "read": 0.95,
    "understand": 0.94,
    "choose": 0.98,
    "sign": 0.955,
    "countersign": 0.94,
}
STEPS = tuple(CONTINUE)
WITHDRAWAL_RATE = 0.08

FIRST_NAMES = (
    "Aled", "Amira", "Beth", "Callum", "Carys", "Chloe", "Daniel", "Dylan", "Eleri", "Emma",
    "Farah", "Gethin", "Grace", "Hassan", "Iwan", "Jade", "Kieran", "Leah", "Lowri", "Marcus",
    "Megan", "Nia", "Oliver", "Priya", "Rhys", "Ruth", "Sian", "Tariq", "Tom", "Zara",
)  # fmt: skip
LAST_NAMES = (
    "Ahmed", "Baker", "Campbell", "Clarke", "Davies", "Edwards", "Evans", "Green", "Hall",
    "Hughes", "Jenkins", "Jones", "Khan", "Lewis", "Morgan", "Murphy", "Owen", "Patel", "Price",
    "Roberts", "Singh", "Smith", "Taylor", "Thomas", "Walker", "Watkins", "Williams", "Wilson",
)  # fmt: skip
# The portal stores no site; a therapist's site is shown in their synthetic email address and
# shapes how many patients they see (bigger sites recruit more).
SITES = (
    ("london", 4.0),
    ("cardiff", 3.0),
    ("bristol", 2.0),
    ("leeds", 2.0),
    ("glasgow", 1.5),
    ("newcastle", 1.0),
)
STAFF_ATTESTATION = (
    "I confirm that the patient told me this themselves, and that I have recorded their "
    "decision as they gave it"
)
WITHDRAWAL_REASONS = (
    "I am moving away from the area.",
    "The travel to the clinic is too much for me at the moment.",
    "I have decided I would rather not take MDMA.",
    "My family circumstances have changed.",
    "I would prefer to stay with my usual treatment.",
    "The sessions were harder than I expected.",
)
TEACH_BACK_NOTES = (
    "Went through the section again together; they explained it back in their own words.",
    "Talked it through on the phone; the patient had mixed up two of the answers.",
    "Explained with an example from the study timetable; understood now.",
    "Discussed at the clinic visit; they were unsure about the wording, not the idea.",
)
INCIDENT_CATEGORIES = (
    ("touch", 20),
    ("outside_contact", 18),
    ("confidentiality", 15),
    ("dual_relationship", 12),
    ("alone", 12),
    ("coercion", 10),
    ("other", 8),
    ("sexual", 5),
)
INCIDENT_NARRATIVES = {
    "touch": "During the session the therapist held my hand for a long time without asking.",
    "outside_contact": "The therapist sent me messages on social media after our session.",
    "confidentiality": "Details of a patient's session were discussed where others could hear.",
    "dual_relationship": "The therapist offered to help me find work with a friend of theirs.",
    "alone": "For part of the dosing session only one therapist was in the room.",
    "coercion": "I felt pushed to agree to the recordings being used for training.",
    "other": "The therapist's remarks during integration made me uncomfortable.",
    "sexual": "The therapist made a remark about my appearance that felt sexual.",
}
PROTOCOL_TITLES = (
    "MDMA-assisted therapy for PTSD in military veterans",
    "MDMA-assisted couples therapy for PTSD",
    "Long-term follow-up after MDMA-assisted therapy for PTSD",
    "MDMA-assisted therapy for PTSD with alcohol use disorder",
    "MDMA-assisted therapy for PTSD in emergency service workers",
    "Open-label MDMA-assisted therapy for treatment-resistant PTSD",
    "MDMA-assisted therapy for PTSD after childhood trauma",
    "Group integration sessions after MDMA-assisted therapy",
    "MDMA-assisted therapy for PTSD in refugees and asylum seekers",
    "A second dosing schedule for MDMA-assisted therapy for PTSD",
    "MDMA-assisted therapy for PTSD with depression",
    "Therapist training for MDMA-assisted therapy: a feasibility study",
)
MODIFICATION_SUMMARIES = {
    "substantial": "Adds a second dosing site and updates the information sheet accordingly.",
    "important_detail": "Replaces the principal investigator at one site.",
    "minor": "Corrects typing errors in the participant diary.",
}
OPINION_REASONS = {
    "favourable": "The design, consent process and safeguards are sound.",
    "favourable_with_conditions": "Sound overall, subject to the conditions below.",
    "provisional": "The panel needs more information on the safeguarding arrangements.",
    "unfavourable": "The risks to participants are not adequately managed.",
}
OPINION_CONDITIONS = (
    "Provide the final version of the participant diary.",
    "Confirm the out-of-hours cover arrangements at each site.",
)


# --- time ---------------------------------------------------------------------------------------


def as_datetime(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def as_us(moment: dt.datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def london_day(us: int) -> dt.date:
    return as_datetime(us).astimezone(LONDON).date()


class Later(Exception):
    """The next step would happen after now: the story stops where it has got to."""


def canonical(value: Any) -> str:
    """audit.canonical_json for values built here (ints, strings, booleans: never floats)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- what the database already holds ------------------------------------------------------------


@dataclass
class Question:
    key: str
    answer: str
    wrong: list[str]


@dataclass
class TextInfo:
    id: int
    language: str
    content_hash: str
    sections: list[tuple[str, int]]  # key, words
    questions: list[Question]
    items: list[str]
    options: list[tuple[str, bool]]  # key, is the default


@dataclass
class VersionInfo:
    id: int
    slug: str
    version: str
    cooling_off: int  # microseconds
    protocol_id: int | None
    texts: dict[str, TextInfo]

    @property
    def label(self) -> str:
        return f"{self.slug} v{self.version}"

    def text_for(self, locale: str) -> TextInfo:
        return self.texts.get("cy" if locale == "cy" else "en-GB") or self.texts["en-GB"]

    def links(self, patient_id: int) -> tuple[tuple[str, int], ...]:
        """What every event about a consent to this version concerns (portal.oversight.links)."""
        found = (("patient", patient_id), ("version", self.id))
        return (*found, ("protocol", self.protocol_id)) if self.protocol_id else found


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    role: str
    membership: str | None = None

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(self.id, self.role)


def _versions(session: Session) -> list[VersionInfo]:
    from portal.review.services import protocol_of_document

    found = []
    for version in session.scalars(
        select(DocumentVersion)
        .where(DocumentVersion.status == VersionStatus.ACTIVE.value)
        .order_by(DocumentVersion.id)
    ):
        protocol = protocol_of_document(session, version.document_id)
        texts = {}
        for language_text in session.scalars(
            select(DocumentText).where(DocumentText.version_id == version.id)
        ):
            texts[language_text.language] = _text_info(session, language_text)
        if "en-GB" not in texts:
            continue
        found.append(
            VersionInfo(
                id=version.id,
                slug=session.scalar(
                    select(ConsentDocument.slug).where(ConsentDocument.id == version.document_id)
                ),
                version=version.version,
                cooling_off=version.cooling_off_hours * HOUR,
                protocol_id=protocol.id if protocol else None,
                texts=texts,
            )
        )
    return found


def _text_info(session: Session, language_text: DocumentText) -> TextInfo:
    of_text = language_text.id
    sections = [
        (key, max(len(body.split()), 20))
        for key, body in session.execute(
            select(DocumentSection.key, DocumentSection.body)
            .where(DocumentSection.text_id == of_text)
            .order_by(DocumentSection.position)
        )
    ]
    questions = []
    for key, answer, choices_json in session.execute(
        select(
            ComprehensionQuestion.key,
            ComprehensionQuestion.answer,
            ComprehensionQuestion.choices_json,
        )
        .where(ComprehensionQuestion.text_id == of_text)
        .order_by(ComprehensionQuestion.position)
    ):
        wrong = [c["id"] for c in json.loads(choices_json) if c["id"] != answer]
        questions.append(Question(key, answer, wrong or [answer]))
    items = list(
        session.scalars(
            select(OptionalConsentItem.key)
            .where(OptionalConsentItem.text_id == of_text)
            .order_by(OptionalConsentItem.position)
        )
    )
    options = [
        (key, bool(default))
        for key, default in session.execute(
            select(WithdrawalDataOption.key, WithdrawalDataOption.is_default)
            .where(WithdrawalDataOption.text_id == of_text)
            .order_by(WithdrawalDataOption.position)
        )
    ]
    return TextInfo(
        of_text,
        language_text.language,
        language_text.content_hash,
        sections,
        questions,
        items,
        options,
    )


def _people(session: Session, role: Role) -> list[Person]:
    return [
        Person(row.id, row.full_name, row.role, row.panel_membership)
        for row in session.execute(
            select(User.id, User.full_name, User.role, User.panel_membership)
            .where(User.role == role.value, User.active.is_(True))
            .order_by(User.id)
        )
    ]


def _refuse_unless_ready(session: Session) -> None:
    generated = session.execute(
        select(AuditEvent.seq, AuditEvent.after_json)
        .where(AuditEvent.action == GENERATED_ACTION)
        .limit(1)
    ).first()
    if generated is not None:
        raise click.ClickException(
            f"Synthetic data was already generated in this database ({generated.after_json}, "
            f"audit event {generated.seq}). Generate into a fresh database instead: "
            "flask db upgrade, flask docs import, flask demo load, then flask demo generate."
        )
    taken = session.scalar(
        select(func.count(User.id)).where(User.email.like(f"%@{SYNTHETIC_DOMAIN}"))
    )
    if taken:
        raise click.ClickException(
            f"This database already has {taken} accounts @{SYNTHETIC_DOMAIN}: "
            "generate into a fresh database instead."
        )
    if session.get(AuditChainHead, 1) is None:
        raise click.ClickException("The database has no audit chain: run flask db upgrade first.")
    if not _versions(session):
        raise click.ClickException(
            "No consent document version is in use yet: run flask docs import and then "
            "flask demo load first."
        )
    missing = [
        role.value
        for role in (Role.THERAPIST, Role.PANEL_CHAIR, Role.PANEL_MEMBER, Role.INVESTIGATOR)
        if not _people(session, role)
    ]
    if missing:
        raise click.ClickException(
            f"No active {', '.join(missing)} account: run flask demo load first."
        )


# --- writing ------------------------------------------------------------------------------------


class Rows:
    """Rows waiting to be inserted, per table, written in foreign-key order."""

    ORDER: tuple[Table, ...] = tuple(
        model.__table__  # type: ignore[attr-defined]
        for model in (
            User,
            Invitation,
            Consent,
            SectionVisit,
            ComprehensionAttempt,
            TeachBack,
            OptionalChoice,
            Signature,
            Withdrawal,
            Protocol,
            Submission,
            InterestDeclaration,
            ReviewerAssignment,
            Vote,
            Opinion,
            OpinionCondition,
            ClockStop,
            InformationResponse,
            Incident,
            IncidentEntry,
            IncidentAssignment,
        )
    )

    def __init__(self, session: Session, driver: Driver) -> None:
        self.session = session
        self.driver = driver
        self.pending: dict[Table, list[dict[str, Any]]] = defaultdict(list)

    def add(self, model: Any, row: dict[str, Any]) -> None:
        self.pending[model.__table__].append(row)

    def flush(self) -> None:
        for table in self.ORDER:
            rows = self.pending.pop(table, None)
            if not rows:
                continue
            if any(isinstance(c.type, EncryptedText | EncryptedBytes) for c in table.columns):
                # Few rows, and their values must be encrypted: SQLAlchemy's types do that.
                for start in range(0, len(rows), ROW_BATCH):
                    self.session.execute(insert(table), rows[start : start + ROW_BATCH])
            else:
                self.driver.insert_dicts(table, rows)


class Driver:
    """Inserts handed straight to the database driver's executemany, in the session's
    transaction. SQLAlchemy's insert() converts every value of every row in Python, which at
    millions of rows costs more than the database's own work; here only the timestamps (and
    dates) are converted, to exactly what SQLAlchemy would have stored."""

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        dialect = self.connection.dialect
        self.sqlite = dialect.name == "sqlite"
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"

    def stored_time(self, moment: dt.datetime) -> Any:
        """An aware UTC datetime as the UTCDateTime column stores it."""
        if self.sqlite:  # SQLAlchemy's SQLite format: naive UTC, always six decimals
            return moment.isoformat(" ", "microseconds")[:26]  # UTC, less its "+00:00"
        return moment

    def insert(self, table: str, columns: Iterable[str], rows: list[tuple]) -> None:
        columns = list(columns)
        statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - names from the models
            f"VALUES ({', '.join([self.mark] * len(columns))})"
        )
        for start in range(0, len(rows), ROW_BATCH):
            self.connection.exec_driver_sql(statement, rows[start : start + ROW_BATCH])

    def insert_dicts(self, table: Table, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        converters = []
        if self.sqlite:
            for index, name in enumerate(columns):
                if isinstance(table.c[name].type, UTCDateTime):
                    converters.append((index, self.stored_time))
                elif isinstance(table.c[name].type, Date):
                    converters.append((index, dt.date.isoformat))
        values = []
        for row in rows:
            value = [row[name] for name in columns]
            for index, convert in converters:
                if value[index] is not None:
                    value[index] = convert(value[index])
            values.append(tuple(value))
        self.insert(table.name, columns, values)


EVENT_COLUMNS = audit.STORED_COLUMNS


class Trail:
    """The synthetic audit events: queued by when they happened, then numbered, chained and
    written in that order after the events already in the trail."""

    def __init__(self, session: Session, driver: Driver) -> None:
        self.session = session
        self.driver = driver
        head = session.execute(
            select(AuditChainHead.last_seq, AuditChainHead.last_hash)
            .where(AuditChainHead.id == 1)
            .with_for_update()
        ).one()
        self.seq, self.prev_hash = head.last_seq, head.last_hash
        self.first_seq = self.seq + 1
        latest = session.scalar(select(func.max(AuditEvent.occurred_at)))
        self.last_written = latest or EPOCH
        self.links_written = 0
        self._queue: list[tuple] = []
        self._order = itertools.count()

    def add(
        self,
        when: int,
        action: str,
        actor: audit.Actor,
        object_type: str | None = None,
        object_id: Any = None,
        *,
        before: Any = None,
        after: Any = None,
        after_json: str | None = None,
        reason: str | None = None,
        links: Iterable[tuple[str, int]] = (),
    ) -> None:
        heapq.heappush(
            self._queue,
            (
                when,
                next(self._order),  # ties keep the order the story was told in
                action,
                actor.id,
                actor.role,
                object_type,
                None if object_id is None else str(object_id),
                None if before is None else canonical(before),
                after_json if after is None else canonical(after),
                reason,
                links,
            ),
        )

    @property
    def written(self) -> int:
        return self.seq - self.first_seq + 1

    def flush_before(self, limit: int | None) -> None:
        """Write every queued event that happened before `limit` (all of them for None)."""
        batch = []
        while self._queue and (limit is None or self._queue[0][0] < limit):
            batch.append(heapq.heappop(self._queue))
            if len(batch) == EVENT_BATCH:
                self._write(batch)
                batch = []
        if batch:
            self._write(batch)

    def _write(self, batch: list[tuple]) -> None:
        # occurred_at is when the event enters the chain (now), never the story's time: the
        # events already in the trail are from today, and occurred_at must not go back in time
        # as seq grows (the audit browser maps dates to seq ranges).
        base = max(utcnow(), self.last_written + dt.timedelta(microseconds=1))
        stored_time = self.driver.stored_time
        events, links = [], []
        seq, prev_hash = self.seq, self.prev_hash
        for offset, event in enumerate(batch):
            seq += 1
            occurred = base + dt.timedelta(microseconds=offset)
            _when, _order, action, actor_id, actor_role, object_type, object_id = event[:7]
            before_json, after_json, reason, concerns = event[7:]
            digest = audit.event_hash(
                seq=seq,
                occurred_at=occurred,
                actor_id=actor_id,
                actor_role=actor_role,
                action=action,
                object_type=object_type,
                object_id=object_id,
                reason=reason,
                before_json=before_json,
                after_json=after_json,
                request_id=None,
                prev_hash=prev_hash,
            )
            events.append(
                (
                    seq,
                    stored_time(occurred),
                    actor_id,
                    actor_role,
                    action,
                    object_type,
                    object_id,
                    reason,
                    before_json,
                    after_json,
                    None,
                    prev_hash,
                    digest,
                )
            )
            prev_hash = digest
            links.extend((kind, ref, seq) for kind, ref in concerns)
        self.seq, self.prev_hash, self.last_written = seq, prev_hash, occurred
        self.driver.insert("audit_event", EVENT_COLUMNS, events)
        self.driver.insert("audit_link", ("kind", "ref", "event_seq"), links)
        self.links_written += len(links)

    def close(self) -> None:
        """Write the rest and move the chain head to the last event."""
        self.flush_before(None)
        self.session.execute(
            update(AuditChainHead.__table__)
            .where(AuditChainHead.id == 1)
            .values(last_seq=self.seq, last_hash=self.prev_hash)
        )
        while utcnow() <= self.last_written:  # the next real event must not come before it
            time.sleep(0.001)


class Ids:
    """The next free id of each table whose ids the synthetic events quote."""

    def __init__(self, session: Session, models: Iterable[Any]) -> None:
        self._next = {
            model.__tablename__: (session.scalar(select(func.max(model.id))) or 0) + 1
            for model in models
        }

    def take(self, model: Any) -> int:
        value = self._next[model.__tablename__]
        self._next[model.__tablename__] = value + 1
        return value

    @property
    def tables(self) -> list[str]:
        return list(self._next)


# --- the generator ------------------------------------------------------------------------------


@dataclass
class PatientPlan:
    id: int
    number: int
    name: str
    locale: str
    therapist: Person
    invited_at: int
    joined_at: int
    offered_at: int


@dataclass
class Counts:
    consents: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    withdrawals: int = 0
    teach_backs: int = 0
    incidents: int = 0
    submissions: int = 0


class Generator:
    """The whole synthetic dataset: what exists already, the random source, and the writers."""

    def __init__(self, session: Session, seed: int, password_hash: str, quorum: int) -> None:
        self.session = session
        self.rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, no secrets
        self.password_hash = password_hash
        # The story ends at the start of today (UTC): the same seed then gives the same dataset
        # on any day, shifted by whole days, as office hours repeat daily.
        self.now = as_us(utcnow()) // DAY * DAY
        self.start = self.now - HISTORY_DAYS * DAY
        self.versions = _versions(session)
        self.therapists = _people(session, Role.THERAPIST)
        self.chair = _people(session, Role.PANEL_CHAIR)[0]
        self.panel = [self.chair, *_people(session, Role.PANEL_MEMBER)]
        self.investigator = _people(session, Role.INVESTIGATOR)[0]
        self.ids = Ids(
            session,
            (
                User,
                Invitation,
                Consent,
                TeachBack,
                Withdrawal,
                Incident,
                IncidentEntry,
                Protocol,
                Submission,
                Opinion,
                OpinionCondition,
                InformationResponse,
            ),
        )
        self.quorum = quorum
        driver = Driver(session)
        self.rows = Rows(session, driver)
        # Incidents name patients as reporters: their rows wait until every patient is written.
        self.late_rows = Rows(session, driver)
        self.trail = Trail(session, driver)
        self.counts = Counts()
        self.synthetic_therapists: list[Person] = []
        self.caseload: dict[int, float] = {}
        self._answered: dict[tuple[str, str, bool], str] = {}
        self._difficulty()

    # --- small helpers --------------------------------------------------------------------------

    def _at(self, when: int) -> int:
        if when > self.now:
            raise Later
        return when

    def _delay(self, median_seconds: float, sigma: float) -> int:
        return int(median_seconds * math.exp(self.rng.gauss(0.0, sigma)) * US)

    def _office_hours(self, when: int) -> int:
        """Staff act between 08:00 and 18:00 (UTC, near enough to London for this)."""
        of_day = when % DAY
        if of_day < 8 * HOUR:
            return when - of_day + 8 * HOUR + self.rng.randrange(2 * HOUR)
        if of_day > 18 * HOUR:
            return when - of_day + DAY + 8 * HOUR + self.rng.randrange(2 * HOUR)
        return when

    def _recent(self, skew: float = 0.8) -> int:
        """A moment in the history window; recruitment grows, so later moments are likelier."""
        return self.start + int((self.now - self.start) * self.rng.random() ** skew)

    def _difficulty(self) -> None:
        """Each question's chance of a right answer: a few are notably harder than the rest."""
        keys = list(
            dict.fromkeys(
                q.key for v in self.versions for t in v.texts.values() for q in t.questions
            )
        )
        shuffled = keys[:]
        self.rng.shuffle(shuffled)
        hard, middling = set(shuffled[:3]), set(shuffled[3:7])
        self.first_try: dict[str, float] = {}
        self.second_try: dict[str, float] = {}
        for key in keys:
            if key in hard:
                self.first_try[key], self.second_try[key] = self.rng.uniform(0.52, 0.66), 0.74
            elif key in middling:
                self.first_try[key], self.second_try[key] = self.rng.uniform(0.74, 0.84), 0.82
            else:
                self.first_try[key], self.second_try[key] = self.rng.uniform(0.86, 0.97), 0.86
        items = list(
            dict.fromkeys(i for v in self.versions for t in v.texts.values() for i in t.items)
        )
        self.agree = {item: self.rng.uniform(0.3, 0.85) for item in items}

    def _answered_json(self, key: str, choice: str, correct: bool) -> str:
        cached = self._answered.get((key, choice, correct))
        if cached is None:
            cached = canonical({"question": key, "choice": choice, "correct": correct})
            self._answered[(key, choice, correct)] = cached
        return cached

    def _name(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def _user_row(
        self, person_id: int, email: str, name: str, role: Role, locale: str, created: int
    ) -> dict[str, Any]:
        return {
            "id": person_id,
            "email": email,
            "full_name": name,
            "name_key": name_key(name),
            "role": role.value,
            "password_hash": self.password_hash,
            "locale": locale,
            "active": True,
            "created_at": as_datetime(created),
            "deactivated_at": None,
            "invited_by_id": None,
            "totp_secret": None,
            "totp_pending_secret": None,
            "totp_enabled_at": None,
            "totp_last_counter": None,
            "panel_membership": None,
        }

    @staticmethod
    def _audit_view(email: str, name: str, role: Role, locale: str) -> dict[str, Any]:
        return {
            "email": email,
            "full_name": name,
            "role": role.value,
            "active": True,
            "locale": locale,
            "panel_membership": None,
        }

    # --- staff ----------------------------------------------------------------------------------

    def add_therapists(self, count: int) -> None:
        """Therapists at a handful of sites, with the demo's published second-factor key."""
        from portal.cli.demo import DEMO_TOTP_SECRET

        weights = [weight for _site, weight in SITES]
        for number in range(1, count + 1):
            site_index = (number - 1) % len(SITES) if number <= len(SITES) else None
            if site_index is None:
                site_index = self.rng.choices(range(len(SITES)), weights=weights)[0]
            site, weight = SITES[site_index]
            person = Person(self.ids.take(User), f"Dr {self._name()}", Role.THERAPIST.value)
            email = f"therapist{number:03d}.{site}@{SYNTHETIC_DOMAIN}"
            created = self.start - self.rng.randrange(20 * DAY, 60 * DAY)
            row = self._user_row(person.id, email, person.name, Role.THERAPIST, "en_GB", created)
            row["totp_secret"] = DEMO_TOTP_SECRET
            row["totp_enabled_at"] = as_datetime(created + MINUTE)
            self.rows.add(User, row)
            self.trail.add(
                created,
                "account.created",
                audit.SYSTEM,
                "user",
                person.id,
                after=self._audit_view(email, person.name, Role.THERAPIST, "en_GB"),
                reason="synthetic data",
            )
            self.trail.add(
                created + MINUTE,
                "account.mfa_enrolled",
                audit.SYSTEM,
                "user",
                person.id,
                reason="synthetic data: the shared demo key from the README",
            )
            self.synthetic_therapists.append(person)
            self.caseload[person.id] = weight * math.exp(self.rng.gauss(0.0, 0.3))
        for person in self.therapists:  # the demo's own therapists see patients too
            self.caseload[person.id] = SITES[0][1]
        self.therapists = [*self.therapists, *self.synthetic_therapists]

    # --- patients -------------------------------------------------------------------------------

    def plan_patients(self, count: int) -> list[PatientPlan]:
        """Who joins when and with which therapist, in the order they are offered consent."""
        rng = self.rng
        offered = sorted(self._office_hours(self._recent()) for _ in range(count))
        therapists = rng.choices(
            self.therapists, weights=[self.caseload[t.id] for t in self.therapists], k=count
        )
        plans = []
        for number, (offer, therapist) in enumerate(zip(offered, therapists, strict=True), 1):
            offer = min(offer, self.now - MINUTE)
            joined = offer - rng.randrange(10 * MINUTE, 4 * DAY)
            invited = self._office_hours(joined - rng.randrange(5 * MINUTE, 2 * DAY))
            invited = min(invited, joined - MINUTE)
            plans.append(
                PatientPlan(
                    id=self.ids.take(User),
                    number=number,
                    name=self._name(),
                    locale="cy" if rng.random() < 0.06 else "en_GB",
                    therapist=therapist,
                    invited_at=invited,
                    joined_at=joined,
                    offered_at=offer,
                )
            )
        return plans

    def add_patients(self, plans: list[PatientPlan], progress) -> None:
        """Each patient's account and journeys, a chunk at a time; the trail follows behind."""
        for start in range(0, len(plans), CHUNK_PATIENTS):
            chunk = plans[start : start + CHUNK_PATIENTS]
            for plan in chunk:
                self._account(plan)
                for version in self.versions:
                    self._journey(plan, version)
            self.rows.flush()
            following = (
                plans[start + CHUNK_PATIENTS] if start + CHUNK_PATIENTS < len(plans) else None
            )
            self.trail.flush_before(following.offered_at - ACCOUNT_LEAD if following else None)
            progress(start + len(chunk))

    def _account(self, plan: PatientPlan) -> None:
        email = f"patient{plan.number:06d}@{SYNTHETIC_DOMAIN}"
        invitation_id = self.ids.take(Invitation)
        row = self._user_row(plan.id, email, plan.name, Role.PATIENT, plan.locale, plan.joined_at)
        row["invited_by_id"] = plan.therapist.id
        self.rows.add(User, row)
        expires = plan.invited_at + 72 * HOUR
        self.rows.add(
            Invitation,
            {
                "id": invitation_id,
                "token_hash": f"{self.rng.getrandbits(256):064x}",
                "email": email,
                "full_name": plan.name,
                "name_key": name_key(plan.name),
                "role": Role.PATIENT.value,
                "purpose": "new_account",
                "invited_by_id": plan.therapist.id,
                "created_at": as_datetime(plan.invited_at),
                "expires_at": as_datetime(expires),
                "accepted_at": as_datetime(plan.joined_at),
                "user_id": plan.id,
                "revoked_at": None,
            },
        )
        patient = audit.Actor(plan.id, Role.PATIENT.value)
        links = (("patient", plan.id),)
        self.trail.add(
            plan.invited_at,
            "invitation.created",
            plan.therapist.actor,
            "invitation",
            invitation_id,
            after={
                "email": email,
                "full_name": plan.name,
                "role": Role.PATIENT.value,
                "expires_at": audit.format_timestamp(as_datetime(expires)),
            },
        )
        self.trail.add(
            plan.joined_at,
            "account.created",
            patient,
            "user",
            plan.id,
            after=self._audit_view(email, plan.name, Role.PATIENT, plan.locale),
            reason=f"invitation {invitation_id}",
            links=links,
        )
        self.trail.add(
            plan.joined_at,
            "invitation.accepted",
            patient,
            "invitation",
            invitation_id,
            before={"status": "pending"},
            after={"status": "accepted", "user_id": plan.id},
            links=links,
        )

    def _goal(self) -> int:
        """How many steps past the offer this patient will take, given the time."""
        steps = 0
        while steps < len(STEPS) and self.rng.random() < CONTINUE[STEPS[steps]]:
            steps += 1
        return steps

    def _journey(self, plan: PatientPlan, version: VersionInfo) -> None:
        journey = Journey(self, plan, version)
        try:
            journey.walk(self._goal())
        except Later:
            pass  # still under way today: no withdrawal yet either
        else:
            if self.rng.random() < WITHDRAWAL_RATE:
                with contextlib.suppress(Later):
                    journey.withdraw()
        journey.finish()

    # --- incidents ------------------------------------------------------------------------------

    def add_incidents(self, count: int, plans: list[PatientPlan]) -> None:
        """Concerns about the synthetic therapists, at every stage of the panel's handling."""
        patients_of: dict[int, list[PatientPlan]] = defaultdict(list)
        for plan in plans:
            patients_of[plan.therapist.id].append(plan)
        for theirs in patients_of.values():
            theirs.sort(key=lambda plan: plan.joined_at)
        joined_of = {key: [p.joined_at for p in value] for key, value in patients_of.items()}
        categories = [c for c, _w in INCIDENT_CATEGORIES]
        weights = [w for _c, w in INCIDENT_CATEGORIES]
        members = [p for p in self.panel if p.role == Role.PANEL_MEMBER.value]
        for _ in range(count):
            therapist = self.rng.choice(self.synthetic_therapists)
            reported = self._recent(0.9)
            earlier = bisect_left(joined_of.get(therapist.id, []), reported)
            if earlier and self.rng.random() < 0.6:
                reporter = patients_of[therapist.id][self.rng.randrange(earlier)]
                reporter_person = Person(reporter.id, reporter.name, Role.PATIENT.value)
                anonymous = False
            else:
                colleagues = [t for t in self.synthetic_therapists if t.id != therapist.id]
                reporter_person = self.rng.choice(colleagues or self.therapists)
                anonymous = self.rng.random() < 0.4
            Concern(self, therapist, reporter_person, anonymous, reported, members).tell(
                self.rng.choices(categories, weights=weights)[0]
            )
            self.counts.incidents += 1

    # --- ethics review --------------------------------------------------------------------------

    def add_reviews(self, protocols: int) -> None:
        """Other MDMA trials' protocols and their submissions, with the panel's opinions."""
        for number in range(protocols):
            Review(self, number).tell()

    # --- finishing ------------------------------------------------------------------------------

    def close(self) -> None:
        self.rows.flush()
        self.late_rows.flush()
        self.trail.close()
        if self.session.get_bind().dialect.name == "postgresql":
            for table in self.ids.tables:  # explicit ids were used: move the sequences on
                self.session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT max(id) FROM {table}))"
                    )
                )


class Journey:
    """One patient's consent to one document version, told step by step as the real services
    would have recorded it."""

    def __init__(self, generator: Generator, plan: PatientPlan, version: VersionInfo) -> None:
        self.g = generator
        self.rng = generator.rng
        self.trail = generator.trail
        self.plan = plan
        self.version = version
        self.text = version.text_for(plan.locale)
        self.patient = audit.Actor(plan.id, Role.PATIENT.value)
        self.therapist = plan.therapist
        self.id = generator.ids.take(Consent)
        self.links = version.links(plan.id)
        self.choices: dict[str, bool] = {}
        self.choices_at = 0
        self.teach_backs: list[dict[str, Any]] = []
        self.last = plan.offered_at
        self.row: dict[str, Any] = {
            "id": self.id,
            "patient_id": plan.id,
            "therapist_id": plan.therapist.id,
            "version_id": version.id,
            "text_id": self.text.id,
            "content_hash": self.text.content_hash,
            "status": ConsentStatus.OFFERED.value,
            "replaces_id": None,
            "reading_keys_json": None,
            "offered_at": as_datetime(plan.offered_at),
            "opened_at": None,
            "reading_position": 0,
            "reading_completed_at": None,
            "comprehension_completed_at": None,
            "choices_saved_at": None,
            "signed_at": None,
            "completed_at": None,
        }
        self.event(
            plan.offered_at,
            "consent.offered",
            self.therapist.actor,
            after={
                "patient_id": plan.id,
                "version": version.label,
                "language": self.text.language,
                "content_hash": self.text.content_hash,
            },
        )

    def event(self, when: int, action: str, actor: audit.Actor, **values: Any) -> None:
        self.trail.add(when, action, actor, "consent", self.id, links=self.links, **values)
        self.last = max(self.last, when)

    def walk(self, goal: int) -> None:
        """Take `goal` steps past the offer (see STEPS), or as many as there has been time for."""
        if goal < 1:
            return
        t = self.read(goal)
        if goal < 2:
            return
        t = self.understand(t, goal)
        if goal < 4:
            return
        t = self.choose(t)
        if goal < 5:
            return
        t = self.sign(t)
        if goal < 6:
            return
        self.countersign(t)

    # --- reading ------------------------------------------------------------------------------

    def read(self, goal: int) -> int:
        rng = self.rng
        t = self.g._at(self.plan.offered_at + max(self.g._delay(20 * 3600, 1.2), 5 * MINUTE))
        self.row["opened_at"] = as_datetime(t)
        self.row["status"] = ConsentStatus.IN_PROGRESS.value
        self.event(t, "consent.opened", self.patient, after={"status": "in_progress"})
        sections = self.text.sections
        last = len(sections) - 1
        stop_at = None if goal >= 2 else rng.randrange(len(sections))
        pace = min(max(rng.gauss(200, 45), 90), 360) * (0.35 if rng.random() < 0.1 else 1.0)
        for position, (key, words) in enumerate(sections):
            self.g._at(t)
            if position == stop_at:  # the page they left open and never came back to
                self._visit(key, t, None)
                return t
            seconds = self._seconds(words, pace)
            self._visit(key, t, seconds)
            t += seconds * US + rng.randrange(2 * US, 10 * US)
            if position and rng.random() < 0.04:  # back to the previous page, then on again
                self._visit(sections[position - 1][0], t, seconds // 3 + 5)
                t += (seconds // 3 + 5) * US
                self._visit(key, t, 6)
                t += 6 * US
            self.row["reading_position"] = min(position + 1, last)
            if rng.random() < 0.12:  # a break: reading is often spread over a few sittings
                t += self.g._delay(6 * 3600, 1.0)
        t = self.g._at(t)
        self.row["reading_completed_at"] = as_datetime(t)
        self.event(t, "consent.reading_completed", self.patient)
        return t

    def _seconds(self, words: int, pace: float) -> int:
        from portal.consent.reading_time import MAX_SECTION_SECONDS

        if self.rng.random() < 0.005:  # a page left open: the real code caps it
            return MAX_SECTION_SECONDS
        seconds = words / pace * 60 * math.exp(self.rng.gauss(0.0, 0.35))
        return min(max(int(seconds), 3), MAX_SECTION_SECONDS)

    def _visit(self, key: str, when: int, seconds: int | None) -> None:
        self.g.rows.add(
            SectionVisit,
            {
                "consent_id": self.id,
                "section_key": key,
                "opened_at": as_datetime(when),
                "seconds": seconds,
            },
        )

    # --- comprehension ------------------------------------------------------------------------

    def understand(self, t: int, goal: int) -> int:
        """Answer each question; after two wrong answers the therapist talks it through
        (teach-back) and the patient answers again once that is recorded."""
        rng, g = self.rng, self.g
        t += rng.randrange(30 * US, 10 * MINUTE)
        if rng.random() < 0.3:
            t += g._delay(8 * 3600, 1.0)
        questions = self.text.questions
        if not questions:
            return t
        stop_after = None if goal >= 3 else rng.randrange(len(questions))
        waiting: list[tuple[int, Question, dict[str, Any]]] = []
        for index, question in enumerate(questions):
            if index == stop_after:  # they stopped here and never came back
                self._leave_teach_backs(waiting)
                return t
            answered = t = g._at(t)
            if not self._attempt(question, t, g.first_try[question.key]):
                answered = t = g._at(t + rng.randrange(15 * US, 90 * US))
                if not self._attempt(question, t, g.second_try[question.key]):
                    flag = self._raise_teach_back(question, t + 1000)
                    talk = g._office_hours(t + g._delay(20 * 3600, 1.0))
                    waiting.append((talk, question, flag))
            t += rng.randrange(10 * US, 90 * US)
        for talk, question, flag in sorted(waiting, key=lambda item: item[0]):
            self._resolve_teach_back(question, flag, g._at(talk))
            answered = t = g._at(max(t, talk) + g._delay(3 * 3600, 1.2))
            if not self._attempt(question, t, 0.9):  # one more slip, then right
                answered = t = g._at(t + rng.randrange(20 * US, 90 * US))
                self._attempt(question, t, 1.0)
            t += rng.randrange(10 * US, 60 * US)
        # The last right answer completes the check, in the same request.
        self.row["comprehension_completed_at"] = as_datetime(answered)
        self.event(answered, "consent.comprehension_completed", self.patient)
        return t

    def _attempt(self, question: Question, when: int, chance: float) -> bool:
        correct = self.rng.random() < chance
        choice = question.answer if correct else self.rng.choice(question.wrong)
        self.g.rows.add(
            ComprehensionAttempt,
            {
                "consent_id": self.id,
                "question_key": question.key,
                "choice": choice,
                "correct": correct,
                "attempted_at": as_datetime(when),
            },
        )
        self.event(
            when,
            "comprehension.answered",
            self.patient,
            after_json=self.g._answered_json(question.key, choice, correct),
        )
        return correct

    def _raise_teach_back(self, question: Question, when: int) -> dict[str, Any]:
        flag = {
            "id": self.g.ids.take(TeachBack),
            "consent_id": self.id,
            "question_key": question.key,
            "raised_at": as_datetime(when),
            "resolved_at": None,
            "resolved_by_id": None,
            "note": None,
        }
        self.teach_backs.append(flag)
        self.event(
            when,
            "comprehension.teach_back_raised",
            self.patient,
            after={"question": question.key, "teach_back_id": flag["id"]},
        )
        return flag

    def _resolve_teach_back(self, question: Question, flag: dict[str, Any], when: int) -> None:
        note = self.rng.choice(TEACH_BACK_NOTES)
        flag.update(resolved_at=as_datetime(when), resolved_by_id=self.therapist.id, note=note)
        self.event(
            when,
            "comprehension.teach_back_resolved",
            self.therapist.actor,
            after={
                "question": question.key,
                "teach_back_id": flag["id"],
                "note_sha256": hashlib.sha256(note.encode()).hexdigest(),
            },
        )

    def _leave_teach_backs(self, waiting: list[tuple[int, Question, dict[str, Any]]]) -> None:
        """A patient who gave up: their therapist may still have recorded the talk."""
        for resolved, question, flag in waiting:
            if resolved <= self.g.now and self.rng.random() < 0.5:
                self._resolve_teach_back(question, flag, resolved)

    # --- choices and signatures ---------------------------------------------------------------

    def choose(self, t: int) -> int:
        rng, g = self.rng, self.g
        t = g._at(t + rng.randrange(MINUTE, 8 * MINUTE))
        self.choices = {item: rng.random() < g.agree[item] for item in self.text.items}
        self.event(t, "consent.choices_saved", self.patient, after=dict(self.choices))
        if self.choices and rng.random() < 0.06:  # a change of mind before signing
            t = g._at(t + g._delay(3 * 3600, 1.5))
            before = dict(self.choices)
            item = rng.choice(self.text.items)
            self.choices[item] = not self.choices[item]
            self.event(
                t, "consent.choices_saved", self.patient, before=before, after=dict(self.choices)
            )
        self.choices_at = t
        self.row["choices_saved_at"] = as_datetime(t)
        return t

    def sign(self, t: int) -> int:
        rng, g = self.rng, self.g
        opened = as_us(self.row["opened_at"])
        t = max(
            t + g._delay(2 * 3600, 1.5),
            opened + self.version.cooling_off + rng.randrange(MINUTE, 6 * HOUR),
        )
        t = g._at(t)
        if rng.random() < 0.03:  # a mistyped password first (audited, as the real code does)
            self.event(t, "consent.signature_refused", self.patient, reason="wrong password")
            t = g._at(t + rng.randrange(20 * US, 120 * US))
        binding = self._signature(self.plan.id, self.plan.name, "participant", "typed", t)
        self.row["status"] = ConsentStatus.SIGNED.value
        self.row["signed_at"] = as_datetime(t)
        self.event(
            t,
            "consent.signed",
            self.patient,
            after={"status": "signed", "method": "typed", "binding_hash": binding},
        )
        return t

    def countersign(self, t: int) -> int:
        g = self.g
        t = g._at(g._office_hours(t + g._delay(26 * 3600, 1.1)))
        binding = self._signature(
            self.therapist.id, self.therapist.name, "person_taking_consent", "password", t
        )
        self.row["status"] = ConsentStatus.COMPLETE.value
        self.row["completed_at"] = as_datetime(t)
        self.event(
            t,
            "consent.countersigned",
            self.therapist.actor,
            after={"status": "complete", "binding_hash": binding},
        )
        return t

    def _signature(self, signer: int, name: str, role: str, method: str, when: int) -> str:
        """Bound as portal.consent.journey._bound binds it: version, answers and choices."""
        signed_at = as_datetime(when)
        meaning = PARTICIPANT_MEANING if role == "participant" else PERSON_TAKING_CONSENT_MEANING
        bound_json = canonical(
            {
                "consent_id": self.id,
                "document": self.version.slug,
                "version": self.version.version,
                "language": self.text.language,
                "content_hash": self.text.content_hash,
                "answers": {q.key: q.answer for q in self.text.questions},
                "choices": self.choices,
                "signer_id": signer,
                "role": role,
                "printed_name": name,
                "meaning": meaning,
                "signed_at": audit.format_timestamp(signed_at),
                "method": method,
                "image_sha256": None,
            }
        )
        binding = hashlib.sha256(bound_json.encode()).hexdigest()
        self.g.rows.add(
            Signature,
            {
                "consent_id": self.id,
                "signer_id": signer,
                "role": role,
                "printed_name": name,
                "meaning": meaning,
                "signed_at": signed_at,
                "method": method,
                "image_png": None,
                "bound_json": bound_json,
                "binding_hash": binding,
            },
        )
        return binding

    # --- withdrawal ---------------------------------------------------------------------------

    def withdraw(self) -> None:
        """From the study (at any stage), from treatment, or from one optional item."""
        rng, g = self.rng, self.g
        status = self.row["status"]
        agreed = [key for key, yes in self.choices.items() if yes]
        scope = "study"
        if status == ConsentStatus.COMPLETE.value:
            scope = rng.choices(("study", "treatment", "optional_item"), (55, 25, 20))[0]
        elif status == ConsentStatus.SIGNED.value:
            scope = rng.choices(("study", "optional_item"), (70, 30))[0]
        if scope == "optional_item" and not agreed:
            scope = "study"
        median = 25 * DAY if status == ConsentStatus.COMPLETE.value else 4 * DAY
        t = self.last + g._delay(median / US, 1.0)
        if t > g.now:  # it would be later than now: some time between, if there is any
            if g.now - self.last < HOUR:
                raise Later
            t = self.last + rng.randrange(g.now - self.last)
        channel = rng.choices(
            ("portal", "phone", "in_person", "email", "letter"), (55, 20, 13, 7, 5)
        )[0]
        staff = channel != "portal"
        actor = self.therapist.actor if staff else self.patient
        told = london_day(t - rng.randrange(3 * DAY)) if staff else london_day(t)
        told = max(told, london_day(self.plan.offered_at))
        options = self.text.options
        data_option = None
        if scope == "study" and status == ConsentStatus.COMPLETE.value and options:
            data_option = rng.choices(
                [key for key, _default in options],
                [60 if default else 20 for _key, default in options],
            )[0]
        item = rng.choice(agreed) if scope == "optional_item" else ""
        reason = rng.choice(WITHDRAWAL_REASONS) if rng.random() < 0.4 else None
        withdrawal_id = g.ids.take(Withdrawal)
        row = {
            "id": withdrawal_id,
            "consent_id": self.id,
            "scope": scope,
            "item_key": item,
            "data_option_key": data_option,
            "reason": reason,
            "channel": channel,
            "communicated_on": told,
            "recorded_by_id": actor.id,
            "recorded_at": as_datetime(t),
            "attestation": STAFF_ATTESTATION if staff else None,
            "acknowledged_at": None,
            "acknowledged_by_id": None,
        }
        links = self.links
        self.trail.add(
            t,
            "withdrawal.recorded",
            actor,
            "withdrawal",
            withdrawal_id,
            after={
                "consent_id": self.id,
                "scope": scope,
                "item": item or None,
                "data_option": data_option,
                "channel": channel,
                "communicated_on": told.isoformat(),
                "reason_given": reason is not None,
            },
            links=links,
        )
        if scope == "study":
            self.row["status"] = ConsentStatus.WITHDRAWN.value
            self.event(
                t,
                "consent.withdrawn",
                actor,
                before={"status": status},
                after={"status": "withdrawn", "withdrawal_id": withdrawal_id},
            )
        acknowledged = g._office_hours(t + g._delay(20 * 3600, 1.0))
        if acknowledged <= g.now and rng.random() < 0.9:
            row["acknowledged_at"] = as_datetime(acknowledged)
            row["acknowledged_by_id"] = self.therapist.id
            self.trail.add(
                acknowledged,
                "withdrawal.acknowledged",
                self.therapist.actor,
                "withdrawal",
                withdrawal_id,
                after={"acknowledged_by": self.therapist.id},
                links=links,
            )
        g.rows.add(Withdrawal, row)
        g.counts.withdrawals += 1

    def finish(self) -> None:
        rows = self.g.rows
        rows.add(Consent, self.row)
        for flag in self.teach_backs:
            rows.add(TeachBack, flag)
        if self.row["choices_saved_at"] is not None:
            for item, agreed in self.choices.items():
                rows.add(
                    OptionalChoice,
                    {
                        "consent_id": self.id,
                        "item_key": item,
                        "agreed": agreed,
                        "chosen_at": as_datetime(self.choices_at),
                    },
                )
        self.g.counts.consents[self.row["status"]] += 1
        self.g.counts.teach_backs += len(self.teach_backs)


class Concern:
    """One incident, handled by the panel as far as time allows."""

    def __init__(
        self,
        generator: Generator,
        therapist: Person,
        reporter: Person,
        anonymous: bool,
        reported: int,
        members: list[Person],
    ) -> None:
        self.g = generator
        self.rng = generator.rng
        self.therapist = therapist
        self.reporter = reporter
        self.anonymous = anonymous
        self.reported = reported
        self.members = members
        self.rows = generator.late_rows
        self.id = generator.ids.take(Incident)
        self.links = (("incident", self.id),)

    def event(self, when: int, action: str, actor: audit.Actor, **values: Any) -> None:
        self.g.trail.add(when, action, actor, "incident", self.id, links=self.links, **values)

    def entry(self, when: int, author: Person, kind: str, note: str | None, **more: Any) -> int:
        entry_id = self.g.ids.take(IncidentEntry)
        self.rows.add(
            IncidentEntry,
            {
                "id": entry_id,
                "incident_id": self.id,
                "author_id": author.id,
                "kind": kind,
                "text": note,
                "recording_reference": more.get("recording_reference"),
                "file_name": None,
                "file_type": None,
                "file_size": None,
                "file_content": None,
                "created_at": as_datetime(when),
            },
        )
        return entry_id

    def tell(self, category: str) -> None:
        rng = self.rng
        row: dict[str, Any] = {
            "id": self.id,
            "reporter_id": self.reporter.id,
            "anonymous": self.anonymous,
            "therapist_id": self.therapist.id,
            "category": category,
            "occurred_on": london_day(self.reported - rng.randrange(0, 20 * DAY)),
            "session_kind": rng.choice(("dosing", "other_session", "outside", "not_sure")),
            "what_happened": INCIDENT_NARRATIVES[category],
            "others_involved": None,
            "feels_safe": rng.choices(("yes", "no", "unsure"), (70, 10, 20))[0],
            "reported_at": as_datetime(self.reported),
            "status": "reported",
            "severity": None,
            "triaged_at": None,
            "serious_breach_due": False,
            "serious_breach_reported_at": None,
            "shared_at": None,
            "response": None,
            "responded_at": None,
            "outcome": None,
            "outcome_reasons": None,
            "closed_at": None,
        }
        reporter = (
            audit.Actor(None, "anonymous_reporter") if self.anonymous else self.reporter.actor
        )
        self.event(
            self.reported,
            "incident.reported",
            reporter,
            after={
                "category": category,
                "therapist_id": self.therapist.id,
                "session_kind": row["session_kind"],
                "feels_safe": row["feels_safe"],
                "anonymous": self.anonymous,
            },
        )
        with contextlib.suppress(Later):  # still open today
            self._handle(row, category)
        self.rows.add(Incident, row)

    def _handle(self, row: dict[str, Any], category: str) -> None:
        rng, g = self.rng, self.g
        chair = g.chair
        t = g._at(g._office_hours(self.reported + g._delay(30 * 3600, 0.8)))
        severity = rng.choices(("low", "moderate", "serious"), (45, 40, 15))[0]
        breach = severity == "serious" and category in ("sexual", "coercion", "touch")
        row.update(status="investigating", severity=severity, triaged_at=as_datetime(t))
        row["serious_breach_due"] = breach
        self.entry(t, chair, "triage", "Triaged at the weekly safeguarding check.")
        self.event(
            t,
            "incident.triaged",
            chair.actor,
            after={"severity": severity, "hold": False, "serious_breach_due": breach},
        )
        for member in rng.sample(self.members, k=min(len(self.members), rng.choice((1, 2)))):
            t = g._at(t + rng.randrange(MINUTE, 4 * HOUR))
            self.rows.add(
                IncidentAssignment,
                {"incident_id": self.id, "member_id": member.id, "assigned_at": as_datetime(t)},
            )
            self.entry(t, chair, "assignment", member.name)
            self.event(t, "incident.assigned", chair.actor, after={"member_id": member.id})
            if rng.random() < 0.6:
                noted = g._at(g._office_hours(t + g._delay(4 * DAY / US, 0.8)))
                reference = f"REC-{rng.randrange(10_000, 99_999)}" if rng.random() < 0.3 else None
                entry_id = self.entry(
                    noted,
                    member,
                    "note",
                    "Spoke to the site lead; reviewing the session notes.",
                    recording_reference=reference,
                )
                self.event(
                    noted,
                    "incident.note_added",
                    member.actor,
                    after={
                        "entry_id": entry_id,
                        "recording_reference": reference,
                        "file_sha256": None,
                        "file_size": None,
                    },
                )
                t = max(t, noted)
        if breach:
            reported = g._at(g._office_hours(t + g._delay(3 * DAY / US, 0.5)))
            row["serious_breach_reported_at"] = as_datetime(reported)
            self.entry(reported, chair, "breach_reported", None)
            self.event(reported, "incident.serious_breach_reported", chair.actor)
            t = max(t, reported)
        shared = rng.random() < 0.55
        if shared:
            t = g._at(g._office_hours(t + g._delay(7 * DAY / US, 0.6)))
            row.update(status="response_invited", shared_at=as_datetime(t))
            self.entry(t, chair, "shared", None)
            self.event(
                t,
                "incident.shared_with_therapist",
                chair.actor,
                after={"therapist_id": self.therapist.id},
            )
            if rng.random() < 0.9:
                t = g._at(g._office_hours(t + g._delay(6 * DAY / US, 0.6)))
                row.update(
                    response="I have reflected on this with my supervisor; my account follows.",
                    responded_at=as_datetime(t),
                )
                self.entry(t, self.therapist, "response", None)
                self.event(t, "incident.response_received", self.therapist.actor)
        t = g._at(g._office_hours(t + g._delay(10 * DAY / US, 0.6)))
        outcome = rng.choice(("no_case", "retraining")) if shared else "no_case"
        row.update(
            status="closed",
            outcome=outcome,
            outcome_reasons="The panel considered the report, the notes and any response.",
            closed_at=as_datetime(t),
        )
        self.entry(t, chair, "outcome", None)
        self.event(
            t,
            "incident.outcome_recorded",
            chair.actor,
            after={"outcome": outcome, "therapist_unavailable": False},
        )


class Review:
    """One synthetic protocol: its initial application and later modifications, each through
    declarations, reviewers, votes and opinions (with a 60-day clock that sometimes overruns)."""

    def __init__(self, generator: Generator, number: int) -> None:
        self.g = generator
        self.rng = generator.rng
        self.number = number
        self.id = generator.ids.take(Protocol)
        self.reference = f"IRAS {330002 + number}"
        self.links = (("protocol", self.id),)
        self.row: dict[str, Any] = {}
        self.votes: dict[int, str] = {}  # this round's, by member
        self.conditions: list[dict[str, Any]] = []  # the latest opinion's

    def event(
        self,
        when: int,
        action: str,
        actor: audit.Actor,
        object_type: str,
        object_id: Any,
        **values: Any,
    ) -> None:
        self.g.trail.add(when, action, actor, object_type, object_id, links=self.links, **values)

    def tell(self) -> None:
        rng, g = self.rng, self.g
        created = g._office_hours(
            g.start
            + int((g.now - g.start) * self.number / (len(PROTOCOL_TITLES) + 1))
            + rng.randrange(20 * DAY)
        )
        title = PROTOCOL_TITLES[self.number % len(PROTOCOL_TITLES)]
        self.row = {
            "id": self.id,
            "reference": self.reference,
            "title": title,
            "sites": "St Elsewhere Hospital, London\nLeeds Psychological Trauma Service",
            "chief_investigator": g.investigator.name,
            "team_emails": "",
            "submitted_by_id": g.investigator.id,
            "created_at": as_datetime(created),
            "status": "under_review",
            "status_changed_at": as_datetime(created),
        }
        self.event(
            created,
            "protocol.created",
            g.investigator.actor,
            "protocol",
            self.id,
            after={"reference": self.reference, "title": title},
        )
        kinds, weights = ("substantial", "important_detail", "minor"), (45, 30, 25)
        try:
            t = self._submission("initial", created + US)
            while self.row["status"] == "approved":
                following = t + g._delay(70 * DAY / US, 0.6)
                if following > g.now:
                    # Half the trials have a modification in front of the panel today.
                    if g.now - t > 10 * DAY and rng.random() < 0.5:
                        following = t + DAY + rng.randrange(g.now - t - DAY)
                        self._submission(rng.choices(kinds, weights)[0], following)
                    break
                if rng.random() < 0.06:
                    self._suspend(following)
                    break
                t = self._submission(rng.choices(kinds, weights)[0], following)
        except Later:
            pass  # under review today
        g.rows.add(Protocol, self.row)

    def _protocol_status(self, when: int, target: str, reason: str, actor: Person) -> None:
        before = self.row["status"]
        self.row.update(status=target, status_changed_at=as_datetime(when))
        self.event(
            when,
            "protocol.status_changed",
            actor.actor,
            "protocol",
            self.id,
            before={"status": before},
            after={"status": target},
            reason=reason,
        )

    def _suspend(self, when: int) -> None:
        self._protocol_status(
            self.g._at(self.g._office_hours(when)),
            "suspended",
            "A safety review after a serious adverse event.",
            self.g.chair,
        )

    def _submission(self, kind: str, submitted: int) -> int:
        g = self.g
        submission_id = g.ids.take(Submission)
        reference = f"S-{submission_id:05d}"
        row: dict[str, Any] = {
            "id": submission_id,
            "protocol_id": self.id,
            "kind": kind,
            "summary": (
                f"{self.row['title']}: the trial's design, sites and safeguards."
                if kind == "initial"
                else MODIFICATION_SUMMARIES[kind]
            ),
            "submitted_by_id": g.investigator.id,
            "submitted_at": as_datetime(submitted),
            "status": "in_review",
            "round": 1,
            "decided_at": None,
            "file_name": None,
            "file_size": None,
            "file_sha256": None,
            "file_content": None,
        }
        try:
            return self._decide(row, reference, submitted)
        finally:
            g.rows.add(Submission, row)
            g.counts.submissions += 1

    def _sub_event(
        self, row: dict[str, Any], when: int, action: str, actor: Person, **values: Any
    ) -> None:
        self.event(when, action, actor.actor, "submission", row["id"], **values)

    def _decide(self, row: dict[str, Any], reference: str, submitted: int) -> int:
        rng, g = self.rng, self.g
        kind = row["kind"]
        self._sub_event(
            row,
            submitted,
            "submission.submitted",
            g.investigator,
            after={
                "protocol": self.reference,
                "kind": kind,
                "file_sha256": None,
                "consent_versions": [],
            },
        )
        # The days the clock runs: mostly inside the 60-day target, sometimes over it.
        clock_days = rng.uniform(18, 58) if rng.random() < 0.8 else rng.uniform(61, 95)
        plan = (
            rng.choices(
                ("favourable", "favourable_with_conditions", "provisional", "unfavourable"),
                (40, 25, 25, 10),
            )[0]
            if kind == "initial"
            else rng.choices(
                ("favourable", "favourable_with_conditions", "provisional", "unfavourable"),
                (70, 10, 15, 5),
            )[0]
        )
        recused, declared = self._declare(row, submitted)
        voters = [p for p in g.panel if p.id not in recused]
        first_days = clock_days * (0.6 if plan == "provisional" else 1.0)
        decided = g._office_hours(max(submitted + int(first_days * DAY), declared + 2 * DAY))
        self._votes(row, 1, voters, declared + HOUR, decided, plan)
        category = plan
        if plan == "provisional":
            g._at(decided)
            self._opinion(row, 1, voters, decided, "provisional", reference)
            self._submission_status(row, decided, "in_review", "information_requested", g.chair)
            answered = g._office_hours(decided + g._delay(20 * DAY / US, 0.5))
            stop = {
                "submission_id": row["id"],
                "stopped_at": as_datetime(decided),
                "restarted_at": None,
            }
            g.rows.add(ClockStop, stop)
            g._at(answered)
            stop["restarted_at"] = as_datetime(answered)
            response_id = g.ids.take(InformationResponse)
            g.rows.add(
                InformationResponse,
                {
                    "id": response_id,
                    "submission_id": row["id"],
                    "round": 1,
                    "text": "The safeguarding lead at each site is now named in section 9.",
                    "author_id": g.investigator.id,
                    "created_at": as_datetime(answered),
                },
            )
            row["round"] = 2
            self._submission_status(
                row, answered, "information_requested", "in_review", g.investigator
            )
            self._sub_event(
                row,
                answered,
                "submission.information_sent",
                g.investigator,
                after={"round": 2, "response_id": response_id},
            )
            decided = g._office_hours(answered + int(clock_days * 0.4 * DAY))
            category = "favourable" if rng.random() < 0.85 else "favourable_with_conditions"
            self._votes(row, 2, voters, answered + DAY, decided, category)
        g._at(decided)
        opinion_id = self._opinion(row, row["round"], voters, decided, category, reference)
        self._submission_status(row, decided, "in_review", "decided", g.chair)
        row["decided_at"] = as_datetime(decided)
        decision = f"{self.reference} {reference} opinion {opinion_id}"
        if category == "unfavourable":
            if kind == "initial":
                self._protocol_status(decided, "not_approved", decision, g.chair)
            return decided
        if category == "favourable_with_conditions":
            return self._conditions(row, opinion_id, decided, reference)
        if kind == "initial":
            self._protocol_status(decided, "approved", decision, g.chair)
        return decided

    def _declare(self, row: dict[str, Any], submitted: int) -> tuple[set[int], int]:
        """Every member declares (the recused ids and the last declaration's time are
        returned); now and then one expert has a conflict and is recused."""
        rng, g = self.rng, self.g
        experts = [p for p in g.panel[1:] if p.membership == "expert"]
        spare = len(g.panel) - 1 >= g.quorum
        conflicted = rng.choice(experts) if experts and spare and rng.random() < 0.15 else None
        t = g._at(g._office_hours(submitted + rng.randrange(HOUR, 2 * DAY)))
        last = t
        for member in g.panel:
            when = t if member is g.chair else g._office_hours(t + rng.randrange(HOUR, 5 * DAY))
            last = max(last, g._at(when))
            conflict = member is conflicted
            details = "I advised the sponsor on an earlier trial." if conflict else None
            g.rows.add(
                InterestDeclaration,
                {
                    "submission_id": row["id"],
                    "member_id": member.id,
                    "has_conflict": conflict,
                    "details": details,
                    "declared_at": as_datetime(when),
                },
            )
            self._sub_event(
                row,
                when,
                "submission.interests_declared",
                member,
                after={"has_conflict": conflict, "recused": conflict},
            )
        reviewers = [p for p in g.panel[1:] if p is not conflicted]
        for member in rng.sample(reviewers, k=min(2, len(reviewers))):
            when = g._at(t + rng.randrange(MINUTE, HOUR))
            g.rows.add(
                ReviewerAssignment,
                {
                    "submission_id": row["id"],
                    "member_id": member.id,
                    "assigned_by_id": g.chair.id,
                    "assigned_at": as_datetime(when),
                },
            )
            self._sub_event(
                row,
                when,
                "submission.reviewer_assigned",
                g.chair,
                after={"member_id": member.id},
            )
        return ({conflicted.id} if conflicted else set()), last

    def _votes(
        self,
        row: dict[str, Any],
        round_: int,
        voters: list[Person],
        opens: int,
        closes: int,
        category: str,
    ) -> None:
        rng = self.rng
        against = category == "unfavourable"
        choices = []
        for index, _member in enumerate(voters):
            if index < 2:  # at least two firm votes either way keep the majority clear
                choices.append("against" if against else "for")
            else:
                choices.append(
                    rng.choices(
                        ("for", "against", "abstain"), (15, 75, 10) if against else (80, 10, 10)
                    )[0]
                )
        majority, minority = ("against", "for") if against else ("for", "against")
        while choices.count(majority) <= choices.count(minority):
            choices[choices.index(minority)] = majority
        self.votes = dict(zip((v.id for v in voters), choices, strict=True))
        span = max(closes - opens, HOUR)
        for member, choice in zip(voters, choices, strict=True):
            when = self.g._at(opens + rng.randrange(span))
            self.g.rows.add(
                Vote,
                {
                    "submission_id": row["id"],
                    "round": round_,
                    "member_id": member.id,
                    "meeting_id": None,
                    "choice": choice,
                    "cast_at": as_datetime(when),
                },
            )
            self._sub_event(
                row,
                when,
                "submission.vote_cast",
                member,
                after={"round": round_, "choice": choice, "meeting_id": None},
            )

    def _opinion(
        self,
        row: dict[str, Any],
        round_: int,
        voters: list[Person],
        when: int,
        category: str,
        reference: str,
    ) -> int:
        g = self.g
        opinion_id = g.ids.take(Opinion)
        counts = {c: list(self.votes.values()).count(c) for c in ("for", "against", "abstain")}
        conditions = list(OPINION_CONDITIONS) if category == "favourable_with_conditions" else []
        reasons = OPINION_REASONS[category]
        g.rows.add(
            Opinion,
            {
                "id": opinion_id,
                "submission_id": row["id"],
                "round": round_,
                "category": category,
                "reasons": reasons,
                "meeting_id": None,
                "votes_for": counts["for"],
                "votes_against": counts["against"],
                "votes_abstain": counts["abstain"],
                "present": len(voters),
                "recorded_by_id": g.chair.id,
                "recorded_at": as_datetime(when),
            },
        )
        self.conditions = []
        for condition in conditions:
            condition_row = {
                "id": g.ids.take(OpinionCondition),
                "opinion_id": opinion_id,
                "text": condition,
                "met_at": None,
                "met_by_id": None,
                "evidence": None,
            }
            self.conditions.append(condition_row)
            g.rows.add(OpinionCondition, condition_row)
        self._sub_event(
            row,
            when,
            "submission.opinion_recorded",
            g.chair,
            after={
                "opinion_id": opinion_id,
                "round": round_,
                "category": category,
                "votes": counts,
                "present": len(voters),
                "conditions": conditions,
            },
            reason=reasons,
        )
        return opinion_id

    def _submission_status(
        self, row: dict[str, Any], when: int, before: str, target: str, actor: Person
    ) -> None:
        row["status"] = target
        self._sub_event(
            row,
            when,
            "submission.status_changed",
            actor,
            before={"status": before},
            after={"status": target},
        )

    def _conditions(
        self, row: dict[str, Any], opinion_id: int, decided: int, reference: str
    ) -> int:
        """The chair marks each condition met; then the protocol is approved."""
        g = self.g
        t = decided
        for condition in self.conditions:
            t = g._at(g._office_hours(t + g._delay(10 * DAY / US, 0.6)))
            evidence = "The revised document was received and checked."
            condition.update(met_at=as_datetime(t), met_by_id=g.chair.id, evidence=evidence)
            self._sub_event(
                row,
                t,
                "submission.condition_met",
                g.chair,
                after={"condition_id": condition["id"], "evidence": evidence},
            )
        if row["kind"] == "initial":
            self._protocol_status(t, "approved", f"{reference} conditions met", g.chair)
        return t


# --- the command --------------------------------------------------------------------------------


def _seal_some_records(session: Session, count: int) -> int:
    """Render and seal real records for the latest completed synthetic consents."""
    if not count:
        return 0
    from portal.records.services import create_consent_record

    chosen = session.scalars(
        select(Consent)
        .join(User, User.id == Consent.patient_id)
        .where(
            Consent.status == ConsentStatus.COMPLETE.value,
            User.email.like(f"%@{SYNTHETIC_DOMAIN}"),
        )
        .order_by(Consent.completed_at.desc())
        .limit(count)
    ).all()
    for consent in chosen:
        therapist = session.get(User, consent.therapist_id)
        create_consent_record(session, consent, audit.Actor.of(therapist))
    return len(chosen)


@click.command("generate")
@click.option(
    "--patients",
    type=click.IntRange(min=1),
    required=True,
    help="How many synthetic patients to create (each with a consent journey).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="The random seed: the same seed gives the same dataset.",
)
@click.option(
    "--therapists",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="How many synthetic therapists to add to the demo's own.",
)
@click.option(
    "--records",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="How many completed synthetic consents get a real sealed PDF (about 0.3 s each).",
)
@with_appcontext
def generate_command(patients: int, seed: int, therapists: int, records: int) -> None:
    """Fill the database with a synthetic dataset for benchmarks (after flask demo load).

    Patients, their consent journeys over the past 18 months, withdrawals, incidents, ethics
    reviews and a chained audit event for every change. Refused when already generated.
    """
    from flask import current_app

    from portal.accounts.passwords import hash_password
    from portal.extensions import db
    from portal.oversight import tallies

    session = db.session
    started = time.monotonic()
    _refuse_unless_ready(session)
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:  # the random-order indexes (event hashes, links by patient) need the room
        cache = session.execute(text("PRAGMA cache_size")).scalar()
        session.execute(text("PRAGMA cache_size = -1000000"))
    try:
        generator = Generator(
            session,
            seed,
            hash_password(SYNTHETIC_PASSWORD),
            current_app.config["QUORUM_MEMBERS"],
        )
        click.echo(f"Generating {patients:,} patients (seed {seed})...")
        generator.add_therapists(therapists)
        generator.rows.flush()
        plans = generator.plan_patients(patients)
        generator.add_incidents(max(10, min(400, patients // 250)), plans)
        generator.add_reviews(len(PROTOCOL_TITLES))

        def progress(done: int) -> None:
            click.echo(
                f"  {done:,}/{patients:,} patients, {generator.trail.written:,} audit events "
                f"({time.monotonic() - started:.0f} s)"
            )

        generator.add_patients(plans, progress)
        generator.close()
        # The services keep the dashboards' running totals as they write; bulk rows do not.
        tallies.rebuild(session)
        sealed = _seal_some_records(session, records)
        counts = generator.counts
        audit.record(
            session,
            GENERATED_ACTION,
            actor=audit.SYSTEM,
            after={
                "patients": patients,
                "seed": seed,
                "therapists": therapists,
                "events": generator.trail.written,
                "first_seq": generator.trail.first_seq,
                "last_seq": generator.trail.seq,
                "records": sealed,
            },
            reason="synthetic data for benchmarks (docs/synthetic-data.md)",
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        if sqlite:
            session.execute(text(f"PRAGMA cache_size = {int(cache)}"))
    statuses = ", ".join(f"{n:,} {s}" for s, n in sorted(counts.consents.items()))
    click.echo(
        f"Generated {patients:,} patients and {therapists} therapists: consents {statuses}; "
        f"{counts.withdrawals:,} withdrawals, {counts.teach_backs:,} teach-backs, "
        f"{counts.incidents} incidents, {counts.submissions} submissions, {sealed} sealed "
        f"records; {generator.trail.written:,} audit events with "
        f"{generator.trail.links_written:,} links, in {time.monotonic() - started:.0f} s."
    )
