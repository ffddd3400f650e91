"""Forms of the consent journey; labels are lazily translated."""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from portal.consent.journey_models import SignatureMethod
from portal.consent.reading_time import VISIT_TOKEN_MAX_LENGTH
from portal.core.forms import PortalForm, date_from_parts


class ReadingForm(PortalForm):
    visit = HiddenField(validators=[Optional(), Length(max=VISIT_TOKEN_MAX_LENGTH)])
    direction = HiddenField()


class AskQuestionForm(PortalForm):
    question = TextAreaField(
        _l("Your question"),
        validators=[
            DataRequired(_l("Write your question")),
            Length(max=2000, message=_l("Your question must be 2000 characters or fewer")),
        ],
        description=_l(
            "Your study team will see it and get back to you. This does not stop you reading."
        ),
    )
    section = HiddenField()


YES_NO = [SelectChoice("yes", _l("Yes")), SelectChoice("no", _l("No"))]


def choices_form(items) -> PortalForm:
    """One yes/no question per optional item, none chosen at first."""

    class ChoicesForm(PortalForm):
        pass

    for item in items:
        setattr(
            ChoicesForm,
            f"item_{item.key}",
            RadioField(
                item.statement,
                choices=YES_NO,
                validators=[InputRequired(_l("Choose yes or no"))],
                description=item.meaning,
            ),
        )
    return ChoicesForm()


def answer_form(question) -> PortalForm:
    class AnswerForm(PortalForm):
        choice = RadioField(
            question.prompt,
            choices=[SelectChoice(c["id"], c["text"]) for c in question.choices],
            validators=[InputRequired(_l("Choose an answer"))],
        )

    return AnswerForm()


class SignForm(PortalForm):
    attest = BooleanField(
        _l(
            "I have read and understood the information, my questions have been answered, and "
            "I agree to take part. I know I can withdraw at any time without giving a reason "
            "and without my care or legal rights being affected."
        )
    )
    typed_name = StringField(
        _l("Type your full name"),
        validators=[
            DataRequired(_l("Type your full name")),
            Length(max=200, message=_l("Your name must be 200 characters or fewer")),
        ],
    )
    method = RadioField(
        _l("How would you like to sign?"),
        choices=[
            SelectChoice(SignatureMethod.DRAWN.value, _l("Draw my signature")),
            SelectChoice(
                SignatureMethod.TYPED.value,
                _l("Use my typed name as my signature (my therapist will witness it)"),
            ),
        ],
        validators=[InputRequired(_l("Choose how you would like to sign"))],
    )
    signature = HiddenField()
    password = PasswordField(
        _l("Your password"),
        validators=[InputRequired(_l("Enter your password to sign"))],
        description=_l("Entering your password confirms that it is you signing."),
    )


class CountersignForm(PortalForm):
    discussed = BooleanField(
        _l("I discussed the study with the patient and answered their questions")
    )
    identity_checked = BooleanField(_l("I checked the patient's identity"))
    witnessed_typed = BooleanField(
        _l("I witnessed the patient typing their name as their signature")
    )
    password = PasswordField(
        _l("Your password"), validators=[InputRequired(_l("Enter your password to sign"))]
    )


class OfferForm(PortalForm):
    document_id = IntegerField(validators=[InputRequired()])


class TeachBackForm(PortalForm):
    note = TextAreaField(
        _l("What you discussed"),
        validators=[
            DataRequired(_l("Write a short note of what you discussed")),
            Length(max=5000, message=_l("The note must be 5000 characters or fewer")),
        ],
    )


class WithdrawalForm(PortalForm):
    """What the patient withdraws from; the rules (which options apply) live in the service."""

    scope = RadioField(_l("What do you want to do?"), validate_choice=False)
    item = RadioField(
        _l("If you are taking back an optional choice: which one?"), validate_choice=False
    )
    data_option = RadioField(
        _l(
            "If you are leaving the study: what should happen to the information already "
            "collected about you?"
        ),
        validate_choice=False,
    )
    reason = TextAreaField(
        _l("If you want to, tell us why (optional)"),
        description=_l("You do not have to give a reason."),
        validators=[Optional()],
    )


class ConfirmWithdrawalForm(WithdrawalForm):
    password = PasswordField(
        _l("Your password"),
        description=_l("To make sure it is really you."),
    )


class StaffWithdrawalForm(WithdrawalForm):
    channel = RadioField(
        _l("How did the patient tell you?"),
        choices=[
            SelectChoice("phone", _l("By phone")),
            SelectChoice("in_person", _l("In person")),
            SelectChoice("letter", _l("By letter")),
            SelectChoice("email", _l("By email")),
        ],
        validate_choice=False,
    )
    # The NHS date pattern: three boxes, read together by `told_on`.
    day = StringField(_l("Day"), validators=[Optional()])
    month = StringField(_l("Month"), validators=[Optional()])
    year = StringField(_l("Year"), validators=[Optional()])
    attested = BooleanField(
        _l(
            "I confirm that the patient told me this themselves, and that I have recorded "
            "their decision as they gave it"
        )
    )
    password = PasswordField(_l("Your password"))

    def told_on(self) -> dt.date | None:
        """The date from the three boxes, or None when it is missing or not a real date."""
        return date_from_parts(self.day.data, self.month.data, self.year.data)
