"""Roles and route access rules: every endpoint declares who may reach it; the rest is denied."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, request
from flask_login import current_user

from portal.extensions import login_manager

log = logging.getLogger("portal.access")

F = TypeVar("F", bound=Callable[..., Any])


class Role(StrEnum):
    PATIENT = "patient"
    THERAPIST = "therapist"
    INVESTIGATOR = "investigator"
    PANEL_MEMBER = "panel_member"
    PANEL_CHAIR = "panel_chair"
    ADMINISTRATOR = "administrator"


ALL_ROLES = frozenset(Role)
STAFF_ROLES = frozenset(ALL_ROLES - {Role.PATIENT})
PANEL_ROLES = frozenset({Role.PANEL_MEMBER, Role.PANEL_CHAIR})


@dataclass(frozen=True)
class AccessRule:
    """Who may call an endpoint: anyone (public) or signed-in users holding one of `roles`."""

    roles: frozenset[Role] = frozenset()
    public: bool = False

    def allows(self, role: Role | None) -> bool:
        return self.public or (role is not None and role in self.roles)


def public(view: F) -> F:
    """Mark a view as reachable without signing in."""
    view.access_rule = AccessRule(public=True)  # type: ignore[attr-defined]
    return view


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Mark a view as reachable only by signed-in users with one of these roles."""
    if not roles:
        raise ValueError("name at least one role; use @public for open views")

    def decorate(view: F) -> F:
        view.access_rule = AccessRule(roles=frozenset(roles))  # type: ignore[attr-defined]
        return view

    return decorate


def signed_in(view: F) -> F:
    """Mark a view as reachable by any signed-in user."""
    return roles_required(*ALL_ROLES)(view)


def access_rule_for(endpoint: str) -> AccessRule | None:
    """The rule declared on an endpoint's view; None means the route forgot to declare one."""
    if endpoint == "static":
        return AccessRule(public=True)
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access_rule", None)


def _enforce_access_rule() -> Any:
    if request.endpoint is None:  # unmatched URL: let routing answer 404/405
        return None
    rule = access_rule_for(request.endpoint)
    if rule is None:
        log.error("endpoint %s has no access rule: denied", request.endpoint)
        g.refused_by_access_rule = True
        abort(403)
    if rule.public:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not rule.allows(current_user.role):
        log.warning(
            "authorization refused: user=%s role=%s endpoint=%s",
            current_user.id,
            current_user.role,
            request.endpoint,
        )
        g.refused_by_access_rule = True
        abort(403)
    return None


def init_app(app: Flask) -> None:
    app.before_request(_enforce_access_rule)
