"""Each role's own areas in the header menu."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from flask import Flask, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
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
    from portal.extensions import db

    is_patient = current_user.role == Role.PATIENT
    query = _patient_menu_query() if is_patient else _staff_menu_query()
    unread, *in_force = db.session.connection().execute(query, {"user_id": current_user.id}).one()
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


def init_app(app: Flask) -> None:
    app.jinja_env.globals["navigation_items"] = navigation_items
    app.jinja_env.globals["rendered_once"] = rendered_once
