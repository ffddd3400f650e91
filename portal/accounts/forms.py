"""Account forms; labels are lazily translated."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    EmailField,
    Form,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    InputRequired,
    Length,
    ValidationError,
)

from portal.core.forms import PortalForm
from portal.core.permissions import STAFF_ROLES, Role

ROLE_LABELS = {
    Role.PATIENT: _l("Patient"),
    Role.THERAPIST: _l("Therapist (takes consent)"),
    Role.INVESTIGATOR: _l("Investigator"),
    Role.PANEL_MEMBER: _l("Ethics panel member"),
    Role.PANEL_CHAIR: _l("Ethics panel chair"),
    Role.ADMINISTRATOR: _l("Administrator"),
}

STAFF_ROLE_CHOICES = [
    SelectChoice(role.value, ROLE_LABELS[role])
    for role in (
        Role.THERAPIST,
        Role.INVESTIGATOR,
        Role.PANEL_MEMBER,
        Role.PANEL_CHAIR,
        Role.ADMINISTRATOR,
    )
]


def _email_field() -> EmailField:
    return EmailField(
        _l("Email address"),
        validators=[
            DataRequired(_l("Enter an email address")),
            Length(max=254, message=_l("Email address must be 254 characters or fewer")),
            Email(
                message=_l("Enter an email address in the correct format, like name@example.org")
            ),
        ],
    )


def _name_field() -> StringField:
    return StringField(
        _l("Full name"),
        validators=[
            DataRequired(_l("Enter the person's full name")),
            Length(max=200, message=_l("Full name must be 200 characters or fewer")),
        ],
    )


def _new_password_fields() -> tuple[PasswordField, PasswordField]:
    password = PasswordField(
        _l("New password"),
        validators=[InputRequired(_l("Enter a new password"))],
        description=_l("At least 8 characters. A few unrelated words make a strong password."),
    )
    confirm = PasswordField(
        _l("Confirm new password"),
        validators=[
            InputRequired(_l("Enter the new password again")),
            EqualTo("password", message=_l("The passwords do not match")),
        ],
    )
    return password, confirm


def _reason_field(label: str) -> TextAreaField:
    return TextAreaField(
        label,
        validators=[
            DataRequired(_l("Enter the reason for this change")),
            Length(max=2000, message=_l("The reason must be 2000 characters or fewer")),
        ],
    )


class LoginForm(PortalForm):
    email = EmailField(
        _l("Email address"),
        validators=[
            DataRequired(_l("Enter your email address")),
            Length(max=254, message=_l("Email address must be 254 characters or fewer")),
        ],
    )
    password = PasswordField(
        _l("Password"),
        validators=[
            InputRequired(_l("Enter your password")),
            Length(max=1024, message=_l("Password is too long")),
        ],
    )


class PasswordChangeForm(PortalForm):
    current_password = PasswordField(
        _l("Current password"), validators=[InputRequired(_l("Enter your current password"))]
    )
    password, confirm = _new_password_fields()


class AcceptInvitationForm(PortalForm):
    password, confirm = _new_password_fields()


class InvitePatientForm(PortalForm):
    full_name = _name_field()
    email = _email_field()


class AccountSearchForm(Form):
    """A list of accounts' search: read from the query string, so that a search is a link."""

    search = StringField(
        _l("Search by name or email address"),
        filters=[lambda value: value.strip() if value else ""],
        validators=[
            Length(max=254, message=_l("Your search must be 254 characters or fewer")),
        ],
    )

    def search_text(self) -> str:
        """What to search for, once validated: nothing when the search was refused."""
        return "" if self.search.errors else (self.search.data or "")


SHOW_STAFF, SHOW_EVERYONE = "staff", "everyone"


class StaffSearchForm(AccountSearchForm):
    """The administrator's list of accounts: a search, and whose accounts to show."""

    show = SelectField(
        _l("Whose accounts to show"),
        default=SHOW_STAFF,
        validate_choice=False,  # checked below, with a message in the reader's language
        choices=[
            SelectChoice(SHOW_STAFF, _l("Staff (every role but patient)")),
            *(SelectChoice(role.value, label) for role, label in ROLE_LABELS.items()),
            SelectChoice(SHOW_EVERYONE, _l("Everyone")),
        ],
    )

    def validate_show(self, field) -> None:
        if field.data not in {choice.value for choice in field.choices}:
            raise ValidationError(_l("Choose whose accounts to show from the list"))

    def roles_shown(self) -> tuple[str, ...] | None:
        """The roles of the accounts asked for: None for everyone, staff's when the choice was
        not valid."""
        if self.show.data == SHOW_EVERYONE:
            return None
        if self.show.data in ROLE_LABELS and not self.show.errors:
            return (self.show.data,)
        return tuple(sorted(STAFF_ROLES))


class InviteStaffForm(PortalForm):
    full_name = _name_field()
    email = _email_field()
    role = RadioField(
        _l("Role"),
        choices=STAFF_ROLE_CHOICES,
        validators=[InputRequired(_l("Select a role"))],
    )


class ChangeRoleForm(PortalForm):
    role = RadioField(
        _l("New role"),
        choices=STAFF_ROLE_CHOICES,
        validators=[InputRequired(_l("Select a role"))],
    )
    reason = _reason_field(_l("Reason for the role change"))


class PanelMembershipForm(PortalForm):
    membership = RadioField(
        _l("Panel membership"),
        description=_l(
            "Quorum needs at least one lay member (never a health professional) and one expert."
        ),
        choices=[
            SelectChoice("lay", _l("Lay member")),
            SelectChoice("expert", _l("Expert member")),
        ],
        validators=[InputRequired(_l("Choose lay or expert"))],
    )
    reason = _reason_field(_l("Reason"))


class AccountStatusForm(PortalForm):
    reason = _reason_field(_l("Reason"))


class TwoFactorForm(PortalForm):
    code = StringField(
        _l("Code"),
        validators=[
            DataRequired(_l("Enter the code from your authenticator app, or a recovery code")),
            Length(max=32, message=_l("Enter the 6-digit code, or a recovery code")),
        ],
        description=_l(
            "The 6-digit code from your authenticator app, or one of your recovery codes."
        ),
    )


class TwoFactorSetupForm(PortalForm):
    code = StringField(
        _l("Code from your app"),
        validators=[
            DataRequired(_l("Enter the 6-digit code from your authenticator app")),
            Length(max=32, message=_l("Enter the 6-digit code")),
        ],
    )


class EmptyForm(PortalForm):
    """A form with only its CSRF token (sign out, revoke)."""
