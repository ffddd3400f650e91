"""The lists of accounts people page through: a therapist's patients (with the invitations they
sent) and the administrator's list of every account.

A busy site has thousands of patients, so accounts come a page at a time, A to Z, and a search
by name or email address narrows a list. On the patient list, accepted invitations are not
listed again: those people are in the patients table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from portal.accounts.models import PURPOSE_NEW_ACCOUNT, Invitation, User, name_key
from portal.core.db import utcnow
from portal.core.paging import page_count
from portal.core.permissions import Role

ACCOUNTS_PER_PAGE = 50
# Invitations not taken up stay listed this long after their link expired, so that the
# therapist sees who never signed up and can invite them again.
UNUSED_INVITATIONS_KEPT_FOR = dt.timedelta(days=30)
INVITATIONS_SHOWN = 100


@dataclass(frozen=True)
class AccountPage:
    accounts: list[User]
    page: int
    pages: int
    total: int  # the accounts matching the search (all of them, without one)


@dataclass(frozen=True)
class PatientList:
    patients: AccountPage
    invitations: list[Invitation]  # newest first: waiting, expired or withdrawn
    more_invitations: bool  # more than INVITATIONS_SHOWN matched


def patient_list(
    session: Session, therapist_id: int, page: int = 1, search: str = ""
) -> PatientList:
    """One page of the therapist's patients, A to Z, and their invitations not taken up, each
    narrowed to names and email addresses containing `search`; NoSuchPage past the last page."""
    invitations_wanted = [
        Invitation.invited_by_id == therapist_id,
        Invitation.role == Role.PATIENT,
        Invitation.purpose == PURPOSE_NEW_ACCOUNT,
        Invitation.accepted_at.is_(None),
        Invitation.expires_at > utcnow() - UNUSED_INVITATIONS_KEPT_FOR,
        # nor those of someone who has an account now (a later invitation was accepted)
        ~exists().where(User.email == Invitation.email),
    ]
    if search:
        invitations_wanted.append(_matches(session, Invitation.name_key, Invitation.email, search))
    invitations = session.scalars(
        select(Invitation)
        .where(*invitations_wanted)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
        .limit(INVITATIONS_SHOWN + 1)
    ).all()
    return PatientList(
        patients=_account_page(
            session,
            # The index of who invited whom finds the therapist's patients; the role is compared
            # as role || '' so that SQLite does not walk every patient in the role index's name
            # order instead (a last page 60 -> 366 ms at 100,000 patients).
            [User.invited_by_id == therapist_id, _unindexed_role(session) == Role.PATIENT],
            page,
            search,
        ),
        invitations=invitations[:INVITATIONS_SHOWN],
        more_invitations=len(invitations) > INVITATIONS_SHOWN,
    )


def account_list(
    session: Session, roles: tuple[str, ...] | None, page: int = 1, search: str = ""
) -> AccountPage:
    """One page of the accounts with these roles (everyone's for None), by role and then A to
    Z, narrowed to names and email addresses containing `search`; NoSuchPage past the last
    page. The index of accounts by role, name_key, id and email finds the page's accounts and
    counts the matches, a search included, without reading the table (see _account_page)."""
    wanted = [] if roles is None else [User.role.in_(roles)]
    return _account_page(session, wanted, page, search, order=[User.role])


def _account_page(
    session: Session, wanted: list, page: int, search: str, order: list | None = None
) -> AccountPage:
    """The page's ids are picked first and only those accounts read whole: a deep page of a
    broad search otherwise read and sorted every matching row in full (1.7 s for page 1,500 of
    a search for "a" among 100,064 accounts on SQLite)."""
    if search:
        wanted = [*wanted, _matches(session, User.name_key, User.email, search)]
    total = session.scalar(select(func.count(User.id)).where(*wanted))
    pages = page_count(page, total, ACCOUNTS_PER_PAGE)
    ordering = [*(order or []), User.name_key, User.id]  # A to Z, whatever the case or accents
    on_page = (
        select(User.id)
        .where(*wanted)
        .order_by(*ordering)
        .limit(ACCOUNTS_PER_PAGE)
        .offset((page - 1) * ACCOUNTS_PER_PAGE)
    )
    accounts = session.scalars(select(User).where(User.id.in_(on_page)).order_by(*ordering)).all()
    return AccountPage(accounts=accounts, page=page, pages=pages, total=total)


def _unindexed_role(session: Session):
    """The role as SQLite's planner cannot look up in an index (`role || ''`); PostgreSQL's
    planner weighs the index by its statistics, so it gets the plain column."""
    if session.get_bind().dialect.name == "sqlite":
        return User.role + ""
    return User.role


def _matches(session: Session, name_key_column, email, search: str) -> ColumnElement[bool]:
    """Name or email address containing `search`, whatever its case (and, for names, accents:
    the search is folded as the stored name_key is); % and _ are matched as themselves, not as
    wildcards. For email addresses SQLite's LIKE ignores ASCII case already, three times faster
    than lower() on both sides; PostgreSQL has ILIKE."""
    name = name_key_column.contains(name_key(search), autoescape=True)
    if session.get_bind().dialect.name == "sqlite":
        return or_(name, email.contains(search, autoescape=True))
    return or_(name, email.icontains(search, autoescape=True))
