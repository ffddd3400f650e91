"""Ethics review: investigators submit; the chair assigns; members declare, comment and vote;
the chair records an opinion once quorum is met; the opinion decides what patients are offered.

A member with a declared conflict, a member named on the protocol and the submitter are
recused: they never see the confidential discussion or votes, and cannot comment or vote.
Every refused attempt is audited, as is every step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import User
from portal.consent import documents
from portal.consent.models import DocumentError, DocumentVersion, VersionStatus
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import PANEL_ROLES, Role
from portal.review.models import (
    ClockStop,
    InformationResponse,
    InterestDeclaration,
    MeetingAttendance,
    MeetingItem,
    MembershipType,
    Opinion,
    OpinionCategory,
    OpinionCondition,
    PanelMeeting,
    Protocol,
    ProtocolStatus,
    ReviewComment,
    ReviewerAssignment,
    Submission,
    SubmissionKind,
    SubmissionStatus,
    SubmittedVersion,
    Vote,
    VoteChoice,
)

MAX_TEXT = 10_000
FAVOURABLE = (OpinionCategory.FAVOURABLE, OpinionCategory.FAVOURABLE_WITH_CONDITIONS)


class ReviewError(Exception):
    """A refused step; the message is safe to show, `field` names the form field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ReviewRefused(ReviewError):
    """A step refused to this person (recused, or no quorum). The refusal itself is audited,
    so the caller commits before showing the message."""

    def __init__(self, message: str, field: str | None = None, status: int = 403) -> None:
        super().__init__(message, field)
        self.status = status


class Recusal(StrEnum):
    SUBMITTER = "submitter"
    NAMED_ON_PROTOCOL = "named_on_protocol"
    DECLARED_CONFLICT = "declared_conflict"


@dataclass(frozen=True)
class Upload:
    name: str
    content: bytes


@dataclass(frozen=True)
class Application:
    """What an investigator sends: a new protocol, or (protocol given) a modification."""

    kind: str
    summary: str
    upload: Upload | None
    version_ids: list[int]
    reference: str = ""
    title: str = ""
    sites: str = ""
    chief_investigator: str = ""
    team_emails: str = ""


# --- submitting ---------------------------------------------------------------------------------


def versions_to_submit(session: Session, protocol: Protocol | None = None) -> list[DocumentVersion]:
    """Draft or submitted consent versions not already part of an open submission, of
    documents that belong to no protocol yet or (for a modification) to this one: a
    document belongs to the protocol that first submitted one of its versions."""
    in_open = (
        select(SubmittedVersion.version_id)
        .join(Submission)
        .where(Submission.status != SubmissionStatus.DECIDED)
    )
    owned = (
        select(DocumentVersion.document_id)
        .join(SubmittedVersion, SubmittedVersion.version_id == DocumentVersion.id)
        .join(Submission)
    )
    if protocol is not None:
        owned = owned.where(Submission.protocol_id != protocol.id)
    return list(
        session.scalars(
            select(DocumentVersion)
            .where(
                DocumentVersion.status.in_([VersionStatus.DRAFT, VersionStatus.SUBMITTED]),
                DocumentVersion.id.not_in(in_open),
                DocumentVersion.document_id.not_in(owned),
            )
            .order_by(DocumentVersion.id)
        )
    )


def protocol_of_document(session: Session, document_id: int) -> Protocol | None:
    """The protocol a consent document belongs to (the first to submit one of its versions)."""
    return session.scalar(
        select(Protocol)
        .join(Submission)
        .join(SubmittedVersion)
        .join(DocumentVersion, DocumentVersion.id == SubmittedVersion.version_id)
        .where(DocumentVersion.document_id == document_id)
        .order_by(Submission.id)
        .limit(1)
    )


def submit_protocol(session: Session, investigator: User, wanted: Application) -> Submission:
    """A new protocol and its initial submission, with the consent versions it uses."""
    reference = _text(wanted.reference, _("Enter the protocol's reference"), "reference", 40)
    if session.scalar(select(Protocol.id).where(Protocol.reference == reference)) is not None:
        raise ReviewError(_("A protocol with this reference already exists"), "reference")
    if wanted.upload is None:
        raise ReviewError(_("Attach the protocol document"), "protocol_file")
    protocol = Protocol(
        reference=reference,
        title=_text(wanted.title, _("Enter the protocol's title"), "title", 300),
        sites=_text(wanted.sites, _("List at least one trial location"), "sites"),
        chief_investigator=_text(
            wanted.chief_investigator,
            _("Enter the chief investigator's name"),
            "chief_investigator",
            200,
        ),
        team_emails=_emails(wanted.team_emails),
        submitted_by_id=investigator.id,
    )
    _insert_once(session, protocol, _("A protocol with this reference already exists"), "reference")
    audit.record(
        session,
        "protocol.created",
        actor=audit.Actor.of(investigator),
        object_type="protocol",
        object_id=protocol.id,
        after={"reference": protocol.reference, "title": protocol.title},
    )
    return _submit(
        session, investigator, protocol, replace(wanted, kind=SubmissionKind.INITIAL.value)
    )


def submit_modification(
    session: Session, investigator: User, protocol: Protocol, wanted: Application
) -> Submission:
    """A substantial modification, a modification of an important detail, or a minor one."""
    if protocol.submitted_by_id != investigator.id:
        raise ReviewError(_("Only the investigator who submitted the protocol can modify it"))
    if protocol.status not in (ProtocolStatus.APPROVED, ProtocolStatus.SUSPENDED):
        raise ReviewError(_("Only an approved protocol can be modified"))
    if wanted.kind not in (k.value for k in SubmissionKind if k != SubmissionKind.INITIAL):
        raise ReviewError(_("Choose the kind of modification"), "kind")
    return _submit(session, investigator, protocol, wanted)


def _submit(
    session: Session, investigator: User, protocol: Protocol, wanted: Application
) -> Submission:
    summary_missing = (
        _("Summarise the study")
        if wanted.kind == SubmissionKind.INITIAL
        else _("Summarise the changes")
    )
    submission = Submission(
        protocol_id=protocol.id,
        kind=wanted.kind,
        summary=_text(wanted.summary, summary_missing, "summary"),
        submitted_by_id=investigator.id,
        submitted_at=utcnow(),
    )
    if wanted.upload is not None:
        submission.file_name = wanted.upload.name[:200] or "protocol.pdf"
        submission.file_content = _protocol_pdf(wanted.upload.content)
        submission.file_size = len(wanted.upload.content)
        submission.file_sha256 = hashlib.sha256(wanted.upload.content).hexdigest()
    session.add(submission)
    session.flush()
    labels = _attach_versions(session, submission, wanted.version_ids, investigator)
    audit.record(
        session,
        "submission.submitted",
        actor=audit.Actor.of(investigator),
        object_type="submission",
        object_id=submission.id,
        after={
            "protocol": protocol.reference,
            "kind": submission.kind,
            "file_sha256": submission.file_sha256,
            "consent_versions": labels,
        },
    )
    _notify(session, _chairs(session), "review_submitted", submission)
    return submission


def _attach_versions(
    session: Session, submission: Submission, version_ids: list[int], actor: User
) -> list[str]:
    # Checked before this submission's own rows exist, so its protocol owns nothing new yet.
    allowed = {v.id: v for v in versions_to_submit(session, submission.protocol)}
    labels = []
    for version_id in dict.fromkeys(version_ids):
        version = allowed.get(version_id)
        if version is None:
            raise ReviewError(_("That consent document version cannot be submitted"), "version_ids")
        if version.status == VersionStatus.DRAFT:
            try:
                documents.submit_version(session, version, actor)
            except DocumentError as exc:
                raise ReviewError(str(exc), "version_ids") from exc
        session.add(SubmittedVersion(submission_id=submission.id, version_id=version.id))
        labels.append(version.label)
    session.flush()
    return labels


def _protocol_pdf(content: bytes) -> bytes:
    limit = current_app.config["PROTOCOL_MAX_BYTES"]
    if not content:
        raise ReviewError(_("The file is empty"), "protocol_file")
    if len(content) > limit:
        raise ReviewError(
            _("The file must be %(mb)d MB or smaller", mb=limit // (1024 * 1024)), "protocol_file"
        )
    if not content.startswith(b"%PDF-"):
        raise ReviewError(_("The protocol document must be a PDF"), "protocol_file")
    return content


def _text(value: str, missing: str, field_name: str, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip()
    if not value:
        raise ReviewError(missing, field_name)
    if len(value) > limit:
        raise ReviewError(_("This must be %(limit)d characters or fewer", limit=limit), field_name)
    return value


def _emails(value: str) -> str:
    emails = [line.strip().lower() for line in (value or "").splitlines() if line.strip()]
    for email in emails:
        if "@" not in email or len(email) > 254 or " " in email:
            raise ReviewError(
                _(
                    "“%(email)s” is not an email address; put one address on each line",
                    email=email[:60],
                ),
                "team_emails",
            )
    return "\n".join(dict.fromkeys(emails))


# --- who may take part --------------------------------------------------------------------------


def declaration_of(submission: Submission, member: User) -> InterestDeclaration | None:
    return next((d for d in submission.declarations if d.member_id == member.id), None)


def recusal(submission: Submission, user: User) -> Recusal | None:
    """Why this user must stay out of the confidential review, if they must."""
    protocol = submission.protocol
    if user.id in (submission.submitted_by_id, protocol.submitted_by_id):
        return Recusal.SUBMITTER
    named = user.email.lower() in protocol.team_email_list or (
        user.full_name.strip().casefold() == protocol.chief_investigator.strip().casefold()
    )
    if named:
        return Recusal.NAMED_ON_PROTOCOL
    declared = declaration_of(submission, user)
    if declared is not None and declared.has_conflict:
        return Recusal.DECLARED_CONFLICT
    return None


def may_review(submission: Submission, user: User) -> bool:
    """An active panel member who has declared no conflict and is not otherwise recused."""
    declared = declaration_of(submission, user)
    return (
        user.role in PANEL_ROLES
        and user.active
        and recusal(submission, user) is None
        and declared is not None
    )


def open_confidential(session: Session, user: User, submission: Submission) -> bool:
    """Whether the user may read the discussion and votes; every attempt is audited."""
    allowed = may_review(submission, user)
    audit.record(
        session,
        "submission.discussion_viewed" if allowed else "submission.access_refused",
        actor=audit.Actor.of(user),
        object_type="submission",
        object_id=submission.id,
        after=None if allowed else {"why": _refusal_reason(submission, user)},
    )
    return allowed


def _refusal_reason(submission: Submission, user: User) -> str:
    why = recusal(submission, user)
    if why is not None:
        return why.value
    if user.role not in PANEL_ROLES:
        return "not_panel"
    return "no_declaration"


def _refuse(session: Session, user: User, submission: Submission, action: str) -> None:
    """Audit a refused step by someone who may not take part, then refuse it."""
    reason = _refusal_reason(submission, user)
    audit.record(
        session,
        "submission.action_refused",
        actor=audit.Actor.of(user),
        object_type="submission",
        object_id=submission.id,
        after={"action": action, "why": reason},
    )
    if reason == "no_declaration":
        raise ReviewRefused(_("Declare your interests in this submission first"))
    raise ReviewRefused(_("You are recused from this submission, so you cannot take part in it"))


def _insert_once(session: Session, row: object, message: str, field: str | None = None) -> None:
    """Add a row that a unique constraint allows once. Two tabs or a double click at the same
    moment: the constraint decides, and the second is told clearly (never a 500)."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise ReviewError(message, field) from exc


def _require_chair(user: User) -> None:
    if user.role != Role.PANEL_CHAIR or not user.active:
        raise ReviewError(_("Only the panel chair can do this"))


def _require_acting_chair(
    session: Session, chair: User, submission: Submission, action: str
) -> None:
    """The chair, declared and not recused: a conflicted chair does not run the review."""
    _require_chair(chair)
    if recusal(submission, chair) is not None or declaration_of(submission, chair) is None:
        _refuse(session, chair, submission, action)


# --- declarations, reviewers and comments -------------------------------------------------------


def declare_interests(
    session: Session,
    member: User,
    submission: Submission,
    has_conflict: bool | None,
    details: str,
) -> InterestDeclaration:
    if member.role not in PANEL_ROLES:
        raise ReviewError(_("Only panel members declare interests"))
    if recusal(submission, member) in (Recusal.SUBMITTER, Recusal.NAMED_ON_PROTOCOL):
        _refuse(session, member, submission, "declare")
    if declaration_of(submission, member) is not None:
        raise ReviewError(_("You have already declared your interests in this submission"))
    if has_conflict is None:
        raise ReviewError(_("Say whether you have a conflict of interest"), "conflict")
    details = (details or "").strip()
    if has_conflict and not details:
        raise ReviewError(_("Describe the conflict of interest"), "details")
    if len(details) > MAX_TEXT:
        raise ReviewError(
            _("This must be %(limit)d characters or fewer", limit=MAX_TEXT), "details"
        )
    declaration = InterestDeclaration(
        submission_id=submission.id,
        member_id=member.id,
        has_conflict=has_conflict,
        details=details or None,
    )
    _insert_once(
        session, declaration, _("You have already declared your interests in this submission")
    )
    session.refresh(submission, ["declarations"])
    audit.record(
        session,
        "submission.interests_declared",
        actor=audit.Actor.of(member),
        object_type="submission",
        object_id=submission.id,
        after={"has_conflict": has_conflict, "recused": has_conflict},
    )
    return declaration


def assign_reviewer(
    session: Session, chair: User, submission: Submission, member: User | None
) -> None:
    _require_acting_chair(session, chair, submission, "assign")
    if member is None or member.role not in PANEL_ROLES or not member.active:
        raise ReviewError(_("Choose a panel member"), "member_id")
    if recusal(submission, member) is not None:
        raise ReviewError(_("That member is recused from this submission"), "member_id")
    if any(a.member_id == member.id for a in submission.assignments):
        raise ReviewError(_("That member is already a reviewer"), "member_id")
    _insert_once(
        session,
        ReviewerAssignment(
            submission_id=submission.id, member_id=member.id, assigned_by_id=chair.id
        ),
        _("That member is already a reviewer"),
        "member_id",
    )
    session.refresh(submission, ["assignments"])
    audit.record(
        session,
        "submission.reviewer_assigned",
        actor=audit.Actor.of(chair),
        object_type="submission",
        object_id=submission.id,
        after={"member_id": member.id},
    )
    _notify(session, [member], "review_assigned", submission)


def assignable_members(session: Session, submission: Submission) -> list[User]:
    assigned = {a.member_id for a in submission.assignments}
    return [
        m for m in panel_members(session) if m.id not in assigned and recusal(submission, m) is None
    ]


def panel_members(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(User.role.in_(list(PANEL_ROLES)), User.active.is_(True))
            .order_by(User.full_name)
        )
    )


def add_comment(
    session: Session,
    member: User,
    submission: Submission,
    body: str,
    version_id: int | None = None,
    section_key: str | None = None,
    on_protocol_document: bool = False,
) -> ReviewComment:
    if not may_review(submission, member):
        _refuse(session, member, submission, "comment")
    if not submission.is_open:
        raise ReviewError(_("The panel has given its opinion; the discussion is closed"))
    target = "submission"
    if version_id is not None or section_key is not None:
        version = next((s.version for s in submission.versions if s.version_id == version_id), None)
        known = version is not None and any(
            section.key == section_key for text in version.texts for section in text.sections
        )
        if not known:
            raise ReviewError(_("That section is not part of this submission"), "body")
        target = "section"
    elif on_protocol_document:
        target = "protocol_document"
    comment = ReviewComment(
        submission_id=submission.id,
        author_id=member.id,
        version_id=version_id if target == "section" else None,
        section_key=section_key if target == "section" else None,
        target=target,
        body=_text(body, _("Write your comment"), "body"),
    )
    session.add(comment)
    session.flush()
    audit.record(
        session,
        "submission.commented",
        actor=audit.Actor.of(member),
        object_type="submission",
        object_id=submission.id,
        after={"comment_id": comment.id, "target": target, "section": section_key},
    )
    return comment


def comments(session: Session, submission: Submission) -> list[ReviewComment]:
    return list(
        session.scalars(
            select(ReviewComment)
            .where(ReviewComment.submission_id == submission.id)
            .order_by(ReviewComment.id)
        )
    )


# --- meetings -----------------------------------------------------------------------------------


def create_meeting(
    session: Session, chair: User, title: str, held_on: dt.date | None
) -> PanelMeeting:
    _require_chair(chair)
    if held_on is None:
        raise ReviewError(_("Enter the meeting date as day, month and year"), "day")
    meeting = PanelMeeting(
        title=_text(title, _("Enter a title for the meeting"), "title", 200),
        held_on=held_on,
        created_by_id=chair.id,
    )
    session.add(meeting)
    session.flush()
    audit.record(
        session,
        "meeting.created",
        actor=audit.Actor.of(chair),
        object_type="meeting",
        object_id=meeting.id,
        after={"title": meeting.title, "held_on": held_on.isoformat()},
    )
    return meeting


def add_to_agenda(
    session: Session, chair: User, meeting: PanelMeeting, submission: Submission
) -> None:
    _require_acting_chair(session, chair, submission, "agenda")
    _require_open_meeting(meeting)
    if not submission.is_open:
        raise ReviewError(_("That submission already has a final opinion"), "submission_id")
    if any(item.submission_id == submission.id for item in meeting.items):
        raise ReviewError(_("That submission is already on the agenda"), "submission_id")
    if open_meeting_for(session, submission) is not None:
        raise ReviewError(_("That submission is on another open meeting's agenda"), "submission_id")
    _insert_once(
        session,
        MeetingItem(meeting_id=meeting.id, submission_id=submission.id),
        _("That submission is already on the agenda"),
        "submission_id",
    )
    session.refresh(meeting, ["items"])
    audit.record(
        session,
        "meeting.agenda_item_added",
        actor=audit.Actor.of(chair),
        object_type="meeting",
        object_id=meeting.id,
        after={"submission_id": submission.id},
    )


def record_attendance(session: Session, chair: User, meeting: PanelMeeting, member: User) -> None:
    _require_chair(chair)
    _require_open_meeting(meeting)
    if member.role not in PANEL_ROLES or not member.active:
        raise ReviewError(_("Choose a panel member"), "member_id")
    if member.id in meeting.attendee_ids:
        raise ReviewError(_("That member is already recorded as present"), "member_id")
    _insert_once(
        session,
        MeetingAttendance(meeting_id=meeting.id, member_id=member.id),
        _("That member is already recorded as present"),
        "member_id",
    )
    session.refresh(meeting, ["attendance"])
    audit.record(
        session,
        "meeting.attendance_recorded",
        actor=audit.Actor.of(chair),
        object_type="meeting",
        object_id=meeting.id,
        after={"member_id": member.id},
    )


def _require_open_meeting(meeting: PanelMeeting) -> None:
    if not meeting.is_open:
        raise ReviewError(_("The meeting is closed and its minutes are sealed"))


def open_meeting_for(session: Session, submission: Submission) -> PanelMeeting | None:
    """The open meeting with this submission on its agenda: its votes are taken there."""
    return session.scalar(
        select(PanelMeeting)
        .join(MeetingItem)
        .where(MeetingItem.submission_id == submission.id, PanelMeeting.closed_at.is_(None))
    )


def close_meeting(session: Session, chair: User, meeting: PanelMeeting):
    """Close the meeting and seal its minutes; nothing about it can change afterwards."""
    from portal.review.papers import create_minutes

    _require_chair(chair)
    _require_open_meeting(meeting)
    meeting.closed_at = utcnow()
    deferred = _defer_undecided(session, chair, meeting)
    audit.record(
        session,
        "meeting.closed",
        actor=audit.Actor.of(chair),
        object_type="meeting",
        object_id=meeting.id,
        after={"attendance": sorted(meeting.attendee_ids), "deferred": deferred},
    )
    return create_minutes(session, meeting, audit.Actor.of(chair))


def _defer_undecided(session: Session, chair: User, meeting: PanelMeeting) -> list[int]:
    """An item still waiting for an opinion when the meeting closes is deferred: a new round
    begins, so the votes cast at the meeting are minuted but do not count later."""
    deferred = []
    for item in meeting.items:
        submission = item.submission
        if submission.status != SubmissionStatus.IN_REVIEW:
            continue
        if any(
            o.meeting_id == meeting.id and o.round == submission.round for o in submission.opinions
        ):
            continue
        submission.round += 1
        deferred.append(submission.id)
        audit.record(
            session,
            "submission.deferred",
            actor=audit.Actor.of(chair),
            object_type="submission",
            object_id=submission.id,
            after={"meeting_id": meeting.id, "round": submission.round},
        )
    session.flush()
    return deferred


# --- votes, quorum and opinions -----------------------------------------------------------------


def cast_vote(session: Session, member: User, submission: Submission, choice: str) -> Vote:
    if not may_review(submission, member):
        _refuse(session, member, submission, "vote")
    if submission.status != SubmissionStatus.IN_REVIEW:
        raise ReviewError(_("There is no vote open on this submission"))
    if choice not in (c.value for c in VoteChoice):
        raise ReviewError(_("Choose for, against or abstain"), "choice")
    meeting = open_meeting_for(session, submission)
    if meeting is not None and member.id not in meeting.attendee_ids:
        raise ReviewError(
            _("This submission is decided at a meeting; only members recorded as present vote")
        )
    existing = _vote_of(session, submission, member)
    if existing is not None:
        raise ReviewError(_("You have already voted in this round"))
    vote = Vote(
        submission_id=submission.id,
        round=submission.round,
        member_id=member.id,
        meeting_id=meeting.id if meeting else None,
        choice=choice,
    )
    _insert_once(session, vote, _("You have already voted in this round"))
    audit.record(
        session,
        "submission.vote_cast",
        actor=audit.Actor.of(member),
        object_type="submission",
        object_id=submission.id,
        after={"round": submission.round, "choice": choice, "meeting_id": vote.meeting_id},
    )
    return vote


def _vote_of(session: Session, submission: Submission, member: User) -> Vote | None:
    return session.scalar(
        select(Vote).where(
            Vote.submission_id == submission.id,
            Vote.round == submission.round,
            Vote.member_id == member.id,
        )
    )


def votes(session: Session, submission: Submission, round_: int | None = None) -> list[Vote]:
    return list(
        session.scalars(
            select(Vote)
            .where(Vote.submission_id == submission.id, Vote.round == (round_ or submission.round))
            .order_by(Vote.id)
        )
    )


def counted_votes(
    session: Session, submission: Submission, meeting: PanelMeeting | None = None
) -> list[Vote]:
    """This round's votes that count: at a meeting, those cast there by members present;
    otherwise those cast virtually. Never a recused member's."""
    meeting_id = meeting.id if meeting is not None else None
    present = meeting.attendee_ids if meeting is not None else None
    return [
        v
        for v in votes(session, submission)
        if v.meeting_id == meeting_id
        and (present is None or v.member_id in present)
        and recusal(submission, v.member) is None
    ]


@dataclass
class Quorum:
    """Who counts towards quorum for this round, and what is missing."""

    present: list[User]
    lay: int
    expert: int
    needed: int
    needed_lay: int
    needed_expert: int
    meeting: PanelMeeting | None
    problems: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return not self.problems


def quorum(session: Session, submission: Submission) -> Quorum:
    """At a meeting: the members present who declared no conflict; in a virtual vote: those
    who voted. A member who has not declared is not counted: nobody knows they are free."""
    config = current_app.config
    meeting = open_meeting_for(session, submission)
    if meeting is not None:
        people = [a.member for a in meeting.attendance]
    else:
        people = [v.member for v in counted_votes(session, submission)]
    present = [p for p in people if may_review(submission, p)]
    lay = sum(p.panel_membership == MembershipType.LAY for p in present)
    expert = sum(p.panel_membership == MembershipType.EXPERT for p in present)
    check = Quorum(
        present,
        lay,
        expert,
        config["QUORUM_MEMBERS"],
        config["QUORUM_LAY"],
        config["QUORUM_EXPERT"],
        meeting,
    )
    if len(present) < check.needed:
        check.problems.append(
            _(
                "%(present)d non-conflicted members are present; at least %(needed)d are needed",
                present=len(present),
                needed=check.needed,
            )
        )
    if lay < check.needed_lay:
        check.problems.append(_("At least %(n)d lay member(s) must be present", n=check.needed_lay))
    if expert < check.needed_expert:
        check.problems.append(
            _("At least %(n)d expert member(s) must be present", n=check.needed_expert)
        )
    return check


@dataclass(frozen=True)
class OpinionDecision:
    category: str
    reasons: str
    conditions: list[str]
    # For each submitted version replacing an approved one: does it need re-consent?
    material: dict[int, bool | None]


def record_opinion(
    session: Session, chair: User, submission: Submission, decision: OpinionDecision
) -> Opinion:
    """Record the panel's opinion for this round, seal the decision letter, and apply it."""
    from portal.review.papers import create_decision_letter

    _require_acting_chair(session, chair, submission, "opinion")
    if submission.status != SubmissionStatus.IN_REVIEW:
        raise ReviewError(_("This submission is not waiting for an opinion"))
    if decision.category not in (c.value for c in OpinionCategory):
        raise ReviewError(_("Choose the opinion"), "category")
    reasons = _text(decision.reasons, _("Give the reasons for the opinion"), "reasons")
    conditions = [c.strip() for c in decision.conditions if c.strip()]
    if any(len(c) > MAX_TEXT for c in conditions):
        raise ReviewError(
            _("This must be %(limit)d characters or fewer", limit=MAX_TEXT), "conditions"
        )
    if decision.category == OpinionCategory.FAVOURABLE_WITH_CONDITIONS and not conditions:
        raise ReviewError(_("List the additional conditions, one on each line"), "conditions")
    if decision.category != OpinionCategory.FAVOURABLE_WITH_CONDITIONS and conditions:
        raise ReviewError(
            _("Conditions belong only to a favourable opinion with conditions"), "conditions"
        )
    check = quorum(session, submission)
    if not check.met:
        audit.record(
            session,
            "submission.opinion_refused",
            actor=audit.Actor.of(chair),
            object_type="submission",
            object_id=submission.id,
            after={"why": "no_quorum", "present": len(check.present)},
        )
        raise ReviewRefused(
            _("There is no quorum: %(why)s", why="; ".join(check.problems)), status=409
        )
    cast = counted_votes(session, submission, check.meeting)
    counts = {c: sum(v.choice == c for v in cast) for c in VoteChoice}
    if decision.category in FAVOURABLE and counts[VoteChoice.FOR] <= counts[VoteChoice.AGAINST]:
        raise ReviewError(_("A favourable opinion needs more votes for than against"), "category")
    if (
        decision.category == OpinionCategory.UNFAVOURABLE
        and counts[VoteChoice.AGAINST] <= counts[VoteChoice.FOR]
    ):
        raise ReviewError(
            _("An unfavourable opinion needs more votes against than for"), "category"
        )
    material = _material_flags(submission, decision) if decision.category in FAVOURABLE else {}
    opinion = Opinion(
        submission_id=submission.id,
        round=submission.round,
        category=decision.category,
        reasons=reasons,
        meeting_id=check.meeting.id if check.meeting else None,
        votes_for=counts[VoteChoice.FOR],
        votes_against=counts[VoteChoice.AGAINST],
        votes_abstain=counts[VoteChoice.ABSTAIN],
        present=len(check.present),
        recorded_by_id=chair.id,
        recorded_at=utcnow(),
    )
    _insert_once(session, opinion, _("The panel's opinion for this round is already recorded"))
    for text in conditions:
        session.add(OpinionCondition(opinion_id=opinion.id, text=text))
    session.flush()
    session.refresh(opinion, ["conditions"])
    audit.record(
        session,
        "submission.opinion_recorded",
        actor=audit.Actor.of(chair),
        object_type="submission",
        object_id=submission.id,
        after={
            "opinion_id": opinion.id,
            "round": opinion.round,
            "category": opinion.category,
            "votes": {
                "for": opinion.votes_for,
                "against": opinion.votes_against,
                "abstain": opinion.votes_abstain,
            },
            "present": opinion.present,
            "conditions": conditions,
        },
        reason=reasons,
    )
    _apply(session, chair, submission, opinion, material)
    session.refresh(submission, ["opinions"])
    create_decision_letter(session, opinion, audit.Actor.of(chair))
    _notify(session, [submission.submitted_by], "review_opinion", submission)
    return opinion


def _material_flags(submission: Submission, decision: OpinionDecision) -> dict[int, bool]:
    flags = {}
    for submitted in submission.versions:
        version = submitted.version
        if documents.previous_approved_version(version) is None:
            flags[version.id] = False
            continue
        flag = decision.material.get(version.id)
        if flag is None:
            raise ReviewError(
                _(
                    "Say whether %(version)s is a material change (patients must consent again)",
                    version=version.label,
                ),
                "material",
            )
        flags[version.id] = flag
    return flags


def _apply(
    session: Session, chair: User, submission: Submission, opinion: Opinion, material: dict
) -> None:
    """What the opinion changes: the clock, the protocol, and the consent versions."""
    now = utcnow()
    protocol = submission.protocol
    if opinion.category == OpinionCategory.PROVISIONAL:
        _set_submission_status(session, chair, submission, SubmissionStatus.INFORMATION_REQUESTED)
        session.add(ClockStop(submission_id=submission.id, stopped_at=now))
        session.flush()
        return
    _set_submission_status(session, chair, submission, SubmissionStatus.DECIDED)
    submission.decided_at = now
    reference = f"{protocol.reference} {submission.reference} opinion {opinion.id}"
    try:
        if opinion.category in FAVOURABLE:
            _apply_favourable(session, chair, submission, opinion, material, reference)
        else:
            if submission.kind == SubmissionKind.INITIAL:
                _set_protocol_status(
                    session, chair, protocol, ProtocolStatus.NOT_APPROVED, reference
                )
            for submitted in submission.versions:
                if submitted.version.status == VersionStatus.SUBMITTED:
                    documents.withdraw_version(
                        session, submitted.version, chair, f"unfavourable opinion: {reference}"
                    )
    except DocumentError as exc:  # e.g. a newer version of the document is already in use
        raise ReviewError(str(exc), "category") from exc


def _apply_favourable(
    session: Session,
    chair: User,
    submission: Submission,
    opinion: Opinion,
    material: dict,
    reference: str,
) -> None:
    """Approve the versions; with no conditions, approve the protocol and put them in use.
    With conditions, both wait until the chair has marked every condition met."""
    for submitted in submission.versions:
        version = submitted.version
        if version.status == VersionStatus.SUBMITTED:
            documents.approve_version(
                session, version, chair, material_change=material[version.id], reference=reference
            )
    if opinion.category == OpinionCategory.FAVOURABLE:
        _put_in_force(session, chair, submission, reference)


def _put_in_force(session: Session, chair: User, submission: Submission, reference: str) -> None:
    """An initial application's protocol is approved; the approved versions are offered to
    patients (superseding the ones in use)."""
    if submission.kind == SubmissionKind.INITIAL:
        _set_protocol_status(
            session, chair, submission.protocol, ProtocolStatus.APPROVED, reference
        )
    for submitted in submission.versions:
        if submitted.version.status == VersionStatus.APPROVED:
            documents.activate_version(session, submitted.version, chair)


def mark_condition_met(
    session: Session, chair: User, condition: OpinionCondition, evidence: str
) -> None:
    opinion = session.get(Opinion, condition.opinion_id)
    _require_acting_chair(session, chair, opinion.submission, "condition_met")
    if condition.met_at is not None:
        raise ReviewError(_("This condition is already marked as met"))
    condition.evidence = _text(
        evidence, _("Describe the evidence that the condition is met"), "evidence"
    )
    condition.met_at = utcnow()
    condition.met_by_id = chair.id
    session.flush()
    audit.record(
        session,
        "submission.condition_met",
        actor=audit.Actor.of(chair),
        object_type="submission",
        object_id=opinion.submission_id,
        after={"condition_id": condition.id, "evidence": condition.evidence},
    )
    session.refresh(opinion, ["conditions"])
    if opinion.conditions_met:
        submission = opinion.submission
        try:
            _put_in_force(session, chair, submission, f"{submission.reference} conditions met")
        except DocumentError as exc:
            raise ReviewError(str(exc), "evidence") from exc


def respond_to_request(
    session: Session, investigator: User, submission: Submission, text: str
) -> InformationResponse:
    """The investigator's reply to a provisional opinion restarts the clock and the vote."""
    if investigator.id != submission.submitted_by_id:
        raise ReviewError(_("Only the investigator who made the submission can respond"))
    if submission.status != SubmissionStatus.INFORMATION_REQUESTED:
        raise ReviewError(_("The panel is not waiting for information on this submission"))
    response = InformationResponse(
        submission_id=submission.id,
        round=submission.round,
        text=_text(text, _("Write your response to the panel's request"), "response"),
        author_id=investigator.id,
    )
    _insert_once(session, response, _("You have already responded to this request"))
    stop = submission.clock_stops[-1]
    stop.restarted_at = utcnow()
    submission.round += 1
    _set_submission_status(session, investigator, submission, SubmissionStatus.IN_REVIEW)
    session.flush()
    audit.record(
        session,
        "submission.information_sent",
        actor=audit.Actor.of(investigator),
        object_type="submission",
        object_id=submission.id,
        after={"round": submission.round, "response_id": response.id},
    )
    _notify(session, _chairs(session), "review_submitted", submission)
    return response


def _set_submission_status(
    session: Session, actor: User, submission: Submission, target: SubmissionStatus
) -> None:
    before = submission.status
    submission.status = target.value
    audit.record(
        session,
        "submission.status_changed",
        actor=audit.Actor.of(actor),
        object_type="submission",
        object_id=submission.id,
        before={"status": before},
        after={"status": target.value},
    )


# --- protocol status ----------------------------------------------------------------------------

PROTOCOL_MOVES = {
    ProtocolStatus.SUSPENDED: {ProtocolStatus.APPROVED},
    ProtocolStatus.APPROVED: {ProtocolStatus.SUSPENDED},  # lifting a suspension
    ProtocolStatus.TERMINATED: {ProtocolStatus.APPROVED, ProtocolStatus.SUSPENDED},
}


def change_protocol_status(
    session: Session, chair: User, protocol: Protocol, target: str, reason: str
) -> None:
    """Suspend, resume or terminate a protocol. Suspended or terminated: no new consent."""
    _require_chair(chair)
    for submission in protocol.submissions:
        if recusal(submission, chair) is not None:
            _refuse(session, chair, submission, "protocol_status")
    try:
        wanted = ProtocolStatus(target)
    except ValueError:
        raise ReviewError(_("Choose what to do with the protocol"), "status") from None
    if wanted not in PROTOCOL_MOVES or protocol.status not in PROTOCOL_MOVES[wanted]:
        raise ReviewError(_("The protocol cannot make that change now"), "status")
    _set_protocol_status(
        session, chair, protocol, wanted, _text(reason, _("Give the reason"), "reason")
    )


def _set_protocol_status(
    session: Session, actor: User, protocol: Protocol, target: ProtocolStatus, reason: str
) -> None:
    before = protocol.status
    protocol.status = target.value
    protocol.status_changed_at = utcnow()
    session.flush()
    audit.record(
        session,
        "protocol.status_changed",
        actor=audit.Actor.of(actor),
        object_type="protocol",
        object_id=protocol.id,
        before={"status": before},
        after={"status": target.value},
        reason=reason,
    )


def blocking_protocol(session: Session, version: DocumentVersion) -> Protocol | None:
    """The protocol the document belongs to, when it takes no new consent: suspended,
    terminated, or not yet approved (conditions of a favourable opinion still unmet)."""
    protocol = protocol_of_document(session, version.document_id)
    if protocol is None or protocol.status == ProtocolStatus.APPROVED:
        return None
    if protocol.status == ProtocolStatus.UNDER_REVIEW and not _awaiting_conditions(protocol):
        return None  # versions approved outside the portal before the protocol's review
    return protocol


def _awaiting_conditions(protocol: Protocol) -> bool:
    initial = protocol.submissions[0]
    opinion = initial.latest_opinion
    return (
        opinion is not None
        and opinion.category == OpinionCategory.FAVOURABLE_WITH_CONDITIONS
        and not opinion.conditions_met
    )


# --- the 60-day clock ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    days: int
    target: int
    stopped: bool
    stopped_days: int

    @property
    def overdue(self) -> bool:
        return self.days > self.target


def clock(submission: Submission, now: dt.datetime | None = None) -> Clock:
    """Calendar days on the clock: from submission to opinion, less the time it was stopped."""
    now = now or utcnow()
    end = submission.decided_at or now
    paused = dt.timedelta()
    stopped = False
    for stop in submission.clock_stops:
        until = stop.restarted_at or end
        stopped = stopped or stop.restarted_at is None
        paused += max(until - stop.stopped_at, dt.timedelta())
    running = end - submission.submitted_at - paused
    return Clock(
        days=max(running.days, 0),
        target=current_app.config["REVIEW_TARGET_DAYS"],
        stopped=stopped and submission.decided_at is None,
        stopped_days=paused.days,
    )


# --- lists and notifications --------------------------------------------------------------------


def panel_queue(session: Session) -> list[Submission]:
    return list(
        session.scalars(
            select(Submission)
            .where(Submission.status != SubmissionStatus.DECIDED)
            .order_by(Submission.submitted_at)
        )
    )


def decided(session: Session, limit: int = 50) -> list[Submission]:
    return list(
        session.scalars(
            select(Submission)
            .where(Submission.status == SubmissionStatus.DECIDED)
            .order_by(Submission.decided_at.desc())
            .limit(limit)
        )
    )


def _chairs(session: Session) -> list[User]:
    return list(
        session.scalars(select(User).where(User.role == Role.PANEL_CHAIR, User.active.is_(True)))
    )


def _notify(session: Session, recipients: list[User], kind: str, submission: Submission) -> None:
    from portal.notifications.services import path_for, queue

    panel = path_for("review.panel_submission", submission_id=submission.id)
    mine = path_for("review.submission", submission_id=submission.id)
    for recipient in recipients:
        queue(session, recipient, kind, panel if recipient.role in PANEL_ROLES else mine)


def audit_protocol_download(session: Session, user: User, submission: Submission) -> None:
    audit.record(
        session,
        "submission.protocol_downloaded",
        actor=audit.Actor.of(user),
        object_type="submission",
        object_id=submission.id,
        after={"sha256": submission.file_sha256},
    )
