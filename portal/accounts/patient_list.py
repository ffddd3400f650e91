"""A therapist's list of their patients and of the invitations they sent, read in one place.

A therapist at a busy site may look after thousands of patients, so the patients come a page at
a time, A to Z, and a search by name or email address narrows both lists. Accepted invitations
are not listed again: those people are in the patients table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from portal.accounts.models import PURPOSE_NEW_ACCOUNT, Invitation, User
from portal.core.db import utcnow
from portal.core.paging import page_count
from portal.core.permissions import Role

PATIENTS_PER_PAGE = 50
# Invitations not taken up stay listed this long after their link expired, so that the
# therapist sees who never signed up and can invite them again.
UNUSED_INVITATIONS_KEPT_FOR = dt.timedelta(days=30)
INVITATIONS_SHOWN = 100


@dataclass(frozen=True)
class PatientList:
    patients: list[User]
    page: int
    pages: int
    total: int  # the patients matching the search (all of them, without one)
    invitations: list[Invitation]  # newest first: waiting, expired or withdrawn
    more_invitations: bool  # more than INVITATIONS_SHOWN matched


def patient_list(
    session: Session, therapist_id: int, page: int = 1, search: str = ""
) -> PatientList:
    """One page of the therapist's patients, and their invitations not taken up, each narrowed
    to names and email addresses containing `search`; raises NoSuchPage past the last page."""
    patients_wanted = [User.invited_by_id == therapist_id, User.role == Role.PATIENT]
    invitations_wanted = [
        Invitation.invited_by_id == therapist_id,
        Invitation.role == Role.PATIENT,
        Invitation.purpose == PURPOSE_NEW_ACCOUNT,
        Invitation.accepted_at.is_(None),
        Invitation.expires_at > utcnow() - UNUSED_INVITATIONS_KEPT_FOR,
    ]
    if search:
        patients_wanted.append(_matches(User.full_name, User.email, search))
        invitations_wanted.append(_matches(Invitation.full_name, Invitation.email, search))
    total = session.scalar(select(func.count()).select_from(User).where(*patients_wanted))
    pages = page_count(page, total, PATIENTS_PER_PAGE)
    patients = session.scalars(
        select(User)
        .where(*patients_wanted)
        .order_by(func.lower(User.full_name), User.id)  # A to Z, whatever the case
        .limit(PATIENTS_PER_PAGE)
        .offset((page - 1) * PATIENTS_PER_PAGE)
    ).all()
    invitations = session.scalars(
        select(Invitation)
        .where(*invitations_wanted)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
        .limit(INVITATIONS_SHOWN + 1)
    ).all()
    return PatientList(
        patients=patients,
        page=page,
        pages=pages,
        total=total,
        invitations=invitations[:INVITATIONS_SHOWN],
        more_invitations=len(invitations) > INVITATIONS_SHOWN,
    )


def _matches(name, email, search: str) -> ColumnElement[bool]:
    """Name or email address containing `search`, whatever its case; % and _ are matched as
    themselves, not as wildcards."""
    return or_(name.icontains(search, autoescape=True), email.icontains(search, autoescape=True))
