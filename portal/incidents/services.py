"""Boundary incidents: report, triage, investigate, hear the therapist, decide.

Safe for the person reporting: the report goes straight to the ethics panel; the site team
never sees it and the named therapist sees the allegation (never who made it) only once the
panel decides to ask for their response. Fair to the person reported: they are heard before
an outcome, and a hold placed as a safeguard is lifted when no case is found.

Every read is audited, and so is every refused attempt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session, defer, joinedload, selectinload

from portal.accounts.models import User
from portal.core import audit
from portal.core.db import utcnow
from portal.core.permissions import PANEL_ROLES, Role
from portal.incidents.models import (
    Category,
    FeelsSafe,
    Incident,
    IncidentAssignment,
    IncidentConflict,
    IncidentEntry,
    Outcome,
    SessionKind,
    Severity,
    Status,
    TherapistHold,
)

SERIOUS_BREACH_DAYS = 7
MAX_TEXT = 10_000
# Evidence: what panels are usually sent, recognised by content, not by the name given.
EVIDENCE_TYPES = {
    b"%PDF-": "application/pdf",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}
ANONYMOUS_REPORTER = audit.Actor(id=None, role="anonymous_reporter")


class IncidentError(Exception):
    """A refused step; the message is safe to show, `field` names the form field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Access(StrEnum):
    PANEL = "panel"
    REPORTER = "reporter"
    THERAPIST = "therapist"  # the named therapist, once invited to respond


@dataclass(frozen=True)
class Report:
    therapist_id: int | None
    category: str
    occurred_on: dt.date | None
    session_kind: str
    what_happened: str
    others_involved: str
    feels_safe: str
    anonymous: bool = False


# --- reporting ----------------------------------------------------------------------------------


def therapists_to_name(session: Session, reporter: User) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(User.role == Role.THERAPIST, User.active.is_(True), User.id != reporter.id)
            .order_by(User.full_name)
        )
    )


def report(session: Session, reporter: User, wanted: Report) -> Incident:
    therapist = session.get(User, wanted.therapist_id) if wanted.therapist_id else None
    if therapist is None or therapist.role != Role.THERAPIST or therapist.id == reporter.id:
        raise IncidentError(_("Choose the therapist your concern is about"), field="therapist")
    _require_choice(wanted.category, Category, _("Choose what kind of concern it is"), "category")
    if wanted.occurred_on is None:
        raise IncidentError(_("Enter the date it happened, as far as you know"), field="day")
    if wanted.occurred_on > utcnow().date():
        raise IncidentError(_("The date cannot be in the future"), field="day")
    _require_choice(
        wanted.session_kind,
        SessionKind,
        _("Choose whether it was during a session"),
        "session_kind",
    )
    what = _text(wanted.what_happened, _("Tell us what happened"), "what_happened")
    _require_choice(
        wanted.feels_safe, FeelsSafe, _("Tell us whether you feel safe now"), "feels_safe"
    )
    if wanted.anonymous and reporter.role == Role.PATIENT:
        raise IncidentError(_("Reports from patients always go to the panel with their name"))
    incident = Incident(
        reporter_id=reporter.id,
        anonymous=wanted.anonymous,
        therapist_id=therapist.id,
        category=wanted.category,
        occurred_on=wanted.occurred_on,
        session_kind=wanted.session_kind,
        what_happened=what,
        others_involved=wanted.others_involved.strip()[:MAX_TEXT] or None,
        feels_safe=wanted.feels_safe,
    )
    session.add(incident)
    session.flush()
    if reporter.role in PANEL_ROLES:
        # Recused like any member with an interest, so that nothing tells them apart.
        session.add(IncidentConflict(incident_id=incident.id, member_id=reporter.id))
        session.flush()
    audit.record(
        session,
        "incident.reported",
        actor=reporter_actor(incident, reporter),
        object_type="incident",
        object_id=incident.id,
        after={
            "category": incident.category,
            "therapist_id": incident.therapist_id,
            "session_kind": incident.session_kind,
            "feels_safe": incident.feels_safe,
            "anonymous": incident.anonymous,
        },
    )
    _notify(session, _chairs(session), "incident", incident)
    return incident


def reporter_actor(incident: Incident, reporter: User) -> audit.Actor:
    """An anonymous reporter's own steps are not attributed, or the trail would name them."""
    return ANONYMOUS_REPORTER if incident.anonymous else audit.Actor.of(reporter)


def _require_choice(value: str, allowed: type[StrEnum], message: str, field: str) -> None:
    if value not in {member.value for member in allowed}:
        raise IncidentError(message, field=field)


def _text(value: str, missing: str, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise IncidentError(missing, field=field)
    if len(text) > MAX_TEXT:
        raise IncidentError(
            _("Please keep it to %(n)d characters or fewer", n=MAX_TEXT), field=field
        )
    return text


# --- who may see what ---------------------------------------------------------------------------


def access_of(user: User, incident: Incident) -> Access | None:
    involved = (incident.therapist_id, incident.reporter_id)
    if user.role in PANEL_ROLES and user.id not in incident.recused_ids and user.id not in involved:
        return Access.PANEL
    if user.id == incident.reporter_id:
        return Access.REPORTER
    if user.id == incident.therapist_id and incident.shared_at is not None:
        return Access.THERAPIST
    return None


def open_incident(
    session: Session, user: User, incident: Incident, needed: Access | None = None
) -> Access | None:
    """The access this user has (or None when it is not `needed`). Every read is audited, and
    so is every refused attempt; the caller then answers 404."""
    access = access_of(user, incident)
    if needed is not None and access != needed:
        access = None
    actor = reporter_actor(incident, user) if access == Access.REPORTER else audit.Actor.of(user)
    audit.record(
        session,
        "incident.viewed" if access else "incident.access_refused",
        actor=actor,
        object_type="incident",
        object_id=incident.id,
        after={"as": access.value} if access else None,
    )
    return access


def evidence_read(session: Session, member: User, entry: IncidentEntry) -> None:
    audit.record(
        session,
        "incident.evidence_downloaded",
        actor=audit.Actor.of(member),
        object_type="incident",
        object_id=entry.incident_id,
        after={"entry_id": entry.id},
    )


def is_unavailable(session: Session, therapist_id: int) -> bool:
    """On hold as a safeguard, or suspended: may not take or countersign consent."""
    return (
        session.scalar(
            select(TherapistHold.id).where(
                TherapistHold.therapist_id == therapist_id, TherapistHold.lifted_at.is_(None)
            )
        )
        is not None
    )


def triage_due_at(incident: Incident) -> dt.datetime:
    return incident.reported_at + dt.timedelta(hours=current_app.config["TRIAGE_TARGET_HOURS"])


def breach_report_due_at(incident: Incident) -> dt.datetime:
    return incident.reported_at + dt.timedelta(days=SERIOUS_BREACH_DAYS)


def open_incidents(session: Session, member: User) -> list[Incident]:
    return _panel_list(
        session, member, Incident.status != Status.CLOSED, order_by=Incident.reported_at
    )


def closed_incidents(session: Session, member: User) -> list[Incident]:
    return _panel_list(
        session, member, Incident.status == Status.CLOSED, order_by=Incident.id.desc()
    )


def therapist_history(session: Session, member: User, therapist: User) -> list[Incident]:
    return _panel_list(session, member, Incident.therapist_id == therapist.id, order_by=Incident.id)


_NARRATIVES = (
    Incident.what_happened,
    Incident.others_involved,
    Incident.response,
    Incident.outcome_reasons,
)


def _panel_list(session: Session, member: User, *where, order_by) -> list[Incident]:
    """The concerns this panel member may see, of those wanted. Each one's conflicts (who is
    left out) and therapist are loaded with the list, not a query each, and the encrypted
    narratives a list never shows are not loaded (or decrypted): 400 concerns took 360 ms."""
    found = session.scalars(
        select(Incident)
        .where(*where)
        .order_by(order_by)
        .options(
            selectinload(Incident.conflicts),
            joinedload(Incident.therapist),
            *(defer(column, raiseload=True) for column in _NARRATIVES),
        )
    ).all()
    return [incident for incident in found if access_of(member, incident) == Access.PANEL]


def queue_triage_reminders(session: Session, now: dt.datetime | None = None) -> int:
    """Remind the chairs of each concern past its triage target, once a day at most."""
    from portal.notifications.models import OutboxMessage
    from portal.notifications.services import path_for, queue

    now = now or utcnow()
    waiting = session.scalars(select(Incident).where(Incident.status == Status.REPORTED)).all()
    queued = 0
    for incident in waiting:
        if now <= triage_due_at(incident):
            continue
        about = f"incident:{incident.id}"
        recent = session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.kind == "triage_reminder",
                OutboxMessage.about == about,
                OutboxMessage.created_at > now - dt.timedelta(days=1),
            )
        )
        if recent is not None:
            continue
        link = path_for("incidents.show", incident_id=incident.id)
        for chair in _chairs(session):
            if access_of(chair, incident) == Access.PANEL:
                queue(session, chair, "triage_reminder", link, about=about)
                queued += 1
    return queued


# --- the panel's steps --------------------------------------------------------------------------


def triage(
    session: Session,
    chair: User,
    incident: Incident,
    *,
    severity: str,
    hold: bool,
    serious_breach_due: bool,
    note: str,
) -> None:
    _require_chair(chair, incident)
    if incident.status != Status.REPORTED:
        raise IncidentError(_("This concern has already been triaged"))
    _require_choice(severity, Severity, _("Choose how serious it is"), "severity")
    incident.severity = severity
    incident.serious_breach_due = serious_breach_due
    incident.triaged_at = utcnow()
    incident.status = Status.INVESTIGATING.value
    if hold:
        _place_hold(session, incident, "safeguard", chair)
    _entry(session, incident, chair, "triage", note.strip() or None)
    audit.record(
        session,
        "incident.triaged",
        actor=audit.Actor.of(chair),
        object_type="incident",
        object_id=incident.id,
        after={"severity": severity, "hold": hold, "serious_breach_due": serious_breach_due},
    )


def assign(session: Session, chair: User, incident: Incident, member: User | None) -> None:
    _require_chair(chair, incident)
    if (
        member is None
        or member.role not in PANEL_ROLES
        or access_of(member, incident) != Access.PANEL
    ):
        raise IncidentError(
            _("Choose a panel member with no conflict of interest"), field="member_id"
        )
    if member.id in incident.assigned_ids:
        raise IncidentError(_("They are already assigned"), field="member_id")
    session.add(IncidentAssignment(incident_id=incident.id, member_id=member.id))
    _entry(session, incident, chair, "assignment", member.full_name)
    session.flush()
    session.expire(incident, ["assignments"])
    audit.record(
        session,
        "incident.assigned",
        actor=audit.Actor.of(chair),
        object_type="incident",
        object_id=incident.id,
        after={"member_id": member.id},
    )


def declare_conflict(session: Session, member: User, incident: Incident) -> None:
    """A member with an interest steps aside: from now on they cannot read or act on it."""
    if member.role not in PANEL_ROLES or member.id in incident.recused_ids:
        return
    session.add(IncidentConflict(incident_id=incident.id, member_id=member.id))
    for assignment in incident.assignments:
        if assignment.member_id == member.id:
            session.delete(assignment)
    session.flush()
    session.expire(incident, ["conflicts", "assignments"])
    audit.record(
        session,
        "incident.conflict_declared",
        actor=audit.Actor.of(member),
        object_type="incident",
        object_id=incident.id,
    )


@dataclass(frozen=True)
class Upload:
    name: str
    content: bytes


def add_note(
    session: Session,
    member: User,
    incident: Incident,
    text: str,
    recording_reference: str = "",
    upload: Upload | None = None,
) -> IncidentEntry:
    """A note on the timeline, optionally with evidence or a reference to a session recording."""
    _require_investigator(member, incident)
    text = (text or "").strip()
    reference = (recording_reference or "").strip()
    if not text and not upload and not reference:
        raise IncidentError(_("Write a note, or add evidence"), field="text")
    if len(text) > MAX_TEXT:
        raise IncidentError(_("Please keep it to %(n)d characters or fewer", n=MAX_TEXT), "text")
    if len(reference) > 200:
        raise IncidentError(
            _("The recording reference must be 200 characters or fewer"),
            field="recording_reference",
        )
    files = {}
    if upload is not None:
        files = {
            "file_type": _evidence_type(upload.content),
            "file_name": upload.name[-200:] or "evidence",
            "file_size": len(upload.content),
            "file_content": upload.content,
        }
    kind = "evidence" if upload else "note"
    entry = _entry(
        session,
        incident,
        member,
        kind,
        text or None,
        recording_reference=reference or None,
        **files,
    )
    audit.record(
        session,
        "incident.note_added",
        actor=audit.Actor.of(member),
        object_type="incident",
        object_id=incident.id,
        after={
            "entry_id": entry.id,
            "recording_reference": entry.recording_reference,
            "file_sha256": hashlib.sha256(upload.content).hexdigest() if upload else None,
            "file_size": entry.file_size,
        },
    )
    return entry


def _evidence_type(content: bytes) -> str:
    limit = current_app.config["EVIDENCE_MAX_BYTES"]
    if len(content) > limit:
        raise IncidentError(
            _("The file must be %(mb)d MB or smaller", mb=limit // (1024 * 1024)), field="evidence"
        )
    if not content:
        raise IncidentError(_("The file is empty"), field="evidence")
    for magic, mimetype in EVIDENCE_TYPES.items():
        if content.startswith(magic):
            return mimetype
    raise IncidentError(_("The file must be a PDF, PNG or JPEG"), field="evidence")


def share_with_therapist(session: Session, chair: User, incident: Incident) -> None:
    """The panel decides to put the allegation to the therapist and ask for their response."""
    _require_chair(chair, incident)
    if incident.status != Status.INVESTIGATING:
        raise IncidentError(_("The therapist can only be asked to respond during investigation"))
    incident.status = Status.RESPONSE_INVITED.value
    incident.shared_at = utcnow()
    _entry(session, incident, chair, "shared", None)
    audit.record(
        session,
        "incident.shared_with_therapist",
        actor=audit.Actor.of(chair),
        object_type="incident",
        object_id=incident.id,
        after={"therapist_id": incident.therapist_id},
    )
    _notify(session, [incident.therapist], "incident_response", incident)


def respond(session: Session, therapist: User, incident: Incident, text: str) -> None:
    if therapist.id != incident.therapist_id or incident.status != Status.RESPONSE_INVITED:
        raise IncidentError(_("You cannot respond to this concern at the moment"))
    if incident.responded_at is not None:
        raise IncidentError(_("You have already sent your response"))
    incident.response = _text(text, _("Write your response"), "response")
    incident.responded_at = utcnow()
    _entry(session, incident, therapist, "response", None)
    audit.record(
        session,
        "incident.response_received",
        actor=audit.Actor.of(therapist),
        object_type="incident",
        object_id=incident.id,
    )


def record_outcome(
    session: Session, chair: User, incident: Incident, outcome: str, reasons: str
) -> None:
    """Decide; the therapist's status follows the outcome; the reporter is told in general."""
    _require_chair(chair, incident)
    if incident.status == Status.CLOSED:
        raise IncidentError(_("An outcome has already been recorded"))
    if incident.status == Status.REPORTED:
        raise IncidentError(_("Triage the concern first"))
    _require_choice(outcome, Outcome, _("Choose the outcome"), "outcome")
    if outcome != Outcome.NO_CASE and incident.shared_at is None:
        raise IncidentError(
            _("Ask the therapist for their response before deciding against them"),
            field="outcome",
        )
    incident.outcome_reasons = _text(reasons, _("Give the reasons for the outcome"), "reasons")
    incident.outcome = outcome
    incident.status = Status.CLOSED.value
    incident.closed_at = utcnow()
    for hold in _holds(session, incident):
        hold.lifted_at = incident.closed_at
        audit.record(
            session,
            "therapist.hold_lifted",
            actor=audit.Actor.of(chair),
            object_type="user",
            object_id=incident.therapist_id,
            before={"hold_id": hold.id, "lifted_at": None},
            after={"hold_id": hold.id, "lifted_at": audit.format_timestamp(hold.lifted_at)},
        )
    if outcome in (Outcome.SUSPENSION, Outcome.REFERRAL):
        _place_hold(session, incident, "suspension", chair)
    _entry(session, incident, chair, "outcome", None)
    audit.record(
        session,
        "incident.outcome_recorded",
        actor=audit.Actor.of(chair),
        object_type="incident",
        object_id=incident.id,
        after={
            "outcome": outcome,
            "therapist_unavailable": is_unavailable(session, incident.therapist_id),
        },
    )
    if not incident.anonymous:  # an anonymous reporter checks "Your reports" instead
        _notify(session, [incident.reporter], "incident_outcome", incident)


def mark_breach_reported(session: Session, chair: User, incident: Incident) -> None:
    _require_chair(chair, incident)
    if not incident.serious_breach_due or incident.serious_breach_reported_at is not None:
        raise IncidentError(_("No serious-breach report is waiting for this concern"))
    incident.serious_breach_reported_at = utcnow()
    _entry(session, incident, chair, "breach_reported", None)
    audit.record(
        session,
        "incident.serious_breach_reported",
        actor=audit.Actor.of(chair),
        object_type="incident",
        object_id=incident.id,
    )


# --- helpers ------------------------------------------------------------------------------------


def _require_chair(user: User, incident: Incident) -> None:
    if user.role != Role.PANEL_CHAIR or access_of(user, incident) != Access.PANEL:
        raise IncidentError(_("Only the panel chair, without a conflict of interest, can do this"))


def _require_investigator(user: User, incident: Incident) -> None:
    allowed = access_of(user, incident) == Access.PANEL and (
        user.role == Role.PANEL_CHAIR or user.id in incident.assigned_ids
    )
    if not allowed:
        raise IncidentError(_("Only the chair and the assigned panel members can add to this"))
    if incident.status == Status.CLOSED:
        raise IncidentError(_("This concern is closed"))


def _entry(
    session: Session, incident: Incident, author: User, kind: str, text: str | None, **fields
) -> IncidentEntry:
    """Add to the timeline; entries are written once (the database refuses changes)."""
    entry = IncidentEntry(
        incident_id=incident.id, author_id=author.id, kind=kind, text=text, **fields
    )
    session.add(entry)
    session.flush()
    session.expire(incident, ["entries"])
    return entry


def _place_hold(session: Session, incident: Incident, kind: str, chair: User) -> None:
    hold = TherapistHold(therapist_id=incident.therapist_id, incident_id=incident.id, kind=kind)
    session.add(hold)
    session.flush()
    audit.record(
        session,
        "therapist.hold_placed",
        actor=audit.Actor.of(chair),
        object_type="user",
        object_id=incident.therapist_id,
        after={"hold_id": hold.id, "incident_id": incident.id, "kind": kind},
    )


def _holds(session: Session, incident: Incident) -> list[TherapistHold]:
    return list(
        session.scalars(
            select(TherapistHold).where(
                TherapistHold.incident_id == incident.id, TherapistHold.lifted_at.is_(None)
            )
        )
    )


def _chairs(session: Session) -> list[User]:
    return list(
        session.scalars(select(User).where(User.role == Role.PANEL_CHAIR, User.active.is_(True)))
    )


def _notify(session: Session, recipients: list[User], kind: str, incident: Incident) -> None:
    from portal.notifications.services import path_for, queue

    link = path_for("incidents.show", incident_id=incident.id)
    for recipient in recipients:
        queue(session, recipient, kind, link)
