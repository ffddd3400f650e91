"""Forms for submitting to the ethics panel and for the panel's review; rules live in services."""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional

from portal.core.forms import PortalForm, date_from_parts
from portal.review.models import OpinionCategory, SubmissionKind, VoteChoice

MODIFICATION_LABELS = {
    SubmissionKind.SUBSTANTIAL: _l(
        "Substantial modification: likely to affect participants' safety or rights, the "
        "science, the conduct of the study or the medicine"
    ),
    SubmissionKind.IMPORTANT_DETAIL: _l("Modification of an important detail"),
    SubmissionKind.MINOR: _l("Minor modification"),
}
VOTE_LABELS = {
    VoteChoice.FOR: _l("For"),
    VoteChoice.AGAINST: _l("Against"),
    VoteChoice.ABSTAIN: _l("Abstain"),
}
OPINION_LABELS = {
    OpinionCategory.FAVOURABLE: _l("Favourable opinion"),
    OpinionCategory.FAVOURABLE_WITH_CONDITIONS: _l("Favourable opinion with additional conditions"),
    OpinionCategory.PROVISIONAL: _l("Provisional opinion: further information requested"),
    OpinionCategory.UNFAVOURABLE: _l("Unfavourable opinion"),
}
CONFLICT_LABELS = {
    "no": _l("I have no conflict of interest in this submission"),
    "yes": _l("I have a conflict of interest: I will be recused"),
}


def _choices(labels: dict) -> list[SelectChoice]:
    return [SelectChoice(str(key), label) for key, label in labels.items()]


class _Submission(PortalForm):
    protocol_file = FileField(_l("Protocol document"), description=_l("A PDF of 10 MB or less."))
    version_ids = SelectMultipleField(
        _l("Consent document versions for the panel to approve"),
        description=_l("Draft versions are submitted for review with the application."),
        validate_choice=False,
        coerce=str,
    )


class ProtocolForm(_Submission):
    summary = TextAreaField(
        _l("Summary of the study"),
        description=_l("In plain language: what the study does and why."),
    )
    title = StringField(_l("Title of the protocol"))
    reference = StringField(
        _l("Reference"), description=_l("For example the IRAS number, such as IRAS 312345.")
    )
    chief_investigator = StringField(_l("Chief investigator"))
    sites = TextAreaField(_l("Trial locations"), description=_l("One trial location on each line."))
    team_emails = TextAreaField(
        _l("Email addresses of the research team (optional)"),
        description=_l("One on each line. A panel member named here is recused from the review."),
        validators=[Optional()],
    )


class ModificationForm(_Submission):
    kind = RadioField(
        _l("What kind of modification is it?"),
        choices=_choices(MODIFICATION_LABELS),
        validate_choice=False,
    )
    summary = TextAreaField(
        _l("Summary of changes"),
        description=_l("What changes, why, and what it means for participants."),
    )


class DeclarationForm(PortalForm):
    conflict = RadioField(
        _l("Do you have an interest to declare?"),
        choices=_choices(CONFLICT_LABELS),
        validate_choice=False,
    )
    details = TextAreaField(
        _l("Details of the interest"),
        description=_l("Needed if you declare a conflict. Shown in the minutes."),
        validators=[Optional()],
    )


class AssignForm(PortalForm):
    member_id = SelectField(_l("Assign a reviewer"), validate_choice=False)


class CommentForm(PortalForm):
    about = SelectField(_l("What the comment is about"), validate_choice=False)
    body = TextAreaField(_l("Comment"))


class VoteForm(PortalForm):
    choice = RadioField(_l("Your vote"), choices=_choices(VOTE_LABELS), validate_choice=False)


class OpinionForm(PortalForm):
    category = RadioField(
        _l("The panel's opinion"), choices=_choices(OPINION_LABELS), validate_choice=False
    )
    reasons = TextAreaField(_l("Reasons"))
    conditions = TextAreaField(
        _l("Additional conditions"),
        description=_l("Only for a favourable opinion with conditions. One on each line."),
        validators=[Optional()],
    )
    # Holds the error about the material-change questions (one radio group per version,
    # rendered by the template); it has no input of its own.
    material = HiddenField()


class ConditionMetForm(PortalForm):
    evidence = TextAreaField(_l("Evidence that the condition is met"))


class ResponseForm(PortalForm):
    response = TextAreaField(
        _l("Your response to the panel's request"),
        description=_l("Answer each point the panel raised. The clock restarts when you send it."),
    )


class ProtocolStatusForm(PortalForm):
    status = RadioField(_l("Change the protocol's status"), validate_choice=False)
    reason = TextAreaField(_l("Reason"))


class MeetingForm(PortalForm):
    title = StringField(_l("Meeting title"))
    day = StringField(_l("Day"), validators=[Optional()])
    month = StringField(_l("Month"), validators=[Optional()])
    year = StringField(_l("Year"), validators=[Optional()])

    def held_on(self) -> dt.date | None:
        return date_from_parts(self.day.data, self.month.data, self.year.data)


class AgendaForm(PortalForm):
    submission_id = SelectField(_l("Add a submission to the agenda"), validate_choice=False)


class AttendanceForm(PortalForm):
    member_id = SelectField(_l("Record a member as present"), validate_choice=False)
