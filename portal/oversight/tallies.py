"""Running totals behind the comprehension dashboard, kept as answers and reading times are
written (in the same transaction), and rebuilt from the raw rows when needed.

Item analysis over every attempt is millions of rows at 100,000 patients; the totals are a few
hundred. Each count is an upsert that adds to the row, so concurrent writers on PostgreSQL
serialise on that row only for the moment of their own transaction.
"""

from __future__ import annotations

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.comprehension.models import ComprehensionAttempt, TeachBack
from portal.consent.journey_models import Consent, SectionVisit
from portal.oversight.models import QuestionTally, SectionTally


def _add(session: Session, model, keys: dict, amounts: dict) -> None:
    """INSERT the row with these amounts, or add them to the row that exists."""
    dialect = session.get_bind().dialect.name
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(model)
    statement = statement.values(**keys, **amounts)
    table = model.__table__
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + statement.excluded[name] for name in amounts},
        )
    )


def count_answer(
    session: Session, version_id: int, question_key: str, *, first: bool, correct: bool
) -> None:
    _add(
        session,
        QuestionTally,
        {"version_id": version_id, "question_key": question_key},
        {
            "patients": int(first),
            "first_correct": int(first and correct),
            "attempts": 1,
            "teach_backs": 0,
        },
    )


def count_teach_back(session: Session, version_id: int, question_key: str) -> None:
    _add(
        session,
        QuestionTally,
        {"version_id": version_id, "question_key": question_key},
        {"patients": 0, "first_correct": 0, "attempts": 0, "teach_backs": 1},
    )


def count_reading(session: Session, version_id: int, section_key: str, seconds: int) -> None:
    _add(
        session,
        SectionTally,
        {"version_id": version_id, "section_key": section_key},
        {"visits": 1, "seconds": seconds},
    )


def computed_question_tallies(session: Session):
    """The question totals recomputed from every attempt and teach-back (slow at scale)."""
    per_patient = (
        select(
            Consent.version_id.label("version_id"),
            ComprehensionAttempt.question_key.label("question_key"),
            func.count().label("attempts"),
            func.min(ComprehensionAttempt.id).label("first_id"),
        )
        .join(Consent, Consent.id == ComprehensionAttempt.consent_id)
        .group_by(
            Consent.version_id, ComprehensionAttempt.consent_id, ComprehensionAttempt.question_key
        )
        .subquery()
    )
    first = ComprehensionAttempt.__table__.alias("first_attempt")
    needed = (
        select(
            Consent.version_id.label("version_id"),
            TeachBack.question_key.label("question_key"),
            func.count(func.distinct(TeachBack.consent_id)).label("patients"),
        )
        .join(Consent, Consent.id == TeachBack.consent_id)
        .group_by(Consent.version_id, TeachBack.question_key)
        .subquery()
    )
    totals = (
        select(
            per_patient.c.version_id,
            per_patient.c.question_key,
            func.count().label("patients"),
            func.sum(case((first.c.correct, 1), else_=0)).label("first_correct"),
            func.sum(per_patient.c.attempts).label("attempts"),
        )
        .join(first, first.c.id == per_patient.c.first_id)
        .group_by(per_patient.c.version_id, per_patient.c.question_key)
        .subquery()
    )
    return select(
        totals.c.version_id,
        totals.c.question_key,
        totals.c.patients,
        totals.c.first_correct,
        totals.c.attempts,
        func.coalesce(needed.c.patients, 0).label("teach_backs"),
    ).outerjoin(
        needed,
        (needed.c.version_id == totals.c.version_id)
        & (needed.c.question_key == totals.c.question_key),
    )


def computed_section_tallies(session: Session):
    return (
        select(
            Consent.version_id,
            SectionVisit.section_key,
            func.count(SectionVisit.seconds).label("visits"),
            func.coalesce(func.sum(SectionVisit.seconds), 0).label("seconds"),
        )
        .join(Consent, Consent.id == SectionVisit.consent_id)
        .where(SectionVisit.seconds.is_not(None))
        .group_by(Consent.version_id, SectionVisit.section_key)
    )


def rebuild(session: Session) -> None:
    """Replace the totals with ones recomputed from the raw rows (after a bulk load, or to
    repair them); the caller commits."""
    session.execute(delete(QuestionTally))
    session.execute(delete(SectionTally))
    session.execute(
        insert(QuestionTally).from_select(
            ["version_id", "question_key", "patients", "first_correct", "attempts", "teach_backs"],
            computed_question_tallies(session),
        )
    )
    session.execute(
        insert(SectionTally).from_select(
            ["version_id", "section_key", "visits", "seconds"], computed_section_tallies(session)
        )
    )
