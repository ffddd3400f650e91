"""What each audit event is about, beyond its one object: the patient, protocol, consent
document version or incident it concerns.

An event names a single object (a consent, a withdrawal, a submission...). The panel filters the
trail by patient, protocol, version or incident, which at a million events needs an index rather
than a scan that resolves every object. Links are written with the event, in its transaction,
and never changed; they are not part of the hashed event (the chain stays as docs/audit-chain.md
specifies), so a verifier need not know them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.db import Base


class LinkKind(StrEnum):
    PATIENT = "patient"
    PROTOCOL = "protocol"
    VERSION = "version"  # a consent document version
    INCIDENT = "incident"


class AuditLink(Base):
    """One (kind, ref) an event concerns. The primary key is the filter's index: all events about
    one patient, in sequence order. Written once."""

    __tablename__ = "audit_link"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ref: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_seq: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("audit_event.seq"), primary_key=True, index=True
    )

    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{kind.value}'" for kind in LinkKind) + ")",
            name="kind_known",
        ),
    )


Links = set[tuple[LinkKind, int]]
Resolver = Callable[[Session, str], Iterable[tuple[LinkKind, int | None]]]
_RESOLVERS: dict[str, Resolver] = {}


def resolves(object_type: str) -> Callable[[Resolver], Resolver]:
    """Register how to find what an object of this type concerns (see portal/oversight/links)."""

    def register(resolver: Resolver) -> Resolver:
        _RESOLVERS[object_type] = resolver
        return resolver

    return register


def links_for(session: Session, object_type: str | None, object_id: str | None) -> Links:
    resolver = _RESOLVERS.get(object_type or "")
    if resolver is None or object_id is None:
        return set()
    return {(kind, int(ref)) for kind, ref in resolver(session, object_id) if ref is not None}


def add_links(session: Session, event_seq: int, links: Links) -> None:
    """Write an event's links in the caller's transaction."""
    session.add_all(AuditLink(kind=kind.value, ref=ref, event_seq=event_seq) for kind, ref in links)
