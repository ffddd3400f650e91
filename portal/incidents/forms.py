"""Forms for reporting and handling a concern; the rules live in the services."""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import BooleanField, RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from portal.core.forms import PortalForm, date_from_parts
from portal.incidents.models import Category, FeelsSafe, Outcome, SessionKind, Severity

CATEGORY_LABELS = {
    Category.TOUCH: _l("Physical touch beyond what the study allows"),
    Category.SEXUAL: _l("Sexual contact or advances"),
    Category.DUAL_RELATIONSHIP: _l(
        "A relationship outside therapy (for example friendship, business or money)"
    ),
    Category.OUTSIDE_CONTACT: _l("Contact outside sessions"),
    Category.ALONE: _l("A therapist alone with a patient when two should be there"),
    Category.COERCION: _l(
        "Pressure or undue influence, including while under the effects of the medicine"
    ),
    Category.CONFIDENTIALITY: _l("Private information shared without permission"),
    Category.OTHER: _l("Something else"),
}
SESSION_LABELS = {
    SessionKind.DOSING: _l("During a dosing session (when the medicine was taken)"),
    SessionKind.OTHER_SESSION: _l("During another therapy session"),
    SessionKind.OUTSIDE: _l("Outside sessions"),
    SessionKind.NOT_SURE: _l("I am not sure"),
}
SAFE_LABELS = {
    FeelsSafe.YES: _l("Yes"),
    FeelsSafe.NO: _l("No"),
    FeelsSafe.UNSURE: _l("I am not sure"),
}
SEVERITY_LABELS = {
    Severity.LOW: _l("Low"),
    Severity.MODERATE: _l("Moderate"),
    Severity.SERIOUS: _l("Serious"),
}
OUTCOME_LABELS = {
    Outcome.NO_CASE: _l("No case to answer"),
    Outcome.RETRAINING: _l("Retraining or supervision required"),
    Outcome.SUSPENSION: _l("Suspension"),
    Outcome.REFERRAL: _l("Referral to the professional regulator"),
}


def _choices(labels: dict) -> list[SelectChoice]:
    return [SelectChoice(key.value, label) for key, label in labels.items()]


class ReportForm(PortalForm):
    therapist = SelectField(_l("Which therapist is your concern about?"), validate_choice=False)
    category = RadioField(
        _l("What kind of concern is it?"), choices=_choices(CATEGORY_LABELS), validate_choice=False
    )
    day = StringField(_l("Day"), validators=[Optional()])
    month = StringField(_l("Month"), validators=[Optional()])
    year = StringField(_l("Year"), validators=[Optional()])
    session_kind = RadioField(
        _l("Was it during a session?"), choices=_choices(SESSION_LABELS), validate_choice=False
    )
    what_happened = TextAreaField(
        _l("What happened?"),
        description=_l("In your own words. Say as much or as little as you want to."),
    )
    others_involved = TextAreaField(
        _l("Was anyone else involved, or did anyone see it? (optional)"),
        validators=[Optional()],
    )
    feels_safe = RadioField(
        _l("Do you feel safe now?"), choices=_choices(SAFE_LABELS), validate_choice=False
    )
    anonymous = BooleanField(_l("Do not show my name to the ethics panel"))

    def occurred_on(self) -> dt.date | None:
        return date_from_parts(self.day.data, self.month.data, self.year.data)


class TriageForm(PortalForm):
    severity = RadioField(
        _l("How serious is it?"), choices=_choices(SEVERITY_LABELS), validate_choice=False
    )
    hold = BooleanField(
        _l("Place the therapist on hold now: they cannot take or countersign consent")
    )
    serious_breach_due = BooleanField(
        _l("A serious-breach report to the regulator is due (within 7 days)")
    )
    note = TextAreaField(_l("Triage note (optional)"), validators=[Optional()])


class AssignForm(PortalForm):
    member_id = SelectField(_l("Assign a panel member"), validate_choice=False)


class NoteForm(PortalForm):
    text = TextAreaField(_l("Note"), validators=[Optional()])
    recording_reference = StringField(
        _l("Session recording reference (optional)"),
        description=_l("For example, the session date and the recording's file name."),
        validators=[Optional()],
    )
    evidence = FileField(
        _l("Evidence (optional)"), description=_l("A PDF, PNG or JPEG of 10 MB or less.")
    )


class ResponseForm(PortalForm):
    response = TextAreaField(
        _l("Your response"),
        description=_l("The panel will read this before it decides. You can send it once."),
    )


class OutcomeForm(PortalForm):
    outcome = RadioField(_l("Outcome"), choices=_choices(OUTCOME_LABELS), validate_choice=False)
    reasons = TextAreaField(_l("Reasons"))
