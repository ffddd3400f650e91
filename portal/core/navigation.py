"""Each role's own areas in the header menu."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from flask import Flask, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import Select, bindparam, select

from portal.core.permissions import Role

_DOCUMENTS = ("consent.documents", _l("Consent documents"))
_CONCERNS = ("incidents.panel", _l("Concerns"))
_REVIEW = ("review.panel", _l("Ethics review"))
_MENU: dict[Role, list[tuple[str, object]]] = {
    Role.PATIENT: [("consent.home", _l("Your consent"))],
    Role.THERAPIST: [
        ("consent.team", _l("Consent")),
        ("accounts.patients", _l("Patients")),
        ("accounts.invite_patient", _l("Invite a patient")),
        _DOCUMENTS,
    ],
    Role.INVESTIGATOR: [("review.home", _l("Submissions")), _DOCUMENTS],
    Role.PANEL_MEMBER: [("oversight.home", _l("Oversight")), _REVIEW, _CONCERNS, _DOCUMENTS],
    Role.PANEL_CHAIR: [("oversight.home", _l("Oversight")), _REVIEW, _CONCERNS, _DOCUMENTS],
    Role.ADMINISTRATOR: [
        ("accounts.staff", _l("Staff accounts")),
        ("accounts.invite_staff", _l("Invite staff")),
        _DOCUMENTS,
        ("notifications.outbox", _l("Outbox")),
    ],
}


@dataclass(frozen=True)
class NavItem:
    href: str
    text: str
    current: bool


def navigation_items() -> list[NavItem]:
    if not current_user.is_authenticated:
        return []
    items = [
        NavItem(url_for(endpoint), str(label), request.endpoint == endpoint)
        for endpoint, label in _MENU[Role(current_user.role)]
    ]
    return items + _personal_items()


def _personal_items() -> list[NavItem]:
    """Links that depend on the person: withdrawal once a patient has started a consent, and
    staff notifications with the number unread."""
    from portal.core.db import start_reading
    from portal.extensions import db

    session = db.session
    if session.in_transaction():
        session.flush()  # as session.execute would: the menu sees this request's own changes
    else:
        # A page that has not touched the database (most forms) asks the menu's question in a
        # DEFERRED transaction: otherwise it would take SQLite's write lock here and hold it
        # until the request ends, and every other worker's writes would wait for its rendering.
        # (Not begin_reading: its commit would save an unflushed change to a loaded object.)
        start_reading(session)
    is_patient = current_user.role == Role.PATIENT
    query = _patient_menu_query() if is_patient else _staff_menu_query()
    unread, *in_force = session.connection().execute(query, {"user_id": current_user.id}).one()
    text = _l("Notifications (%(n)d new)", n=unread) if unread else _l("Notifications")
    notifications = NavItem(
        url_for("notifications.inbox"), str(text), request.blueprint == "notifications"
    )
    if not is_patient:
        return [notifications]
    items = [notifications] if unread else []  # patients see it only when there is news
    if in_force[0]:
        items.insert(
            0,
            NavItem(
                url_for("withdrawal.start"), str(_l("Withdraw")), request.blueprint == "withdrawal"
            ),
        )
    return items


@functools.cache
def _staff_menu_query() -> Select:
    """Every page asks it, so it is built once and asked in one round trip."""
    from portal.notifications.services import unread_count_query

    return select(unread_count_query(bindparam("user_id")).scalar_subquery())


@functools.cache
def _patient_menu_query() -> Select:
    from portal.consent.withdrawal import consent_in_force_clause

    user_id = bindparam("user_id")
    return _staff_menu_query().add_columns(consent_in_force_clause(user_id))


@functools.lru_cache(maxsize=2048)
def _render_component(macro, params_json: str) -> Markup:
    return Markup(macro(json.loads(params_json)))  # noqa: S704 - the macro escapes its input


def rendered_once(macro, params: dict) -> Markup:
    """An NHS.UK component macro's output, rendered once for each distinct set of parameters.
    The header and footer are the same on most pages and cost more than the page itself."""
    return _render_component(macro, json.dumps(params, sort_keys=True, default=str))


def header_params() -> dict:
    """The NHS.UK header's parameters for this page: the menu, and the account links with a
    sign-out form. Built here rather than in the template, where the same work costs several
    times as much on every signed-in page."""
    navigation = {
        "items": [
            {"href": item.href, "text": item.text, "current": item.current}
            for item in navigation_items()
        ],
        "ariaLabel": _("Main menu"),
        "toggleMenuText": _("More"),
        "toggleMenuVisuallyHiddenText": _("Browse"),
    }
    home = url_for("core.home")
    service = _("Consent & Ethics Portal")
    return {
        "service": {"text": service, "href": home},
        "logo": {"src": url_for("static", filename="img/logo.svg"), "alt": service, "href": home},
        "account": _account_menu() if current_user.is_authenticated else None,
        "navigation": navigation,
    }


def _account_menu() -> dict:
    sign_out = Markup(
        '<form class="nhsuk-header__account-form" method="post" action="{}">'
        '<input type="hidden" name="csrf_token" value="{}">'
        '<button class="nhsuk-header__account-button">{}</button></form>'
    ).format(url_for("accounts.logout"), generate_csrf(), _("Sign out"))
    return {
        "items": [
            {"text": current_user.full_name, "icon": True},
            {"href": url_for("accounts.change_password"), "text": _("Change password")},
            {"href": url_for("accounts.sessions"), "text": _("Sessions")},
            {"html": sign_out},
        ],
        "ariaLabel": _("Your account"),
    }


def init_app(app: Flask) -> None:
    app.jinja_env.globals["header_params"] = header_params
    app.jinja_env.globals["rendered_once"] = rendered_once
