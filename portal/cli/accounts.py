"""`flask accounts ...`: the first administrator."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal.accounts.models import AccountError
from portal.accounts.services import create_user
from portal.core import audit
from portal.core.permissions import Role


@click.group("accounts", help="Manage accounts.", cls=AppGroup)
def accounts_group() -> None:
    pass


@accounts_group.command("create-admin")
@click.option("--email", prompt=True, help="The administrator's email address.")
@click.option("--name", "full_name", prompt="Full name", help="The administrator's full name.")
@click.password_option(help="Prompted for (twice) when not given.")
def create_admin(email: str, full_name: str, password: str) -> None:
    """Create an administrator account (the first one, or another in an emergency)."""
    from portal.extensions import db

    try:
        user = create_user(
            db.session,
            email=email,
            full_name=full_name,
            role=Role.ADMINISTRATOR,
            password=password,
            actor=audit.SYSTEM,
            reason="created with flask accounts create-admin",
        )
    except AccountError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Administrator {user.email} created.")
