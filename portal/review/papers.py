"""The panel's paper trail: a decision letter for each opinion and minutes for each meeting,
rendered by WeasyPrint, sealed like consent records, stored once and verifiable by anyone."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import User
from portal.core import audit
from portal.core.audit import format_timestamp
from portal.core.db import utcnow
from portal.core.permissions import PANEL_ROLES
from portal.records.render import pdf_source
from portal.records.seal import seal
from portal.review.models import (
    MeetingItem,
    Opinion,
    PanelMeeting,
    PanelPaper,
    PaperKind,
    Submission,
    Vote,
)
from portal.review.services import clock, recusal

PANEL_LOCALE = "en_GB"
PANEL_LANGUAGE = "en-GB"  # the panel works in English; its pages are offered in Welsh too


def create_decision_letter(session: Session, opinion: Opinion, actor: audit.Actor) -> PanelPaper:
    uid, created_at = _new_uid(), utcnow()
    paper = PanelPaper(
        uid=uid, kind=PaperKind.DECISION_LETTER.value, opinion_id=opinion.id, created_at=created_at
    )
    return _seal_and_store(
        session,
        paper,
        letter_data(opinion, uid, created_at),
        actor,
        opinion=opinion,
        submission=opinion.submission,
    )


def letter_data(opinion: Opinion, uid: str, created_at) -> dict[str, Any]:
    """What the decision letter says, as data (also attached to the PDF as JSON)."""
    submission = opinion.submission
    return {
        "paper_id": uid,
        "kind": PaperKind.DECISION_LETTER.value,
        "created_at": format_timestamp(created_at),
        "protocol": _protocol_data(submission),
        "submission": {
            "reference": submission.reference,
            "kind": submission.kind,
            "submitted_at": format_timestamp(submission.submitted_at),
            "round": opinion.round,
            "protocol_file_sha256": submission.file_sha256,
        },
        "opinion": {
            "category": opinion.category,
            "reasons": opinion.reasons,
            "conditions": [c.text for c in opinion.conditions],
            "votes": {
                "for": opinion.votes_for,
                "against": opinion.votes_against,
                "abstain": opinion.votes_abstain,
            },
            "present": opinion.present,
            "meeting_id": opinion.meeting_id,
            "recorded_at": format_timestamp(opinion.recorded_at),
            "recorded_by": opinion.recorded_by.full_name,
        },
        "consent_versions": [
            {
                "document": s.version.document.slug,
                "version": s.version.version,
                "status": s.version.status,
                "material_change": s.version.material_change,
            }
            for s in submission.versions
        ],
        "days_on_clock": clock(submission, opinion.recorded_at).days,
    }


def create_minutes(session: Session, meeting: PanelMeeting, actor: audit.Actor) -> PanelPaper:
    """The whole meeting's minutes for the panel, and an extract of each item for the
    investigator who submitted it (who must not read about other studies)."""
    minutes = _minutes(session, meeting, actor, meeting.items, PaperKind.MINUTES)
    for item in meeting.items:
        _minutes(session, meeting, actor, [item], PaperKind.MINUTES_EXTRACT, item.submission_id)
    return minutes


def _minutes(
    session: Session,
    meeting: PanelMeeting,
    actor: audit.Actor,
    items: list[MeetingItem],
    kind: PaperKind,
    submission_id: int | None = None,
) -> PanelPaper:
    uid, created_at = _new_uid(), utcnow()
    data = {
        "paper_id": uid,
        "kind": kind.value,
        "created_at": format_timestamp(created_at),
        "meeting": {
            "id": meeting.id,
            "title": meeting.title,
            "held_on": meeting.held_on.isoformat(),
            "attendance": [
                {"name": a.member.full_name, "membership": a.member.panel_membership}
                for a in meeting.attendance
            ],
        },
        "items": [_minuted_item(session, meeting, item) for item in items],
    }
    paper = PanelPaper(
        uid=uid,
        kind=kind.value,
        meeting_id=meeting.id,
        submission_id=submission_id,
        created_at=created_at,
    )
    return _seal_and_store(session, paper, data, actor, meeting=meeting)


def _minuted_item(session: Session, meeting: PanelMeeting, item: MeetingItem) -> dict[str, Any]:
    submission = item.submission
    opinions = [o for o in submission.opinions if o.meeting_id == meeting.id]
    cast = session.scalars(
        select(Vote).where(Vote.submission_id == submission.id, Vote.meeting_id == meeting.id)
    ).all()
    recusals = []
    for attendee in meeting.attendance:
        why = recusal(submission, attendee.member)
        if why is not None:
            recusals.append({"name": attendee.member.full_name, "why": why.value})
    return {
        "submission": submission.reference,
        "protocol": _protocol_data(submission),
        "kind": submission.kind,
        "declarations": [
            {
                "name": d.member.full_name,
                "has_conflict": d.has_conflict,
                "details": d.details,
            }
            for d in submission.declarations
        ],
        "recusals": recusals,
        "votes": {c: sum(v.choice == c for v in cast) for c in ("for", "against", "abstain")},
        "opinions": [
            {
                "category": opinion.category,
                "reasons": opinion.reasons,
                "conditions": [c.text for c in opinion.conditions],
            }
            for opinion in opinions
        ],
    }


def _protocol_data(submission: Submission) -> dict[str, Any]:
    protocol = submission.protocol
    return {
        "reference": protocol.reference,
        "title": protocol.title,
        "chief_investigator": protocol.chief_investigator,
        "sites": protocol.site_list,
    }


def _new_uid() -> str:
    return "P" + secrets.token_hex(8).upper()


# What each kind of paper is rendered from and called.
_LAYOUT = {
    PaperKind.DECISION_LETTER: (
        "pdf/decision_letter.html",
        "decision-letter.json",
        "The decision letter's data (JSON)",
        "Decision letter sealed by the Consent & Ethics Portal",
    ),
    PaperKind.MINUTES: (
        "pdf/minutes.html",
        "minutes.json",
        "The minutes' data (JSON)",
        "Minutes sealed by the Consent & Ethics Portal",
    ),
    PaperKind.MINUTES_EXTRACT: (
        "pdf/minutes.html",
        "minutes.json",
        "The minutes extract's data (JSON)",
        "Minutes extract sealed by the Consent & Ethics Portal",
    ),
}


def _seal_and_store(
    session: Session, paper: PanelPaper, data: dict[str, Any], actor: audit.Actor, **context
) -> PanelPaper:
    """Render the paper (PDF/A-3b, its data attached), seal it, store it once, audit it."""
    template, attachment, description, reason = _LAYOUT[PaperKind(paper.kind)]
    pdf = pdf_source(
        template,
        PANEL_LOCALE,
        data,
        description,
        attachment_name=attachment,
        paper_language=PANEL_LANGUAGE,
        **context,
    ).render()
    paper.pdf = seal(pdf, reason=reason)
    paper.sha256 = hashlib.sha256(paper.pdf).hexdigest()
    session.add(paper)
    session.flush()
    audit.record(
        session,
        "panel_paper.created",
        actor=actor,
        object_type="panel_paper",
        object_id=paper.uid,
        after={
            "kind": paper.kind,
            "opinion_id": paper.opinion_id,
            "meeting_id": paper.meeting_id,
            "sha256": paper.sha256,
        },
    )
    return paper


# --- who may download ---------------------------------------------------------------------------


def can_download(session: Session, user: User, paper: PanelPaper) -> bool:
    """The panel: every paper. An investigator: the letters and minutes extracts about their
    own submissions, never the whole meeting's minutes."""
    if user.role in PANEL_ROLES:
        return True
    if paper.kind == PaperKind.DECISION_LETTER:
        opinion = session.get(Opinion, paper.opinion_id)
        return opinion is not None and opinion.submission.submitted_by_id == user.id
    if paper.kind == PaperKind.MINUTES_EXTRACT:
        submission = session.get(Submission, paper.submission_id)
        return submission is not None and submission.submitted_by_id == user.id
    return False


def paper_for_opinion(session: Session, opinion: Opinion) -> PanelPaper | None:
    return session.scalar(select(PanelPaper).where(PanelPaper.opinion_id == opinion.id))


def paper_for_meeting(session: Session, meeting: PanelMeeting) -> PanelPaper | None:
    return session.scalar(
        select(PanelPaper).where(
            PanelPaper.meeting_id == meeting.id, PanelPaper.kind == PaperKind.MINUTES
        )
    )


def minutes_extracts(session: Session, submission: Submission) -> list[PanelPaper]:
    return list(
        session.scalars(
            select(PanelPaper)
            .where(PanelPaper.submission_id == submission.id)
            .order_by(PanelPaper.id)
        )
    )


def record_download(session: Session, user: User, paper: PanelPaper) -> None:
    audit.record(
        session,
        "panel_paper.downloaded",
        actor=audit.Actor.of(user),
        object_type="panel_paper",
        object_id=paper.uid,
        after={"sha256": paper.sha256},
    )
