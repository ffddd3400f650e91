"""Answering comprehension questions; teach-back after two wrong answers to one question."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import User
from portal.comprehension.models import ComprehensionAttempt, TeachBack
from portal.consent.journey_models import Consent
from portal.consent.models import ComprehensionQuestion
from portal.core import audit
from portal.core.db import utcnow
from portal.oversight import tallies

WRONG_ANSWERS_BEFORE_TEACH_BACK = 2


class ComprehensionError(Exception):
    """A refused answer or teach-back; the message is safe to show."""


@dataclass(frozen=True)
class QuestionState:
    question: ComprehensionQuestion
    passed: bool
    wrong_since_teach_back: int
    open_teach_back: TeachBack | None
    attempts: int = 0
    teach_backs: int = 0


def question_states(session: Session, consent: Consent) -> list[QuestionState]:
    """Where the patient stands on each question, in the document's order."""
    attempts = session.scalars(
        select(ComprehensionAttempt)
        .where(ComprehensionAttempt.consent_id == consent.id)
        .order_by(ComprehensionAttempt.id)
    ).all()
    teach_backs = session.scalars(
        select(TeachBack).where(TeachBack.consent_id == consent.id).order_by(TeachBack.id)
    ).all()
    states = []
    for question in consent.questions:
        mine = [a for a in attempts if a.question_key == question.key]
        flags = [t for t in teach_backs if t.question_key == question.key]
        last_resolved = max((t.resolved_at for t in flags if t.resolved_at), default=None)
        since = [a for a in mine if last_resolved is None or a.attempted_at > last_resolved]
        states.append(
            QuestionState(
                question=question,
                passed=any(a.correct for a in mine),
                wrong_since_teach_back=sum(1 for a in since if not a.correct),
                open_teach_back=next((t for t in flags if t.is_open), None),
                attempts=len(mine),
                teach_backs=len(flags),
            )
        )
    return states


def next_question(states: list[QuestionState]) -> QuestionState | None:
    """The first question not yet passed and not waiting for the therapist."""
    return next((s for s in states if not s.passed and s.open_teach_back is None), None)


def answer(session: Session, consent: Consent, question_key: str, choice: str) -> bool:
    """Store the attempt; after two wrong answers raise a teach-back flag. Returns correctness."""
    state = next(
        (s for s in question_states(session, consent) if s.question.key == question_key), None
    )
    if state is None:
        raise ComprehensionError(_("That question is not part of this document"))
    if state.passed:
        raise ComprehensionError(_("You have already answered this question correctly"))
    if state.open_teach_back is not None:
        raise ComprehensionError(
            _("Your therapist will talk this question through with you before you answer it again")
        )
    if choice not in {c["id"] for c in state.question.choices}:
        raise ComprehensionError(_("Choose one of the answers"))
    correct = choice == state.question.answer
    attempt = ComprehensionAttempt(
        consent_id=consent.id, question_key=question_key, choice=choice, correct=correct
    )
    session.add(attempt)
    session.flush()
    tallies.count_answer(
        session, consent.version_id, question_key, first=state.attempts == 0, correct=correct
    )
    actor = audit.Actor.of(consent.patient)
    audit.record(
        session,
        "comprehension.answered",
        actor=actor,
        object_type="consent",
        object_id=consent.id,
        after={"question": question_key, "choice": choice, "correct": correct},
    )
    if not correct and state.wrong_since_teach_back + 1 >= WRONG_ANSWERS_BEFORE_TEACH_BACK:
        flag = TeachBack(consent_id=consent.id, question_key=question_key)
        session.add(flag)
        session.flush()
        if state.teach_backs == 0:  # the tally counts patients who needed one
            tallies.count_teach_back(session, consent.version_id, question_key)
        audit.record(
            session,
            "comprehension.teach_back_raised",
            actor=actor,
            object_type="consent",
            object_id=consent.id,
            after={"question": question_key, "teach_back_id": flag.id},
        )
    states = question_states(session, consent)
    if all(s.passed for s in states) and consent.comprehension_completed_at is None:
        consent.comprehension_completed_at = utcnow()
        audit.record(
            session,
            "consent.comprehension_completed",
            actor=actor,
            object_type="consent",
            object_id=consent.id,
        )
    return correct


def resolve_teach_back(session: Session, flag: TeachBack, therapist: User, note: str) -> None:
    """The therapist records that they discussed the question; the patient may answer again."""
    if not flag.is_open:
        raise ComprehensionError(_("This teach-back has already been recorded"))
    if not note.strip():
        raise ComprehensionError(_("Write a short note of what you discussed"))
    flag.resolved_at = utcnow()
    flag.resolved_by_id = therapist.id
    flag.note = note.strip()
    audit.record(
        session,
        "comprehension.teach_back_resolved",
        actor=audit.Actor.of(therapist),
        object_type="consent",
        object_id=flag.consent_id,
        # The note itself is encrypted at rest; the trail keeps its fingerprint, not its words.
        after={
            "question": flag.question_key,
            "teach_back_id": flag.id,
            "note_sha256": hashlib.sha256(flag.note.encode()).hexdigest(),
        },
    )
