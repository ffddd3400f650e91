"""Users, their server-side sign-in sessions, and invitations."""

from __future__ import annotations

import datetime as dt
import unicodedata

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, validates

from portal.core.db import Base, UTCDateTime, utcnow
from portal.core.permissions import ALL_ROLES, Role

_ROLE_LIST = ", ".join(f"'{role.value}'" for role in sorted(ALL_ROLES))
LOCALES = ("en_GB", "cy")
NAME_KEY_LENGTH = 400  # folding can lengthen a name: "ß" becomes "ss"
# Letters that Unicode does not decompose into a plain letter and an accent.
_UNDECOMPOSED = str.maketrans(
    {**dict(zip("łøđðħ\u0131", "loddhi", strict=True)), "æ": "ae", "œ": "oe", "þ": "th"}
)
# Compared byte by byte on PostgreSQL too, as on SQLite: a locale's collation would ignore the
# spaces and hyphens in names and put them in another order.
NameKey = String(NAME_KEY_LENGTH).with_variant(String(NAME_KEY_LENGTH, collation="C"), "postgresql")


def name_key(name: str) -> str:
    """A name as lists sort and search it, with case and accents folded: Siân, SIAN and sian
    are alike, and Élise sorts among the Es. Stored beside the name, because SQLite's lower()
    and LIKE fold ASCII letters only, and so that both databases sort alike. (Letter by letter:
    Welsh alphabetical order, where "ll" and "dd" are letters, is not attempted.)"""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    return folded.translate(_UNDECOMPOSED).casefold()[:NAME_KEY_LENGTH]


def _keep_name_key(record, _field: str, name: str) -> str:
    record.name_key = name_key(name)
    return name


class AccountError(Exception):
    """A refused account operation; the message is safe to show to the user."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # the form field the message belongs next to, if any


class User(Base):
    """A person with an account. Never deleted, so identities are never reused."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(NameKey)  # set with the name
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(8), default="en_GB")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    # Second factor (TOTP): the confirmed secret, one being set up, and the last time step used
    # (a code is accepted only for a later step, so each code works once).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    totp_last_counter: Mapped[int | None] = mapped_column(BigInteger)
    # Ethics panel members are lay or expert members (quorum needs one of each).
    panel_membership: Mapped[str | None] = mapped_column(String(8))

    invited_by: Mapped[User | None] = relationship(remote_side=[id])

    _name_key = validates("full_name")(_keep_name_key)

    __table_args__ = (
        CheckConstraint(f"role IN ({_ROLE_LIST})", name="role_known"),
        CheckConstraint("locale IN ('en_GB', 'cy')", name="locale_known"),
        CheckConstraint(
            "panel_membership IS NULL OR panel_membership IN ('lay', 'expert')",
            name="panel_membership_known",
        ),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    # Flask-Login protocol; get_id() names the sign-in session, not the user, so that ending
    # the session on the server makes a copied cookie worthless.
    session_token = None  # set by the user loader for this request
    current_session = None  # the UserSession behind this request

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        return self.session_token

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_staff(self) -> bool:
        return self.role != Role.PATIENT

    def audit_view(self) -> dict[str, object]:
        """The fields that audit events record before and after a change."""
        return {
            "email": self.email,
            "full_name": self.full_name,
            "role": str(self.role),
            "active": self.active,
            "locale": self.locale,
            "panel_membership": self.panel_membership,
        }

    @classmethod
    def by_email(cls, session: Session, email: str) -> User | None:
        return session.scalar(select(cls).where(cls.email == normalise_email(email)))


def normalise_email(email: str) -> str:
    return email.strip().lower()


# Lists of accounts by role and then A to Z (portal.accounts.account_lists) are read in this
# index's order, so that a page deep among 100,000 patients is not a sort of all of them; with
# the email address in it too, a search and its count read the index alone, not the table.
Index("ix_user_account_role_name", User.role, User.name_key, User.id, User.email)


class UserSession(Base):
    """A server-side sign-in session; the cookie holds only its random token."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship()

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def end(self, reason: str) -> None:
        if self.ended_at is None:
            self.ended_at = utcnow()
            self.end_reason = reason


class RecoveryCode(Base):
    """A single-use code that stands in for the second factor; stored only as its SHA-256."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


PURPOSE_NEW_ACCOUNT = "new_account"
PURPOSE_PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a secret


class Invitation(Base):
    """A single-use, expiring link on which someone sets a password.

    Either an invitation (the account is created when it is accepted) or a password reset issued
    by the study team for an existing account (`user_id` set from the start).
    """

    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(NameKey)  # set with the name
    role: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16), default=PURPOSE_NEW_ACCOUNT)
    invited_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    invited_by: Mapped[User] = relationship(foreign_keys=[invited_by_id])
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])

    _name_key = validates("full_name")(_keep_name_key)

    __table_args__ = (
        CheckConstraint(f"role IN ({_ROLE_LIST})", name="role_known"),
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        CheckConstraint(
            f"purpose IN ('{PURPOSE_NEW_ACCOUNT}', '{PURPOSE_PASSWORD_RESET}')",
            name="purpose_known",
        ),
        CheckConstraint(
            f"purpose = '{PURPOSE_NEW_ACCOUNT}' OR user_id IS NOT NULL", name="reset_names_user"
        ),
    )

    @property
    def is_password_reset(self) -> bool:
        return self.purpose == PURPOSE_PASSWORD_RESET

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= utcnow():
            return "expired"
        return "pending"

    def ensure_usable(self) -> None:
        """Refuse a link that was used, withdrawn or has expired."""
        status = self.status
        if status != "pending":
            from flask_babel import gettext as _

            messages = {
                "accepted": _("This link has already been used. Sign in instead."),
                "revoked": _("This link was withdrawn. Ask the study team for a new one."),
                "expired": _("This link has expired. Ask the study team for a new one."),
            }
            raise AccountError(messages[status])

    def mark_accepted(self, user: User) -> None:
        self.ensure_usable()
        self.accepted_at = utcnow()
        self.user_id = user.id


def pending_invitation_count(session: Session, email: str) -> int:
    return (
        session.scalar(
            select(func.count(Invitation.id)).where(
                Invitation.email == normalise_email(email),
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
        )
        or 0
    )
