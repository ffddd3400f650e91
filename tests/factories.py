"""Small factories that create data through the real services (so it is audited as in life)."""

from __future__ import annotations

from dataclasses import dataclass

from portal.accounts.services import create_user
from portal.core import audit
from portal.core.permissions import Role
from portal.extensions import db

DEFAULT_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    password: str
    role: Role


def create_account(
    app,
    role: Role,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    full_name: str | None = None,
) -> Account:
    email = email or f"{role.value}@example.org"
    with app.app_context():
        user = create_user(
            db.session,
            email=email,
            full_name=full_name or f"Test {role.value.replace('_', ' ').title()}",
            role=role,
            password=password,
            actor=audit.SYSTEM,
        )
        db.session.commit()
        return Account(user.id, user.email, password, role)


def create_role_accounts(app) -> dict[Role, Account]:
    return {role: create_account(app, role) for role in Role}
