"""The audit browser's filter form: read from the query string, so that a filtered view is a link
that can be shared, bookmarked and exported."""

from __future__ import annotations

import datetime as dt
import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import Form, SelectChoice, SelectField, StringField

from portal.accounts.models import User
from portal.consent.models import ConsentDocument, DocumentVersion
from portal.core.forms import parse_row_id
from portal.core.permissions import Role
from portal.incidents.models import Incident
from portal.oversight.trail import TrailFilter
from portal.review.models import Protocol

_INCIDENT_REFERENCE = re.compile(r"(?:C-?)?0*([0-9]{1,9})", re.IGNORECASE)


class TrailFilterForm(Form):
    patient = StringField(_l("Patient"), description=_l("Their email address or account number"))
    protocol = SelectField(_l("Protocol"))
    version = SelectField(_l("Consent document version"))
    incident = StringField(_l("Concern"), description=_l("Its reference, for example C-00012"))
    actor = StringField(_l("Who acted"), description=_l("Their email address or account number"))
    action = SelectField(_l("Action"))
    date_from = StringField(_l("From"), description=_l("For example 2026-11-01"))
    date_to = StringField(_l("To"), description=_l("For example 2026-11-30"))

    def __init__(self, session: Session, actions: list[str], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        anything = SelectChoice("", _l("Any"))
        self.protocol.choices = [anything] + [
            SelectChoice(str(protocol.id), f"{protocol.reference}: {protocol.title}")
            for protocol in session.scalars(select(Protocol).order_by(Protocol.reference))
        ]
        self.version.choices = [anything] + [
            SelectChoice(str(version_id), f"{slug} v{label}")
            for version_id, slug, label in session.execute(
                select(DocumentVersion.id, ConsentDocument.slug, DocumentVersion.version)
                .join(ConsentDocument)
                .order_by(ConsentDocument.slug, DocumentVersion.id)
            )
        ]
        self.action.choices = [anything] + [SelectChoice(action, action) for action in actions]

    def to_filter(self, session: Session) -> TrailFilter | None:
        """The filter asked for, or None with each field's problem set on it."""
        for field, message in (
            (self.protocol, _l("Choose a protocol from the list")),
            (self.version, _l("Choose a consent document version from the list")),
            (self.action, _l("Choose an action from the list")),
        ):
            offered = {choice.value for choice in field.choices}
            field.errors = [message] if (field.data or "") not in offered else []
        wanted = TrailFilter(
            patient_id=self._account(session, self.patient, patient=True),
            protocol_id=parse_row_id(self.protocol.data),
            version_id=parse_row_id(self.version.data),
            incident_id=self._incident(session),
            actor_id=self._account(session, self.actor, patient=False),
            action=self.action.data or None,
            date_from=self._date(self.date_from),
            date_to=self._date(self.date_to),
        )
        if (
            wanted.date_from
            and wanted.date_to
            and wanted.date_to < wanted.date_from
            and not self.date_to.errors
        ):
            self.date_to.errors = [_l("The end date must be the same as or after the start date")]
        if any(field.errors for field in self):
            return None
        return wanted

    def _account(self, session: Session, field: StringField, *, patient: bool) -> int | None:
        value = (field.data or "").strip()
        if not value:
            return None
        if value.isdigit():
            user = session.get(User, parse_row_id(value)) if parse_row_id(value) else None
        elif "@" in value and len(value) <= 254:
            user = User.by_email(session, value)
        else:
            field.errors = [_l("Enter an email address or an account number")]
            return None
        if user is None or (patient and user.role != Role.PATIENT):
            field.errors = [
                _l("No patient has this email address or account number")
                if patient
                else _l("No account has this email address or account number")
            ]
            return None
        return user.id

    def _incident(self, session: Session) -> int | None:
        value = (self.incident.data or "").strip()
        if not value:
            return None
        match = _INCIDENT_REFERENCE.fullmatch(value)
        incident_id = parse_row_id(match.group(1)) if match else None
        if incident_id is None or session.get(Incident, incident_id) is None:
            self.incident.errors = [_l("No concern has this reference")]
            return None
        return incident_id

    @staticmethod
    def _date(field: StringField) -> dt.date | None:
        value = (field.data or "").strip()
        if not value:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            field.errors = [_l("Enter a real date, for example 2026-11-01")]
            return None
